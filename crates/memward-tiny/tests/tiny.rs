//! Integration tests for memward-tiny on the host: randomised alloc/free/realloc against a
//! model, the wee_alloc pattern, out-of-memory through small regions, region joining, and
//! many threads on one allocator. `Tiny::stats` checks the free lists' invariants on every
//! call, so the tests call it after each step.

use core::alloc::{GlobalAlloc, Layout};
use memward_tiny::Tiny;
use proptest::prelude::*;

const WORD: usize = core::mem::size_of::<usize>();
const GRANULE: usize = 2 * WORD;
const MIN_BLOCK: usize = 2 * GRANULE;

/// Block bytes the allocator must find for a request, as its documentation states: a
/// header word, rounded to the granule, at least the minimum block, plus room to align.
fn search_size(size: usize, align: usize) -> usize {
    let need = ((size + WORD + GRANULE - 1) & !(GRANULE - 1)).max(MIN_BLOCK);
    if align <= GRANULE {
        need
    } else {
        need + MIN_BLOCK + align - GRANULE
    }
}

/// A `Tiny` with its own memory, freed after the allocator.
struct Fixture {
    heap: Tiny,
    _memory: Vec<u64>,
}

fn with_region(bytes: usize) -> Fixture {
    let mut memory = vec![0u64; bytes / 8];
    let heap = Tiny::new();
    // SAFETY: `memory` lives as long as the fixture and only the heap uses it.
    unsafe { heap.add_region(memory.as_mut_ptr().cast(), bytes) };
    Fixture {
        heap,
        _memory: memory,
    }
}

#[derive(Clone, Copy, Debug)]
struct Live {
    ptr: *mut u8,
    layout: Layout,
    fill: u8,
}

fn check_contents(live: &[Live]) {
    for l in live {
        // SAFETY: `l` is a live block of `l.layout.size()` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(l.ptr, l.layout.size()) };
        assert!(
            bytes.iter().all(|&b| b == l.fill),
            "block {l:?} overwritten"
        );
    }
}

