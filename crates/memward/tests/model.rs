//! Randomised alloc/realloc/free/transfer sequences over the raw API, checked against a
//! model (the `memward-model` crate, which the fuzz target in `fuzz/` shares): every live
//! block keeps its contents and alignment across threads, thread exits and reallocations,
//! and heap invariants hold throughout. The test binary itself runs on the system
//! allocator, so only memward's own blocks are under test.

use allocator_api2::vec::Vec as HeapVec;
use memward::raw;
use memward_model::{lockstep, random_actions, stress, Mix};
use std::collections::HashMap;

#[test]
fn random_sequences_keep_contents_and_alignment() {
    for seed in 1..=4u64 {
        let seed = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        lockstep::run(1, random_actions(seed, 20_000, 1, Mix::default()));
    }
}

#[test]
fn random_sequences_on_several_threads_at_once() {
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                lockstep::run(1, random_actions(t + 100, 10_000, 1, Mix::default()))
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Blocks move between four threads (so most frees and reallocations are cross-thread:
/// the outbox and the remote-free queue), and threads exit with blocks still live and are
/// replaced (abandoned heaps, adoption, frees into abandoned segments).
#[test]
fn random_transfers_between_threads_and_thread_restarts() {
    let mix = Mix {
        alloc: 5,
        realloc: 2,
        free: 3,
        transfer: 3,
        restart: 1,
    };
    for seed in 1..=3u64 {
        lockstep::run(4, random_actions(seed * 7919, 15_000, 4, mix));
    }
}

/// Many frees of one thread's blocks by another: enough to fill the 64-block outbox many
/// times over, with the allocating thread restarted between bursts.
#[test]
fn transfer_heavy_sequences() {
    let mix = Mix {
        alloc: 4,
        realloc: 1,
        free: 2,
        transfer: 6,
        restart: 1,
    };
    lockstep::run(2, random_actions(0xfeed, 20_000, 2, mix));
}

/// Threads race, swapping blocks through shared slots, and die with blocks alive that
/// the next round's threads free.
#[test]
fn racing_threads_exchange_blocks_and_die_with_blocks_alive() {
    stress::run(stress::Config {
        threads: 4,
        rounds: 6,
        steps: 5_000,
        slots: 64,
        seed: 0x5eed,
    });
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
    let b = memward_model::Block::alloc(100 * 1024, 16, false, 7);
    let before = b.addr();
    // Block::realloc checks that the first 100 KiB came along.
    let b = b.realloc(250 * 1024);
    assert_eq!(before, b.addr(), "a large block grows inside its segment");
    // Past 256 KiB it moves to a mapping of its own, once; then it grows by mremap.
    let b = b.realloc(1 << 20);
    assert_ne!(
        before >> 22,
        b.addr() >> 22,
        "a growing block leaves its large segment"
    );
    let b = b.realloc(8 << 20);
    b.free();
    // Small blocks stay put while they fit their class.
    let s = raw::malloc(100);
    // SAFETY: live pointers.
    unsafe {
        assert_eq!(raw::realloc(s, 110), s);
        raw::free(s);
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
