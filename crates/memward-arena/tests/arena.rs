//! Integration tests for memward-arena: randomised sequences against a model, Drop counts,
//! limits, scopes, allocator-api2 collections, SyncArena from many threads, and Pool keys.

use allocator_api2::alloc::Allocator;
use core::alloc::Layout;
use memward_arena::{Arena, ArenaBox, Key, Pool, SyncArena};
use proptest::prelude::*;
use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;

/// One live allocation in the model: where it is, how long, and the byte it was filled with.
#[derive(Clone, Copy, Debug)]
struct Live {
    ptr: *mut u8,
    len: usize,
    fill: u8,
}

fn fill_and_record(model: &mut Vec<Live>, ptr: *mut u8, layout: Layout, fill: u8) {
    assert_eq!(ptr as usize % layout.align(), 0, "misaligned {layout:?}");
    // SAFETY: `ptr` is fresh arena space of `layout.size()` bytes.
    unsafe { ptr.write_bytes(fill, layout.size()) };
    model.push(Live {
        ptr,
        len: layout.size(),
        fill,
    });
}

/// Every live allocation still holds its own fill byte: nothing overlapped or was reused.
fn check_model(model: &[Live]) {
    for live in model {
        // SAFETY: the model holds only allocations whose arena space is still live.
        let bytes = unsafe { std::slice::from_raw_parts(live.ptr, live.len) };
        assert!(
            bytes.iter().all(|&b| b == live.fill),
            "allocation {live:?} was overwritten"
        );
    }
}

/// The smallest chunk (total bytes) that serves `layout`, as the limit's exactness promise
/// states it: header of 16 bytes, the size, and any alignment above 16.
fn min_chunk(layout: Layout) -> usize {
    (16 + layout.size() + layout.align().saturating_sub(16) + 15) & !15
}

#[derive(Clone, Debug)]
enum Op {
    Alloc { size: usize, align_shift: u8 },
    ScopeBegin,
    ScopeEnd,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (prop_oneof![0usize..64, 0usize..2000, 0usize..20_000], 0u8..8)
            .prop_map(|(size, align_shift)| Op::Alloc { size, align_shift }),
        1 => Just(Op::ScopeBegin),
        1 => Just(Op::ScopeEnd),
    ]
}

/// Runs ops inside a scope guard, opening nested scopes recursively; returns at ScopeEnd
/// or when the ops run out. Checks the model after every step and, when a limit is set,
/// that the arena never exceeds it and fails only when it must.
fn run_scope(
    arena: &mut memward_arena::ArenaScope<'_>,
    ops: &mut std::slice::Iter<'_, Op>,
    model: &mut Vec<Live>,
    limit: Option<usize>,
    fill: &mut u8,
) {
    let saved = model.len();
    while let Some(op) = ops.next() {
        match op {
            Op::Alloc { size, align_shift } => {
                let layout = Layout::from_size_align(*size, 1 << align_shift).unwrap();
                let before = arena.allocated_bytes();
                match arena.try_alloc_layout(layout) {
                    Ok(p) => {
                        *fill = fill.wrapping_add(1);
                        fill_and_record(model, p.as_ptr(), layout, *fill);
                    }
                    Err(_) => {
                        let limit = limit.expect("allocation failed without a limit");
                        assert!(
                            min_chunk(layout) > (limit - before) & !15,
                            "refused {layout:?} with {before} of {limit} bytes held"
                        );
                    }
                }
                if let Some(limit) = limit {
                    assert!(arena.allocated_bytes() <= limit);
                }
            }
            Op::ScopeBegin => {
                let mut inner = arena.scope_guard();
                run_scope(&mut inner, ops, model, limit, fill);
            }
            Op::ScopeEnd => break,
        }
        check_model(model);
    }
    model.truncate(saved);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_allocations_and_scopes_match_the_model(
        ops in proptest::collection::vec(op(), 1..300),
        limit in prop_oneof![Just(None), (0usize..200_000).prop_map(Some)],
    ) {
        let mut arena = Arena::new();
        arena.set_limit(limit);
        let mut fill = 0u8;
        for _pass in 0..2 {
            let mut model = Vec::new();
            {
                let mut guard = arena.scope_guard();
                run_scope(&mut guard, &mut ops.iter(), &mut model, limit, &mut fill);
            }
            arena.reset();
        }
    }

    #[test]
    fn a_second_pass_after_reset_takes_no_new_chunks(
        sizes in proptest::collection::vec((0usize..5000, 0u8..7), 1..400),
    ) {
        let mut arena = Arena::new();
        let run = |arena: &Arena| {
            let mut model = Vec::new();
            for &(size, shift) in &sizes {
                let layout = Layout::from_size_align(size, 1 << shift).unwrap();
                let p = arena.try_alloc_layout(layout).unwrap();
                fill_and_record(&mut model, p.as_ptr(), layout, (size % 251) as u8);
            }
            check_model(&model);
        };
        run(&arena);
        let held = arena.allocated_bytes();
        for _ in 0..3 {
            arena.reset();
            run(&arena);
            prop_assert_eq!(arena.allocated_bytes(), held);
        }
    }
}

