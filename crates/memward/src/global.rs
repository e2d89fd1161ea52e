//! `GlobalAlloc` for `#[global_allocator]`.

use crate::{alloc, thread};
use core::alloc::{GlobalAlloc, Layout};

/// memward as the process's global allocator.
///
/// ```
/// #[global_allocator]
/// static GLOBAL: memward::Memward = memward::Memward;
///
/// fn main() {
///     let v: Vec<u32> = (0..1000).collect();
///     assert_eq!(v.iter().sum::<u32>(), 499_500);
/// }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Memward;

// SAFETY: every method returns null on failure, never unwinds, returns blocks of at least
// `layout.size()` bytes aligned to `layout.align()`, and `dealloc`/`realloc` accept exactly
// the pointers the other methods returned.
unsafe impl GlobalAlloc for Memward {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the thread's own heap.
        unsafe { alloc::heap_alloc(thread::current(), layout.size(), layout.align()) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: std passes a pointer this allocator returned.
        unsafe { alloc::free(ptr) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the thread's own heap.
        unsafe { alloc::heap_alloc_zeroed(thread::current(), layout.size(), layout.align()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: std passes a live pointer with this layout's alignment.
        unsafe { alloc::heap_realloc(thread::current(), ptr, new_size, layout.align()) }
    }
}
