//! `GlobalAlloc` for `#[global_allocator]`.
//!
//! `dealloc` and `realloc` check that the pointer lies in memward's memory (one load from
//! the segment map), as the C `free` does, and abort with `memward: free(): invalid
//! pointer` otherwise (after offering it to a checker, when one is interposed); the engine
//! checks the rest (interior pointers, double frees, `hardening.rs`). Safe Rust never
//! passes such a pointer; `unsafe` code that does gets glibc's answer instead of a
//! corrupted heap.

use crate::free::{free_any, through_interposer};
use crate::segment::Segment;
use crate::{alloc, hardening, segment_map, thread};
use core::alloc::{GlobalAlloc, Layout};

/// Is `ptr` in a memward segment? If not, a checker (when one is interposed) reports it
/// and `false` is returned; without one the process aborts with `<message>`.
#[inline(always)]
fn owned(ptr: *mut u8, api: &'static str, message: &'static str) -> bool {
    segment_map::contains(Segment::of(ptr) as usize) || not_owned(ptr, api, message)
}

#[cold]
#[inline(never)]
fn not_owned(ptr: *mut u8, api: &'static str, message: &'static str) -> bool {
    // SAFETY: the interposer's contract (any pointer; it reports foreign ones).
    if through_interposer(|i| unsafe { (i.foreign_free)(ptr, api) }).is_some() {
        return false;
    }
    hardening::fatal(message)
}

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
        if owned(ptr, "free", "free(): invalid pointer") {
            // SAFETY: std passes a pointer this allocator returned (not null); it is in
            // memward's memory (checked), and the engine checks that it is a live block
            // start.
            unsafe { free_any(ptr) }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the thread's own heap.
        unsafe { alloc::heap_alloc_zeroed(thread::current(), layout.size(), layout.align()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !owned(ptr, "realloc", "realloc(): invalid pointer") {
            return core::ptr::null_mut();
        }
        // SAFETY: std passes a live pointer with this layout's alignment.
        unsafe { alloc::heap_realloc(thread::current(), ptr, new_size, layout.align()) }
    }
}
