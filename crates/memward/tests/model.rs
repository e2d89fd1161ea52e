//! Randomised alloc/realloc/free sequences over the raw API, checked against a model: every
//! live block keeps its contents and alignment, and heap invariants hold throughout. The
//! test binary itself runs on the system allocator, so only memward's own blocks are
//! under test.

use allocator_api2::vec::Vec as HeapVec;
use memward::raw;
use std::collections::HashMap;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Live {
    ptr: *mut u8,
    size: usize,
    align: usize,
    seed: u8,
}

fn fill(p: *mut u8, size: usize, seed: u8) {
    for i in 0..size {
        // SAFETY: p has at least `size` usable bytes.
        unsafe { *p.add(i) = seed.wrapping_add(i as u8) };
    }
}

fn verify(b: &Live, upto: usize) {
    for i in 0..upto.min(b.size) {
        // SAFETY: b.ptr has at least b.size bytes.
        let v = unsafe { *b.ptr.add(i) };
        assert_eq!(
            v,
            b.seed.wrapping_add(i as u8),
            "byte {i} of a {}-byte block corrupted",
            b.size
        );
    }
}

/// Cheaper check for the periodic sweep: the first and last 64 bytes.
fn verify_edges(b: &Live) {
    verify(b, 64);
    for i in b.size.saturating_sub(64)..b.size {
        // SAFETY: b.ptr has at least b.size bytes.
        let v = unsafe { *b.ptr.add(i) };
        assert_eq!(
            v,
            b.seed.wrapping_add(i as u8),
            "byte {i} of a {}-byte block corrupted",
            b.size
        );
    }
}

fn random_size(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=59 => rng.below(129) as usize,
        60..=84 => rng.below(8 * 1024) as usize,
        85..=96 => rng.below(80 * 1024) as usize,
        97..=98 => rng.below(2 << 20) as usize,
        _ => (2 << 20) + rng.below(6 << 20) as usize,
    }
}

fn random_align(rng: &mut Rng) -> usize {
    match rng.below(10) {
        0..=6 => 16,
        7 => 1 << rng.below(7),
        8 => 1 << (7 + rng.below(6)),
        _ => 1 << (13 + rng.below(9)), // up to 2 MiB
    }
}

fn run_model(seed: u64, steps: usize) {
    let mut rng = Rng(seed);
    let mut live: Vec<Live> = Vec::new();
    for step in 0..steps {
        match rng.below(10) {
            0..=4 => {
                let size = random_size(&mut rng);
                let mut align = random_align(&mut rng);
                if align == 16 && size <= 8 {
                    align = 8; // C malloc only promises 8 for blocks of 8 bytes or less
                }
                let zeroed = rng.below(4) == 0;
                let p = if zeroed && align <= 16 {
                    raw::calloc(1, size)
                } else if align <= 16 {
                    raw::malloc(size)
                } else {
                    raw::aligned_alloc(align, size)
                };
                assert!(!p.is_null(), "allocation of {size} aligned {align} failed");
                assert_eq!(p as usize % align, 0, "size {size} align {align}");
                assert!(size <= 8 || p as usize % 16 == 0, "malloc alignment");
                // SAFETY: p is live.
                assert!(unsafe { raw::usable_size(p) } >= size);
                if zeroed && align <= 16 {
                    for i in 0..size {
                        // SAFETY: p has size bytes.
                        assert_eq!(unsafe { *p.add(i) }, 0, "calloc byte {i} of {size}");
                    }
                }
                let seed = rng.next() as u8;
                fill(p, size, seed);
                live.push(Live {
                    ptr: p,
                    size,
                    align,
                    seed,
                });
            }
            5..=6 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                let new_size = random_size(&mut rng);
                let b = &mut live[i];
                // SAFETY: b.ptr is live with alignment b.align.
                let q = unsafe { raw::realloc_aligned(b.ptr, new_size, b.align) };
                assert!(!q.is_null());
                assert_eq!(
                    q as usize % b.align,
                    0,
                    "realloc lost alignment {}",
                    b.align
                );
                b.ptr = q;
                verify(b, new_size);
                b.size = new_size;
                fill(b.ptr, b.size, b.seed);
            }
            _ if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                let b = live.swap_remove(i);
                verify(&b, b.size);
                // SAFETY: b.ptr is live and freed once.
                unsafe { raw::free(b.ptr) };
            }
            _ => {}
        }
        if step % 997 == 0 {
            memward::check_thread_heap();
            for b in &live {
                verify_edges(b);
            }
        }
    }
    for b in live {
        verify(&b, b.size);
        // SAFETY: live and freed once.
        unsafe { raw::free(b.ptr) };
    }
    memward::check_thread_heap();
}

#[test]
fn random_sequences_keep_contents_and_alignment() {
    for seed in 1..=4u64 {
        run_model(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), 20_000);
    }
}