#[test]
fn typed_allocations_hold_their_values() {
    let arena = Arena::new();
    let a = arena.alloc(1u8);
    let b = arena.alloc(0x1122_3344_5566_7788u64);
    let c = arena.alloc_str("hello arena");
    let d = arena.alloc_slice_copy(&[1u16, 2, 3]);
    let e = arena.alloc_slice_fill_iter((0..100).map(|i| i as u32 * 3));
    let f = arena.alloc_with(|| [7u8; 3000]);
    let z = arena.alloc(());
    *a += 1;
    assert_eq!(*a, 2);
    assert_eq!(*b, 0x1122_3344_5566_7788);
    assert_eq!(c, "hello arena");
    assert_eq!(d, &[1, 2, 3]);
    assert_eq!(e[99], 297);
    assert!(f.iter().all(|&x| x == 7));
    assert_eq!(b as *mut u64 as usize % 8, 0);
    let _ = z;
}

#[test]
#[should_panic(expected = "yielded 2 items but its len() said 3")]
fn a_lying_exact_size_iterator_panics() {
    struct Liar(u32);
    impl Iterator for Liar {
        type Item = u32;
        fn next(&mut self) -> Option<u32> {
            self.0 += 1;
            (self.0 <= 2).then_some(self.0)
        }
    }
    impl ExactSizeIterator for Liar {
        fn len(&self) -> usize {
            3
        }
    }
    let arena = Arena::new();
    arena.alloc_slice_fill_iter(Liar(0));
}

