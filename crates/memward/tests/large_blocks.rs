//! Large and huge blocks through every front end (`raw`, `Memward` as `GlobalAlloc`,
//! first-class heaps): large blocks share segments and grow in place, huge blocks grow by
//! `mremap` without touching their pages, alignments up to 1 GiB, and requests the kernel
//! would refuse fail instead of succeeding. The tests measure process-wide figures (RSS,
//! mapped bytes), so they take a lock and run one at a time.

use allocator_api2::alloc::{Allocator, Layout as ApiLayout};
use std::alloc::{GlobalAlloc, Layout};
use std::ptr::NonNull;
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());
static MEMWARD: memward::Memward = memward::Memward;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Resident bytes of this process (`/proc/self/statm`).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize
}

/// Offsets a test writes and checks in a block of `len` bytes: page starts at 0 and at
/// powers of two (cheap for 1 GiB blocks, yet reaching every part of a block).
fn probes(len: usize) -> impl Iterator<Item = usize> {
    std::iter::once(0).chain(
        (12..usize::BITS)
            .map(|b| 1usize << b)
            .take_while(move |&o| o < len),
    )
}

fn fill(p: *mut u8, len: usize, seed: u8) {
    for off in probes(len).chain([len - 1]) {
        // SAFETY: off < len, inside the caller's block.
        unsafe { *p.add(off) = seed.wrapping_add((off / 4096) as u8) };
    }
}

/// Checks what `fill(p, n, seed)` wrote at the probes below `len` (`len <= n`).
fn verify(p: *const u8, len: usize, seed: u8) -> bool {
    // SAFETY: off < len, inside the caller's block.
    probes(len).all(|off| unsafe { *p.add(off) } == seed.wrapping_add((off / 4096) as u8))
}

#[test]
fn large_blocks_share_segments() {
    let _g = serial();
    let before = memward::stats().mapped_bytes;
    let n = 2000;
    let size = 70_000;
    let blocks: Vec<*mut u8> = (0..n).map(|_| memward::raw::malloc(size)).collect();
    let grown = memward::stats().mapped_bytes.saturating_sub(before) as usize;
    // One 4 MiB segment per block would be 8 GB; runs of 32 KiB slots take 96 KiB each.
    assert!(
        grown <= n * 96 * KIB * 11 / 10 + 16 * MIB,
        "{n} blocks of {size} B mapped {grown} bytes"
    );
    for (i, &p) in blocks.iter().enumerate() {
        assert!(!p.is_null());
        assert_eq!(p as usize % 16, 0);
        // SAFETY: a live block from memward (of this layout), used once.
        assert!(unsafe { memward::raw::usable_size(p) } >= size);
        fill(p, size, i as u8);
    }
    // Free every other block, then reuse the runs with bigger blocks.
    for &p in blocks.iter().step_by(2) {
        // SAFETY: a live block from memward (of this layout), used once.
        unsafe { memward::raw::free(p) };
    }
    let bigger: Vec<*mut u8> = (0..n / 2).map(|_| memward::raw::malloc(100_000)).collect();
    for (i, &p) in bigger.iter().enumerate() {
        fill(p, 100_000, (i + 7) as u8);
    }
    for (i, &p) in blocks.iter().enumerate().skip(1).step_by(2) {
        assert!(verify(p, size, i as u8), "block {i} lost its content");
    }
    memward::check_thread_heap();
    // Half of the rest is freed by another thread.
    let remote: Vec<usize> = blocks
        .iter()
        .skip(1)
        .step_by(4)
        .map(|&p| p as usize)
        .collect();
    std::thread::spawn(move || {
        for p in remote {
            // SAFETY: a live block from memward (of this layout), used once.
            unsafe { memward::raw::free(p as *mut u8) };
        }
    })
    .join()
    .unwrap();
    for &p in blocks.iter().skip(3).step_by(4) {
        // SAFETY: a live block from memward (of this layout), used once.
        unsafe { memward::raw::free(p) };
    }
    for (i, &p) in bigger.iter().enumerate() {
        assert!(verify(p, 100_000, (i + 7) as u8));
        // SAFETY: a live block from memward (of this layout), used once.
        unsafe { memward::raw::free(p) };
    }
    memward::raw::collect();
    memward::check_thread_heap();
}

#[test]
fn large_blocks_of_exited_threads_are_freed_later() {
    let _g = serial();
    let blocks: Vec<usize> = std::thread::spawn(|| {
        (0..300)
            .map(|i| {
                let p = memward::raw::malloc(65 * KIB + i * 3000);
                fill(p, 65 * KIB + i * 3000, i as u8);
                p as usize
            })
            .collect()
    })
    .join()
    .unwrap();
    for (i, &p) in blocks.iter().enumerate() {
        assert!(verify(p as *const u8, 65 * KIB + i * 3000, i as u8));
        // SAFETY: a live block from memward (of this layout), used once.
        unsafe { memward::raw::free(p as *mut u8) };
    }
    // A new thread adopts what the first left and allocates from it.
    std::thread::spawn(|| {
        for _ in 0..50 {
            let p = memward::raw::malloc(300 * KIB);
            fill(p, 300 * KIB, 3);
            // SAFETY: a live block from memward (of this layout), used once.
            unsafe { memward::raw::free(p) };
        }
        memward::check_thread_heap();
    })
    .join()
    .unwrap();
}