#[test]
fn random_sequences_on_several_threads_at_once() {
    let threads: Vec<_> = (0..4u64)
        .map(|t| std::thread::spawn(move || run_model(t + 100, 10_000)))
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn c_like_edge_cases() {
    let a = raw::malloc(0);
    let b = raw::malloc(0);
    assert!(
        !a.is_null() && !b.is_null() && a != b,
        "malloc(0) gives unique pointers"
    );
    assert!(raw::calloc(usize::MAX / 2, 3).is_null());
    assert!(raw::aligned_alloc(3, 16).is_null());
    assert!(raw::aligned_alloc(raw::MAX_ALIGNMENT * 2, 16).is_null());
    let c = raw::aligned_alloc(2 << 20, 2 << 20);
    assert_eq!(c as usize % (2 << 20), 0, "size == alignment == 2 MiB");
    // SAFETY: c has 2 MiB.
    unsafe { *c.add((2 << 20) - 1) = 1 };
    assert!(raw::malloc(usize::MAX - 4096).is_null());
    assert!(raw::aligned_alloc(4096, usize::MAX - 100).is_null());
    // SAFETY: all live.
    unsafe {
        assert!(
            raw::realloc(a, usize::MAX).is_null(),
            "failed realloc keeps the block"
        );
        raw::free(a);
        raw::free(b);
        raw::free(c);
        raw::free(std::ptr::null_mut());
    }
}

#[test]
fn realloc_grows_large_blocks_in_place() {
    let p = raw::malloc(100 * 1024);
    fill(p, 100 * 1024, 7);
    // SAFETY: p is live.
    let q = unsafe { raw::realloc(p, 1 << 20) };
    assert_eq!(p, q, "a large block grows inside its segment");
    verify(
        &Live {
            ptr: q,
            size: 100 * 1024,
            align: 16,
            seed: 7,
        },
        100 * 1024,
    );
    // Small blocks stay put while they fit their class.
    let s = raw::malloc(100);
    // SAFETY: live pointers.
    unsafe {
        assert_eq!(raw::realloc(s, 110), s);
        raw::free(s);
        raw::free(q);
    }
}

#[test]
fn first_class_heap_with_collections() {
    let heap = memward::Heap::new();
    {
        let mut map: hashbrown::HashMap<u64, String, _, _> =
            hashbrown::HashMap::with_hasher_in(hashbrown::DefaultHashBuilder::default(), &heap);
        for i in 0..20_000u64 {
            map.insert(i, format!("value {i}"));
        }
        let mut v = HeapVec::new_in(&heap);
        for i in 0..100_000u32 {
            v.push(i);
        }
        assert_eq!(map[&777], "value 777");
        assert_eq!(v.iter().map(|&x| x as u64).sum::<u64>(), 4_999_950_000);
        assert!(heap.in_use_bytes() >= 400_000);
    }
    assert_eq!(heap.in_use_bytes(), 0, "everything was freed");
    // Blocks left allocated are reclaimed by drop, including ones with odd alignments.
    let leaked = HeapVec::<u8, _>::with_capacity_in(1 << 20, &heap);
    std::mem::forget(leaked);
    let big = allocator_api2::boxed::Box::new_in([0u8; 4096], &heap);
    std::mem::forget(big);
    let before = memward::stats().in_use_bytes;
    drop(heap);
    let after = memward::stats().in_use_bytes;
    assert!(
        before >= after + (1 << 20),
        "drop frees what the heap held: {before} -> {after}"
    );
}

#[test]
fn first_class_heap_blocks_freed_from_other_threads() {
    let heap = memward::Heap::new();
    let mut blocks = Vec::new();
    for i in 0..10_000usize {
        let layout = allocator_api2::alloc::Layout::from_size_align(16 + i % 300, 8).unwrap();
        let p = allocator_api2::alloc::Allocator::allocate(&heap, layout).unwrap();
        blocks.push(p.as_ptr() as *mut u8 as usize);
    }
    let held = heap.in_use_bytes();
    let (first, rest) = blocks.split_at(5000);
    let first = first.to_vec();
    std::thread::spawn(move || {
        for p in first {
            // SAFETY: live blocks of the heap, freed once.
            unsafe { raw::free(p as *mut u8) };
        }
    })
    .join()
    .unwrap();
    // The queued remote frees are applied at the heap's next slow path.
    for _ in 0..2000 {
        let layout = allocator_api2::alloc::Layout::from_size_align(5000, 8).unwrap();
        let p = allocator_api2::alloc::Allocator::allocate(&heap, layout).unwrap();
        // SAFETY: just allocated from this heap.
        unsafe { allocator_api2::alloc::Allocator::deallocate(&heap, p.cast(), layout) };
    }
    let after = heap.in_use_bytes();
    assert!(
        after < held,
        "remote frees reached the heap: {held} -> {after}"
    );
    for &p in rest {
        // SAFETY: live blocks of the heap, freed once.
        unsafe { raw::free(p as *mut u8) };
    }
    assert_eq!(heap.in_use_bytes(), 0);
    drop(heap);
}

#[test]
fn foreign_pointers_are_not_owned() {
    let on_stack = 0u64;
    let boxed = Box::new(1u64); // system allocator in this test binary
    assert!(!raw::owns(&on_stack as *const u64 as *const u8));
    assert!(!raw::owns(&*boxed as *const u64 as *const u8));
    let mine = raw::malloc(64);
    assert!(raw::owns(mine));
    // SAFETY: live.
    unsafe { raw::free(mine) };
    let mut counts = HashMap::new();
    for size in memward::size_classes() {
        *counts.entry(size % 16).or_insert(0) += 1;
    }
    assert_eq!(
        counts.get(&8),
        Some(&1),
        "only the 8-byte class is not a multiple of 16"
    );
}