#[derive(Clone, Debug)]
enum Op {
    Alloc(usize, u8),
    Free(usize),
    Realloc(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let size = prop_oneof![1usize..64, 1usize..1000, 1usize..20_000];
    prop_oneof![
        4 => (size.clone(), 0u8..8).prop_map(|(s, a)| Op::Alloc(s, a)),
        3 => any::<usize>().prop_map(Op::Free),
        2 => (any::<usize>(), size).prop_map(|(i, s)| Op::Realloc(i, s)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn random_alloc_free_realloc_match_the_model(
        ops in proptest::collection::vec(op(), 1..400),
        region in prop_oneof![Just(4096usize), Just(65536), Just(262_144)],
    ) {
        let f = with_region(region);
        let heap = &f.heap;
        let initial = heap.stats();
        prop_assert_eq!(initial.free_blocks, 1);
        let mut live: Vec<Live> = Vec::new();
        let mut fill = 0u8;
        for op in ops {
            match op {
                Op::Alloc(size, shift) => {
                    let layout = Layout::from_size_align(size, 1 << shift).unwrap();
                    // SAFETY: non-zero size.
                    let p = unsafe { heap.alloc(layout) };
                    if p.is_null() {
                        let largest = heap.stats().largest_free_block;
                        prop_assert!(largest < search_size(size, layout.align()),
                            "refused {:?} with a free block of {}", layout, largest);
                    } else {
                        prop_assert_eq!(p as usize % layout.align(), 0);
                        fill = fill.wrapping_add(1);
                        // SAFETY: fresh block of `size` bytes.
                        unsafe { p.write_bytes(fill, size) };
                        live.push(Live { ptr: p, layout, fill });
                    }
                }
                Op::Free(i) if !live.is_empty() => {
                    let l = live.swap_remove(i % live.len());
                    // SAFETY: live block freed once with its layout.
                    unsafe { heap.dealloc(l.ptr, l.layout) };
                }
                Op::Realloc(i, new_size) if !live.is_empty() => {
                    let i = i % live.len();
                    let l = live[i];
                    // SAFETY: live block with its layout; non-zero new size.
                    let p = unsafe { heap.realloc(l.ptr, l.layout, new_size) };
                    if p.is_null() {
                        // The old block is untouched and still live.
                        check_contents(&live[i..=i]);
                    } else {
                        prop_assert_eq!(p as usize % l.layout.align(), 0);
                        let kept = l.layout.size().min(new_size);
                        // SAFETY: the new block holds the first `kept` bytes of the old one.
                        let bytes = unsafe { std::slice::from_raw_parts(p, kept) };
                        prop_assert!(bytes.iter().all(|&b| b == l.fill));
                        // SAFETY: the new block has `new_size` bytes.
                        unsafe { p.write_bytes(l.fill, new_size) };
                        live[i] = Live {
                            ptr: p,
                            layout: Layout::from_size_align(new_size, l.layout.align()).unwrap(),
                            fill: l.fill,
                        };
                    }
                }
                _ => {}
            }
            check_contents(&live);
            let _ = heap.stats(); // checks the free lists
        }
        for l in live.drain(..) {
            // SAFETY: live block freed once with its layout.
            unsafe { heap.dealloc(l.ptr, l.layout) };
        }
        // Everything merged back into the single block it started as.
        prop_assert_eq!(heap.stats(), initial);
    }
}

#[test]
fn the_wee_alloc_pattern_never_grows_the_heap() {
    let f = with_region(65536);
    let heap = &f.heap;
    let initial = heap.stats();
    let big = Layout::from_size_align(20_000, 8).unwrap();
    let other = Layout::from_size_align(24, 8).unwrap();
    for round in 0..20_000 {
        // SAFETY: non-zero layouts; each block freed once with its layout.
        unsafe {
            let a = heap.alloc(big);
            let b = heap.alloc(big);
            assert!(!a.is_null() && !b.is_null(), "round {round}");
            // A small block between rounds, as real programs interleave them.
            let s = heap.alloc(other);
            heap.dealloc(a, big);
            heap.dealloc(b, big);
            heap.dealloc(s, other);
        }
    }
    assert_eq!(heap.stats(), initial);
}

#[test]
fn out_of_memory_in_a_small_region_returns_null_and_recovers() {
    let f = with_region(1024);
    let heap = &f.heap;
    let initial = heap.stats();
    let layout = Layout::from_size_align(16, 8).unwrap();
    let mut blocks = Vec::new();
    loop {
        // SAFETY: non-zero layout.
        let p = unsafe { heap.alloc(layout) };
        if p.is_null() {
            break;
        }
        blocks.push(p);
    }
    // 1024 bytes minus alignment and the sentinel, 32 bytes per block.
    assert!(blocks.len() >= 30, "{} blocks", blocks.len());
    assert_eq!(heap.stats().free_bytes, 0);
    // Larger and over-aligned requests fail cleanly too.
    // SAFETY: non-zero layouts.
    unsafe {
        assert!(heap.alloc(Layout::from_size_align(1, 1).unwrap()).is_null());
        assert!(heap
            .alloc(Layout::from_size_align(1 << 40, 8).unwrap())
            .is_null());
        assert!(heap
            .alloc(Layout::from_size_align(8, 4096).unwrap())
            .is_null());
    }
    // A failed realloc leaves the block as it was.
    // SAFETY: `blocks[0]` is live with `layout`.
    unsafe {
        blocks[0].write_bytes(0x5A, 16);
        assert!(heap.realloc(blocks[0], layout, 100_000).is_null());
        assert!(std::slice::from_raw_parts(blocks[0], 16)
            .iter()
            .all(|&b| b == 0x5A));
    }
    for p in blocks.iter().rev().step_by(2) {
        // SAFETY: each block is live and freed once.
        unsafe { heap.dealloc(*p, layout) };
    }
    for p in blocks.iter().rev().skip(1).step_by(2) {
        // SAFETY: the other half of the blocks, each freed once.
        unsafe { heap.dealloc(*p, layout) };
    }
    assert_eq!(heap.stats(), initial);
}

#[test]
fn a_heap_with_no_region_refuses_everything() {
    let heap = Tiny::new();
    // SAFETY: non-zero layout.
    assert!(unsafe { heap.alloc(Layout::new::<u64>()) }.is_null());
    let mut tiny = [0u64; 2];
    // Too small to hold a block: ignored.
    // SAFETY: `tiny` outlives `heap` and is used by nothing else.
    unsafe { heap.add_region(tiny.as_mut_ptr().cast(), 16) };
    assert_eq!(heap.stats().free_blocks, 0);
    // SAFETY: non-zero layout.
    assert!(unsafe { heap.alloc(Layout::new::<u64>()) }.is_null());
}

#[test]
fn realloc_grows_in_place_into_a_free_neighbour_and_shrinks_in_place() {
    let f = with_region(65536);
    let heap = &f.heap;
    let l = Layout::from_size_align(100, 8).unwrap();
    // SAFETY: non-zero layouts; blocks used within their sizes and freed once.
    unsafe {
        let a = heap.alloc(l);
        let b = heap.alloc(l);
        heap.dealloc(b, l);
        let grown = heap.realloc(a, l, 1000);
        assert_eq!(grown, a, "grew into the free block after it");
        let l1000 = Layout::from_size_align(1000, 8).unwrap();
        let shrunk = heap.realloc(grown, l1000, 50);
        assert_eq!(shrunk, a);
        // The freed tail merged with the free space after it: one free block.
        assert_eq!(heap.stats().free_blocks, 1);
        heap.dealloc(shrunk, Layout::from_size_align(50, 8).unwrap());
    }
}

#[test]
fn separate_regions_stay_apart_and_touching_halves_join() {
    let mut a = vec![0u64; 512];
    let mut b = vec![0u64; 512];
    let heap = Tiny::new();
    // SAFETY: both buffers outlive `heap` and are used by nothing else.
    unsafe {
        heap.add_region(a.as_mut_ptr().cast(), 4096);
        heap.add_region(b.as_mut_ptr().cast(), 4096);
    }
    assert_eq!(heap.stats().free_blocks, 2);
    // SAFETY: non-zero layout.
    assert!(unsafe { heap.alloc(Layout::from_size_align(6000, 8).unwrap()) }.is_null());

    let mut one = vec![0u64; 1024];
    let (x, y) = one.split_at_mut(512);
    let joined = Tiny::new();
    // SAFETY: the halves are one buffer that outlives `joined`.
    unsafe {
        joined.add_region(x.as_mut_ptr().cast(), 4096);
        joined.add_region(y.as_mut_ptr().cast(), 4096);
    }
    assert_eq!(joined.stats().free_blocks, 1);
    // SAFETY: non-zero layout.
    assert!(!unsafe { joined.alloc(Layout::from_size_align(6000, 8).unwrap()) }.is_null());
}

#[test]
fn unaligned_regions_and_large_alignments() {
    let mut memory = vec![0u8; 70_000];
    let heap = Tiny::new();
    // SAFETY: `memory` outlives `heap`; an odd start address is allowed.
    unsafe { heap.add_region(memory.as_mut_ptr().add(3), 69_990) };
    let mut blocks = Vec::new();
    for shift in 0..13 {
        let layout = Layout::from_size_align(40, 1 << shift).unwrap();
        // SAFETY: non-zero layout.
        let p = unsafe { heap.alloc(layout) };
        assert!(!p.is_null());
        assert_eq!(p as usize % layout.align(), 0);
        blocks.push((p, layout));
        heap.stats();
    }
    let initial_blocks = heap.stats();
    for (p, layout) in blocks {
        // SAFETY: each block live and freed once.
        unsafe { heap.dealloc(p, layout) };
    }
    assert_eq!(heap.stats().free_blocks, 1);
    let _ = initial_blocks;
}

#[test]
fn many_threads_share_one_allocator() {
    let f = with_region(4 << 20);
    let heap = &f.heap;
    let initial = heap.stats();
    std::thread::scope(|s| {
        for t in 0..4u8 {
            s.spawn(move || {
                let mut live: Vec<(usize, Layout)> = Vec::new();
                let mut x = 0x9E37_79B9u32.wrapping_mul(u32::from(t) + 1);
                for _ in 0..20_000 {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    if live.len() < 50 || x % 3 == 0 {
                        let layout = Layout::from_size_align(1 + (x as usize % 3000), 8).unwrap();
                        // SAFETY: non-zero layout.
                        let p = unsafe { heap.alloc(layout) };
                        assert!(!p.is_null());
                        // SAFETY: fresh block of that size.
                        unsafe { p.write_bytes(t, layout.size()) };
                        live.push((p as usize, layout));
                    } else {
                        let (p, layout) = live.swap_remove(x as usize % live.len());
                        // SAFETY: our own live block, filled with `t`.
                        unsafe {
                            let bytes = std::slice::from_raw_parts(p as *const u8, layout.size());
                            assert!(bytes.iter().all(|&b| b == t), "another thread wrote here");
                            heap.dealloc(p as *mut u8, layout);
                        }
                    }
                }
                for (p, layout) in live {
                    // SAFETY: our own live blocks, freed once.
                    unsafe { heap.dealloc(p as *mut u8, layout) };
                }
            });
        }
    });
    assert_eq!(heap.stats(), initial);
}