/// Counts drops through a shared counter.
#[derive(Debug)]
struct Counted(Rc<Cell<usize>>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn arena_box_drops_exactly_once_and_plain_alloc_never() {
    let drops = Rc::new(Cell::new(0));
    let mut arena = Arena::new();
    {
        let boxes: Vec<_> = (0..100)
            .map(|_| ArenaBox::new_in(Counted(drops.clone()), &arena))
            .collect();
        assert_eq!(drops.get(), 0);
        drop(boxes);
        assert_eq!(drops.get(), 100);

        let b = ArenaBox::new_in(Counted(drops.clone()), &arena);
        let inner = ArenaBox::into_inner(b);
        assert_eq!(drops.get(), 100);
        drop(inner);
        assert_eq!(drops.get(), 101);

        let leaked = ArenaBox::leak(ArenaBox::new_in(Counted(drops.clone()), &arena));
        let _ = leaked;
        arena.alloc(Counted(drops.clone()));
    }
    arena.reset();
    drop(arena);
    // Neither the leaked box nor the plain allocation is ever dropped.
    assert_eq!(drops.get(), 101);
}

#[test]
fn try_new_in_hands_the_value_back_on_failure() {
    let drops = Rc::new(Cell::new(0));
    let mut arena = Arena::new();
    arena.set_limit(Some(0));
    let (_, value) = ArenaBox::try_new_in(Counted(drops.clone()), &arena).unwrap_err();
    assert_eq!(drops.get(), 0);
    drop(value);
    assert_eq!(drops.get(), 1);
}

#[test]
fn the_limit_is_exact_and_failures_are_errors() {
    for limit in [0usize, 16, 100, 512, 513, 4096, 100_000] {
        let mut arena = Arena::new();
        arena.set_limit(Some(limit));
        let mut ok = 0usize;
        while arena.try_alloc([0u8; 48]).is_ok() {
            ok += 1;
            assert!(arena.allocated_bytes() <= limit);
        }
        assert!(arena.allocated_bytes() <= limit);
        // Every byte of the limit that could hold a 48-byte value in some chunk was used:
        // what is left is smaller than the smallest chunk for one more value.
        assert!(
            limit - arena.allocated_bytes() < 64,
            "limit {limit}: {} held",
            arena.allocated_bytes()
        );
        assert!(
            ok * 48 + 64 * (arena.allocated_bytes() / 512 + 1)
                >= arena.allocated_bytes().saturating_sub(64)
        );
        // Raising the limit lets it grow again.
        arena.set_limit(Some(limit + 4096));
        assert!(arena.try_alloc([0u8; 48]).is_ok());
    }
}

#[test]
#[should_panic(expected = "cannot allocate 48 bytes")]
fn alloc_past_the_limit_panics_with_a_message() {
    let mut arena = Arena::new();
    arena.set_limit(Some(32));
    arena.alloc([0u8; 48]);
}

#[test]
fn a_failed_huge_request_does_not_double_later_chunks() {
    let mut arena = Arena::new();
    arena.set_limit(Some(1 << 20));
    assert!(arena
        .try_alloc_layout(Layout::from_size_align(1 << 30, 8).unwrap())
        .is_err());
    assert!(arena
        .try_alloc_layout(Layout::from_size_align(1 << 30, 8).unwrap())
        .is_err());
    arena.alloc(1u8);
    assert!(
        arena.allocated_bytes() <= 512,
        "{}",
        arena.allocated_bytes()
    );
    // A large request gets its own chunk and does not advance the schedule either.
    arena.set_limit(None);
    arena.alloc_slice_copy(&[0u8; 300_000]);
    let before = arena.allocated_bytes();
    arena.alloc_slice_copy(&[0u8; 600]);
    assert!(arena.allocated_bytes() - before <= 1024);
}

#[test]
fn lowering_the_limit_frees_unused_chunks() {
    let mut arena = Arena::new();
    for _ in 0..10_000 {
        arena.alloc(0u64);
    }
    let held = arena.allocated_bytes();
    arena.reset();
    arena.set_limit(Some(1024));
    assert!(
        arena.allocated_bytes() <= 1024,
        "{} of {held}",
        arena.allocated_bytes()
    );
    // In use chunks are kept: set a limit below what the current chunk holds.
    let mut arena = Arena::with_capacity(8192);
    arena.set_limit(Some(100));
    assert!(arena.allocated_bytes() > 100);
    assert!(arena.try_alloc([0u8; 100]).is_ok()); // room left in the kept chunk
    assert!(arena.try_alloc([0u8; 10_000]).is_err()); // but no growth
}

#[test]
fn scopes_free_what_they_allocated_and_keep_the_rest() {
    let mut arena = Arena::new();
    let before = arena.alloc(11u64) as *mut u64 as usize;
    let held = {
        let mut outer = arena.scope_guard();
        for i in 0..10_000u64 {
            outer.alloc(i);
        }
        {
            let inner = outer.scope_guard();
            inner.alloc_slice_copy(&[1u8; 100_000]);
        }
        outer.allocated_bytes()
    };
    let after = arena.alloc(12u64) as *mut u64 as usize;
    assert_eq!(after, before + 8);
    // Run the same again: no new chunks.
    arena.scope(|a| {
        for i in 0..10_000u64 {
            a.alloc(i);
        }
        a.alloc_slice_copy(&[1u8; 100_000]);
    });
    assert_eq!(arena.allocated_bytes(), held);
}

#[test]
fn vec_in_the_arena_grows_in_place() {
    let arena = Arena::new();
    let mut v: allocator_api2::vec::Vec<usize, &Arena> = allocator_api2::vec::Vec::new_in(&arena);
    let mut moves = 0;
    let mut last = v.as_ptr();
    for i in 0..10_007 {
        v.reserve_exact(1);
        v.push(i);
        if v.as_ptr() != last {
            moves += 1;
            last = v.as_ptr();
        }
    }
    assert_eq!(v.iter().sum::<usize>(), 10_006 * 10_007 / 2);
    // Moves only when the chunk runs out: a handful, not one per push.
    assert!(moves < 20, "{moves} moves");
    // In-place growth wastes no space: the arena holds about twice the final vector.
    assert!(
        arena.allocated_bytes() < 4 * 8 * 10_007,
        "{}",
        arena.allocated_bytes()
    );
}

#[test]
fn allocator_grow_shrink_and_deallocate_of_the_last_block() {
    let arena = Arena::new();
    let l8 = Layout::from_size_align(8, 8).unwrap();
    let l64 = Layout::from_size_align(64, 8).unwrap();
    let p = arena.allocate(l8).unwrap().cast::<u8>();
    // SAFETY: `p` is a live 8-byte block of `arena`.
    unsafe { p.as_ptr().write_bytes(0xAB, 8) };
    // SAFETY: `p` was allocated with `l8` and 64 >= 8.
    let g = unsafe { arena.grow(p, l8, l64) }.unwrap().cast::<u8>();
    assert_eq!(g, p, "grew in place");
    // SAFETY: the first 8 bytes were kept by grow.
    assert!(unsafe { std::slice::from_raw_parts(g.as_ptr(), 8) }
        .iter()
        .all(|&b| b == 0xAB));
    // SAFETY: `g` is a live 64-byte block of `arena`, shrinking to 8.
    let s = unsafe { arena.shrink(g, l64, l8) }.unwrap().cast::<u8>();
    assert_eq!(s, p);
    let q = arena.allocate(l8).unwrap().cast::<u8>();
    assert_eq!(
        q.as_ptr() as usize,
        p.as_ptr() as usize + 8,
        "shrink gave the tail back"
    );
    // SAFETY: `q` is the last block; freeing it moves the bump pointer back.
    unsafe { arena.deallocate(q, l8) };
    let r = arena.allocate(l8).unwrap().cast::<u8>();
    assert_eq!(r, q);
    // Growing a block that is not the last copies it.
    // SAFETY: `p` is live with layout `l8`.
    let moved = unsafe { arena.grow(p, l8, l64) }.unwrap().cast::<u8>();
    assert_ne!(moved, p);
    // SAFETY: the copy holds the first 8 bytes.
    assert!(unsafe { std::slice::from_raw_parts(moved.as_ptr(), 8) }
        .iter()
        .all(|&b| b == 0xAB));
    // Growing to a larger alignment moves it if the address does not fit.
    let big_align = Layout::from_size_align(128, 256).unwrap();
    // SAFETY: `moved` is live with layout `l64`.
    let aligned = unsafe { arena.grow(moved, l64, big_align) }
        .unwrap()
        .cast::<u8>();
    assert_eq!(aligned.as_ptr() as usize % 256, 0);
}

#[test]
fn hashbrown_map_lives_in_the_arena() {
    let arena = Arena::new();
    let mut map = hashbrown::HashMap::new_in(&arena);
    for i in 0..5000u32 {
        map.insert(i, i * 2);
    }
    assert_eq!(map.len(), 5000);
    assert_eq!(map[&4999], 9998);
    assert!(arena.allocated_bytes() > 5000 * 8);
}

#[test]
fn sync_arena_from_many_threads_keeps_every_value() {
    let mut arena = SyncArena::new();
    for round in 0..3u64 {
        let results: Vec<Vec<(usize, u64)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4u64)
                .map(|t| {
                    let arena = &arena;
                    s.spawn(move || {
                        let mut refs = Vec::new();
                        for i in 0..20_000u64 {
                            let v = t << 32 | i | round << 48;
                            let r = if i % 1000 == 0 {
                                // Large requests go to the shared arena directly.
                                let s = arena.alloc_slice_fill_iter((0..5000).map(|_| v));
                                &mut s[4999]
                            } else {
                                arena.alloc(v)
                            };
                            refs.push(r as &u64);
                        }
                        refs.iter()
                            .map(|r| (*r as *const u64 as usize, **r))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut addrs = std::collections::HashSet::new();
        for (t, per_thread) in results.iter().enumerate() {
            for (i, &(addr, value)) in per_thread.iter().enumerate() {
                assert_eq!(value, (t as u64) << 32 | i as u64 | round << 48);
                assert!(addrs.insert(addr), "two values share {addr:#x}");
            }
        }
        arena.reset();
    }
}

#[test]
fn a_thread_using_many_sync_arenas_keeps_them_apart() {
    let arenas: Vec<SyncArena> = (0..9).map(|_| SyncArena::new()).collect();
    let mut seen: Vec<Vec<&u32>> = vec![Vec::new(); arenas.len()];
    for i in 0..1000u32 {
        for (a, arena) in arenas.iter().enumerate() {
            seen[a].push(arena.alloc(i * 16 + a as u32));
        }
    }
    for (a, refs) in seen.iter().enumerate() {
        for (i, r) in refs.iter().enumerate() {
            assert_eq!(**r, i as u32 * 16 + a as u32);
        }
    }
}

#[test]
fn sync_arena_limit_and_reset() {
    let mut arena = SyncArena::new();
    arena.set_limit(Some(10_000));
    let mut n = 0;
    while arena.try_alloc(0u64).is_ok() {
        n += 1;
        assert!(arena.allocated_bytes() <= 10_000);
    }
    assert!(n > 1000, "{n}");
    let held = arena.allocated_bytes();
    arena.reset();
    let mut m = 0;
    while arena.try_alloc(0u64).is_ok() {
        m += 1;
    }
    assert_eq!(arena.allocated_bytes(), held);
    assert!(m >= n - 10, "{m} after reset vs {n}");
}

fn assert_send_sync<T: Send + Sync>() {}
fn assert_send<T: Send>() {}

#[test]
fn thread_markers() {
    assert_send_sync::<SyncArena>();
    assert_send::<Arena>();
    assert_send_sync::<Pool<u8>>();
    assert_send_sync::<Key>();
}

#[derive(Clone, Debug)]
enum PoolOp {
    Insert(u32),
    Remove(usize),
    RemoveStale(usize),
    GetMut(usize, u32),
    Clear,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn pool_matches_a_map_and_rejects_stale_keys(ops in proptest::collection::vec(
        prop_oneof![
            5 => any::<u32>().prop_map(PoolOp::Insert),
            3 => any::<usize>().prop_map(PoolOp::Remove),
            1 => any::<usize>().prop_map(PoolOp::RemoveStale),
            2 => (any::<usize>(), any::<u32>()).prop_map(|(i, v)| PoolOp::GetMut(i, v)),
            1 => Just(PoolOp::Clear),
        ],
        1..400,
    )) {
        let drops = Rc::new(Cell::new(0usize));
        let mut inserted = 0usize;
        let mut pool: Pool<(u32, Counted)> = Pool::new();
        let mut model: HashMap<Key, u32> = HashMap::new();
        let mut live: Vec<Key> = Vec::new();
        let mut stale: Vec<Key> = Vec::new();
        for op in ops {
            match op {
                PoolOp::Insert(v) => {
                    let k = pool.insert((v, Counted(drops.clone())));
                    inserted += 1;
                    prop_assert!(model.insert(k, v).is_none(), "key {:?} reused while live", k);
                    prop_assert!(!stale.contains(&k), "stale key {:?} handed out again", k);
                    live.push(k);
                }
                PoolOp::Remove(i) if !live.is_empty() => {
                    let k = live.swap_remove(i % live.len());
                    let v = pool.remove(k).map(|(v, _)| v);
                    prop_assert_eq!(v, model.remove(&k));
                    stale.push(k);
                }
                PoolOp::RemoveStale(i) if !stale.is_empty() => {
                    let k = stale[i % stale.len()];
                    prop_assert!(pool.remove(k).is_none());
                    prop_assert!(pool.get(k).is_none());
                }
                PoolOp::GetMut(i, v) if !live.is_empty() => {
                    let k = live[i % live.len()];
                    pool.get_mut(k).unwrap().0 = v;
                    model.insert(k, v);
                }
                PoolOp::Clear => {
                    pool.clear();
                    model.clear();
                    stale.append(&mut live);
                }
                _ => {}
            }
            prop_assert_eq!(pool.len(), model.len());
            prop_assert_eq!(drops.get(), inserted - model.len());
            for k in &stale {
                prop_assert!(pool.get(*k).is_none());
            }
            for (k, v) in &model {
                prop_assert_eq!(pool.get(*k).map(|e| e.0), Some(*v));
            }
            let mut listed: Vec<(Key, u32)> = pool.iter().map(|(k, e)| (k, e.0)).collect();
            let mut expected: Vec<(Key, u32)> = model.iter().map(|(k, v)| (*k, *v)).collect();
            listed.sort();
            expected.sort();
            prop_assert_eq!(listed, expected);
        }
        drop(pool);
        prop_assert_eq!(drops.get(), inserted);
    }
}

#[test]
fn pool_keys_are_eight_bytes() {
    assert_eq!(std::mem::size_of::<Key>(), 8);
    assert_eq!(std::mem::size_of::<Option<Key>>(), 8);
}

#[test]
#[should_panic(expected = "is not in the pool")]
fn indexing_with_a_stale_key_panics() {
    let mut pool = Pool::new();
    let k = pool.insert(1);
    pool.remove(k);
    let _ = pool[k];
}

#[test]
fn after_reset_a_growing_vec_moves_to_the_largest_chunk_once() {
    let mut arena = Arena::new();
    let fill = |arena: &Arena| {
        let mut v = allocator_api2::vec::Vec::new_in(arena);
        let mut moves = 0;
        let mut last = v.as_ptr();
        for i in 0..10_007usize {
            v.push(i);
            if v.as_ptr() != last {
                moves += 1;
                last = v.as_ptr();
            }
        }
        moves
    };
    let first = fill(&arena);
    let held = arena.allocated_bytes();
    arena.reset();
    let second = fill(&arena);
    // First pass: a move per new chunk. Second pass: out of the first chunk once, into the
    // largest, where it grows in place to the end; and no new chunk.
    assert!(first > 3, "{first}");
    assert!(second <= 3, "{second} moves after reset");
    assert_eq!(arena.allocated_bytes(), held);
}