#[test]
fn a_large_block_grows_and_shrinks_in_place() {
    let _g = serial();
    // A fresh heap gets a fresh large segment: the block starts its first run.
    let heap = memward::Heap::new();
    let small = ApiLayout::from_size_align(100_000, 16).unwrap();
    let p = heap.allocate(small).unwrap().cast::<u8>();
    fill(p.as_ptr(), 100_000, 1);
    let big = ApiLayout::from_size_align(250_000, 16).unwrap();
    // SAFETY: p is a live block of `heap` with layout `small`.
    let q = unsafe { heap.grow(p, small, big) }.unwrap().cast::<u8>();
    assert_eq!(q, p, "the slots after the run were free: grown in place");
    assert!(verify(q.as_ptr(), 100_000, 1));
    fill(q.as_ptr(), 250_000, 2);
    let mid = ApiLayout::from_size_align(90_000, 16).unwrap();
    // SAFETY: q is live with layout `big`.
    let r = unsafe { heap.shrink(q, big, mid) }.unwrap().cast::<u8>();
    assert_eq!(r, q, "shrunk in place");
    assert!(verify(r.as_ptr(), 90_000, 2));
    // The slots given back (five) are used by the next block, right after the run.
    let tail = ApiLayout::from_size_align(70_000, 16).unwrap();
    let other = heap.allocate(tail).unwrap().cast::<u8>();
    let gap = other.as_ptr() as usize - r.as_ptr() as usize;
    assert!(gap < 256 * KIB, "next block placed {gap} bytes on");
    // Grown past 256 KiB, a block moves to a mapping of its own (once), from which
    // growing further is an mremap: it never comes back to be copied at 2 MiB.
    let huge = ApiLayout::from_size_align(1_500_000, 16).unwrap();
    // SAFETY: r is live with layout `mid`.
    let s = unsafe { heap.grow(r, mid, huge) }.unwrap().cast::<u8>();
    assert!(verify(s.as_ptr(), 90_000, 2));
    let segment = |p: NonNull<u8>| p.as_ptr() as usize & !(4 * MIB - 1);
    assert_ne!(
        segment(s),
        segment(other),
        "moved out of the shared segment"
    );
    fill(s.as_ptr(), 1_500_000, 3);
    let bigger = ApiLayout::from_size_align(9_000_000, 16).unwrap();
    // SAFETY: s is live with layout `huge`.
    let t = unsafe { heap.grow(s, huge, bigger) }.unwrap().cast::<u8>();
    assert!(verify(t.as_ptr(), 1_500_000, 3));
    // SAFETY: both blocks are live blocks of `heap`.
    unsafe {
        heap.deallocate(other, tail);
        heap.deallocate(t, bigger);
    }
}

#[test]
fn freed_large_runs_are_reused_newest_first() {
    let _g = serial();
    let heap = memward::Heap::new();
    let large = ApiLayout::from_size_align(70_000, 16).unwrap();
    let small = ApiLayout::from_size_align(100, 16).unwrap();
    let blocks: Vec<NonNull<u8>> = (0..10)
        .map(|_| heap.allocate(large).unwrap().cast())
        .collect();
    // SAFETY: each is a live block of `heap` with layout `large`, freed once.
    unsafe {
        // A hole near the start of the segment, where a first-fit scan would look...
        heap.deallocate(blocks[2], large);
        // ...and two freed later, with a small block between that takes neither.
        heap.deallocate(blocks[7], large);
        let s = heap.allocate(small).unwrap().cast::<u8>();
        heap.deallocate(blocks[5], large);
        // The newest freed runs are resident and likely cached: they come back first.
        let a = heap.allocate(large).unwrap().cast::<u8>();
        let b = heap.allocate(large).unwrap().cast::<u8>();
        let c = heap.allocate(large).unwrap().cast::<u8>();
        assert_eq!([a, b, c], [blocks[5], blocks[7], blocks[2]]);
        heap.deallocate(s, small);
        for p in [a, b, c] {
            heap.deallocate(p, large);
        }
        for i in [0, 1, 3, 4, 6, 8, 9] {
            heap.deallocate(blocks[i], large);
        }
    }
}

