#![doc = include_str!("../README.md")]
#![no_std]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

// Layers, bottom up: block layout, free lists, the heap algorithm, platform growth, then the
// public `Tiny` with its lock.
mod bins;
mod block;
#[cfg(target_arch = "wasm32")]
mod grow;
mod heap;
mod lock;

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use heap::Heap;
use lock::SpinLock;

/// A small general-purpose allocator for `no_std` targets and WebAssembly.
///
/// Give it memory with [`add_region`](Tiny::add_region), or, on `wasm32`, let it grow linear
/// memory by itself (it does so only while no region was added by hand). Each allocation
/// costs one word of header; freed blocks merge with free neighbours, so no sequence of
/// frees leaves memory cut into adjacent pieces.
///
/// ```
/// use core::alloc::{GlobalAlloc, Layout};
/// use memward_tiny::Tiny;
///
/// static HEAP: Tiny = Tiny::new();
/// static mut MEMORY: [u8; 4096] = [0; 4096];
///
/// // SAFETY: MEMORY is used by nothing else from now on.
/// unsafe { HEAP.add_region(core::ptr::addr_of_mut!(MEMORY).cast(), 4096) };
/// let layout = Layout::from_size_align(100, 8).unwrap();
/// // SAFETY: the layout has a non-zero size; the block is freed with the same layout.
/// unsafe {
///     let p = HEAP.alloc(layout);
///     assert!(!p.is_null());
///     HEAP.dealloc(p, layout);
/// }
/// ```
///
/// As the global allocator on `wasm32` (nothing else to set up):
///
/// ```ignore
/// #[global_allocator]
/// static ALLOC: memward_tiny::Tiny = memward_tiny::Tiny::new();
/// ```
pub struct Tiny {
    lock: SpinLock,
    heap: UnsafeCell<Heap>,
}

// SAFETY: the heap is only reached through `with_heap`, which holds the spin lock, so one
// thread at a time touches it; the raw pointers inside point into memory the heap owns.
unsafe impl Sync for Tiny {}
// SAFETY: as above; nothing in the heap is tied to a thread.
unsafe impl Send for Tiny {}

/// Free-memory statistics from [`Tiny::stats`].
///
/// ```
/// let heap = memward_tiny::Tiny::new();
/// assert_eq!(heap.stats(), memward_tiny::Stats::default());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes in free blocks (headers included).
    pub free_bytes: usize,
    /// Number of free blocks.
    pub free_blocks: usize,
    /// Size of the largest free block (header included).
    pub largest_free_block: usize,
}

impl Default for Tiny {
    fn default() -> Self {
        Tiny::new()
    }
}

impl Tiny {
    /// An allocator with no memory yet (on `wasm32` it will grow linear memory on demand).
    ///
    /// ```
    /// static HEAP: memward_tiny::Tiny = memward_tiny::Tiny::new();
    /// ```
    pub const fn new() -> Tiny {
        Tiny {
            lock: SpinLock::new(),
            heap: UnsafeCell::new(Heap::new()),
        }
    }

    /// Hands `[start, start + len)` to the allocator. Regions too small to hold a block
    /// (about six words after alignment) are ignored. A region that starts exactly where the
    /// previous one ended is joined to it. On `wasm32`, adding a region turns off growing
    /// linear memory.
    ///
    /// # Safety
    /// The memory is valid for reads and writes, used by nothing else, and stays so for as
    /// long as the allocator is used. If the region starts where the previous region ended,
    /// the two must be one contiguous piece of memory (two halves of one buffer, not two
    /// separate allocations that happen to touch).
    ///
    /// ```
    /// use core::alloc::{GlobalAlloc, Layout};
    /// let heap = memward_tiny::Tiny::new();
    /// let mut memory = vec![0u64; 512]; // 4 KiB, word-aligned
    /// let (a, b) = memory.split_at_mut(256);
    /// // SAFETY: `memory` outlives `heap` and is used by nothing else; the halves are one
    /// // buffer, so joining them is allowed.
    /// unsafe {
    ///     heap.add_region(a.as_mut_ptr().cast(), 2048);
    ///     heap.add_region(b.as_mut_ptr().cast(), 2048);
    /// }
    /// // Joined: one block spans both halves.
    /// assert_eq!(heap.stats().free_blocks, 1);
    /// assert!(heap.stats().largest_free_block > 4000);
    /// ```
    pub unsafe fn add_region(&self, start: *mut u8, len: usize) {
        self.with_heap(|heap| {
            heap.user_regions = true;
            // SAFETY: forwarded caller guarantee.
            unsafe { heap.add_region(start, len) };
        })
    }

    /// Free-memory statistics, found by walking the free lists.
    ///
    /// ```
    /// use core::alloc::{GlobalAlloc, Layout};
    /// let heap = memward_tiny::Tiny::new();
    /// let mut memory = vec![0u64; 128];
    /// // SAFETY: `memory` outlives `heap` and is used by nothing else.
    /// unsafe { heap.add_region(memory.as_mut_ptr().cast(), 1024) };
    /// let before = heap.stats();
    /// let layout = Layout::from_size_align(200, 8).unwrap();
    /// // SAFETY: non-zero layout, freed with the same layout.
    /// unsafe { heap.dealloc(heap.alloc(layout), layout) };
    /// assert_eq!(heap.stats(), before); // merged back into one block
    /// ```
    pub fn stats(&self) -> Stats {
        self.with_heap(|heap| {
            let mut stats = Stats::default();
            // SAFETY: the heap's lists hold only its free blocks.
            unsafe {
                heap.bins.for_each(|size| {
                    stats.free_bytes += size;
                    stats.free_blocks += 1;
                    if size > stats.largest_free_block {
                        stats.largest_free_block = size;
                    }
                })
            };
            stats
        })
    }

    #[inline]
    fn with_heap<R>(&self, f: impl FnOnce(&mut Heap) -> R) -> R {
        self.lock.acquire();
        // SAFETY: the lock is held, so this is the only reference to the heap until it is
        // released below; the heap code never panics in release builds, and the lock is
        // released on every return path of `f`.
        let r = f(unsafe { &mut *self.heap.get() });
        self.lock.release();
        r
    }
}

// SAFETY: blocks come from regions the heap owns, are aligned as asked (payloads are
// granule-aligned and over-aligned requests are carved at an aligned address), and are not
// handed out again until freed; failures return null.
unsafe impl GlobalAlloc for Tiny {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the heap's regions are valid (add_region's contract).
        self.with_heap(|heap| unsafe { heap.alloc(layout.size(), layout.align()) })
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: GlobalAlloc's contract: `ptr` came from this allocator and is live.
        self.with_heap(|heap| unsafe { heap.dealloc(ptr) })
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: GlobalAlloc's contract: `ptr` is live with `layout`.
        self.with_heap(|heap| unsafe { heap.realloc(ptr, layout.size(), layout.align(), new_size) })
    }
}