#[test]
fn huge_realloc_moves_pages_not_bytes() {
    let _g = serial();
    let before = rss();
    let p = memward::raw::calloc(200, MIB);
    assert!(!p.is_null());
    // SAFETY: p is a live memward block.
    let q = unsafe { memward::raw::realloc(p, 400 * MIB) };
    assert!(!q.is_null());
    let after = rss();
    assert!(
        after < before + 8 * MIB,
        "an untouched calloc grown by realloc became resident: {} MiB",
        (after - before) / MIB
    );
    // SAFETY: q has 400 MiB; grown memory reads as zero.
    unsafe {
        assert_eq!(*q, 0);
        assert_eq!(*q.add(400 * MIB - 1), 0);
    }
    // Content survives growth by steps and a shrink.
    let mut n = 3 * MIB;
    let mut b = memward::raw::malloc(n);
    fill(b, n, 9);
    while n < 96 * MIB {
        // SAFETY: b is live.
        b = unsafe { memward::raw::realloc(b, n * 2) };
        assert!(!b.is_null());
        assert!(verify(b, n, 9), "content lost growing from {n}");
        fill(b, n * 2, 9);
        n *= 2;
    }
    // SAFETY: b is live.
    let s = unsafe { memward::raw::realloc(b, 5 * MIB) };
    assert!(verify(s, 5 * MIB, 9));
    // SAFETY: both are live.
    unsafe {
        memward::raw::free(s);
        memward::raw::free(q);
    }
    memward::check_thread_heap();
}

#[test]
fn alignments_up_to_1_gib_through_every_front_end() {
    let _g = serial();
    let heap = memward::Heap::new();
    assert_eq!(memward::raw::MAX_ALIGNMENT, 1 << 30);
    for lg in 4..=30 {
        let align = 1usize << lg;
        for size in [1, align, align + 100] {
            // raw
            let p = memward::raw::aligned_alloc(align, size);
            assert!(
                !p.is_null() && p as usize % align == 0,
                "raw {align}/{size}"
            );
            fill(p, size, 4);
            // SAFETY: p is live with this alignment.
            let q = unsafe { memward::raw::realloc_aligned(p, size * 2 + 4096, align) };
            assert!(!q.is_null() && q as usize % align == 0);
            assert!(verify(q, size, 4));
            // SAFETY: a live block from memward (of this layout), used once.
            unsafe { memward::raw::free(q) };

            // GlobalAlloc
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: a non-zero-size layout.
            let g = unsafe { MEMWARD.alloc(layout) };
            assert!(
                !g.is_null() && g as usize % align == 0,
                "global {align}/{size}"
            );
            fill(g, size, 5);
            // SAFETY: g is live with `layout`.
            let g2 = unsafe { MEMWARD.realloc(g, layout, size * 3 + 100) };
            assert!(!g2.is_null() && g2 as usize % align == 0, "global realloc");
            assert!(verify(g2, size, 5));
            let layout2 = Layout::from_size_align(size * 3 + 100, align).unwrap();
            // SAFETY: g2 is live with `layout2`.
            unsafe { MEMWARD.dealloc(g2, layout2) };
            // SAFETY: a non-zero-size layout.
            let z = unsafe { MEMWARD.alloc_zeroed(layout) };
            assert!(!z.is_null() && z as usize % align == 0);
            assert!(unsafe { *z == 0 && *z.add(size - 1) == 0 });
            // SAFETY: a live block from memward (of this layout), used once.
            unsafe { MEMWARD.dealloc(z, layout) };

            // first-class heap
            let l = ApiLayout::from_size_align(size, align).unwrap();
            let h: NonNull<u8> = heap.allocate(l).unwrap().cast();
            assert_eq!(h.as_ptr() as usize % align, 0, "heap {align}/{size}");
            fill(h.as_ptr(), size, 6);
            let l2 = ApiLayout::from_size_align(size * 2, align).unwrap();
            // SAFETY: h is live with `l`.
            let h2: NonNull<u8> = unsafe { heap.grow(h, l, l2) }.unwrap().cast();
            assert_eq!(h2.as_ptr() as usize % align, 0);
            assert!(verify(h2.as_ptr(), size, 6));
            // SAFETY: a live block from memward (of this layout), used once.
            unsafe { heap.deallocate(h2, l2) };
        }
    }
    memward::check_thread_heap();
}

#[test]
fn impossible_sizes_fail() {
    let _g = serial();
    assert!(memward::raw::malloc(usize::MAX / 2).is_null());
    assert!(memward::raw::calloc(1 << 40, 1 << 40).is_null());
    let mode = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").unwrap();
    // Mode 1 ("always overcommit") grants anything that fits the address space, to
    // glibc as well; modes 0 (heuristic, the default) and 2 refuse more than RAM + swap.
    if mode.trim() == "1" {
        eprintln!("vm.overcommit_memory=1: the kernel grants any size; not checked");
        return;
    }
    let too_big = 64usize << 40; // 64 TiB
    assert!(memward::raw::malloc(too_big).is_null());
    assert!(memward::raw::calloc(1 << 20, 64 << 20).is_null());
    let layout = Layout::from_size_align(too_big, 4096).unwrap();
    // SAFETY: a non-zero-size layout.
    assert!(unsafe { MEMWARD.alloc(layout) }.is_null());
    let heap = memward::Heap::new();
    assert!(heap
        .allocate(ApiLayout::from_size_align(too_big, 1 << 30).unwrap())
        .is_err());
    // A failed realloc leaves the block as it was.
    let p = memward::raw::malloc(3 * MIB);
    fill(p, 3 * MIB, 8);
    // SAFETY: p is live.
    assert!(unsafe { memward::raw::realloc(p, too_big) }.is_null());
    assert!(verify(p, 3 * MIB, 8));
    unsafe { memward::raw::free(p) };
    memward::check_thread_heap();
}
