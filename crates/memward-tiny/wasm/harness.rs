//! The WebAssembly module `scripts/wasm-size` builds once per allocator (talc's wasm-size
//! harness: three exported functions that allocate, free and reallocate with alignment 8,
//! and nothing else). Which allocator is chosen by `--cfg`:
//! `alloc_none` (a global allocator that always fails: the no-allocator baseline),
//! `alloc_tiny` (memward-tiny), `alloc_lol` (lol_alloc's free-list allocator, if built),
//! `alloc_std` (the standard library's own wasm32 allocator, dlmalloc, with std linked in;
//! compared with `alloc_std_none`, std linked in with the failing allocator).

#![cfg_attr(not(any(alloc_std, alloc_std_none)), no_std)]

use core::alloc::{GlobalAlloc, Layout};

#[cfg(any(alloc_none, alloc_std_none))]
struct NoAlloc;

#[cfg(any(alloc_none, alloc_std_none))]
// SAFETY: never hands out memory.
unsafe impl GlobalAlloc for NoAlloc {
    unsafe fn alloc(&self, _: Layout) -> *mut u8 {
        core::ptr::null_mut()
    }
    unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
}

#[cfg(any(alloc_none, alloc_std_none))]
#[global_allocator]
static ALLOC: NoAlloc = NoAlloc;

#[cfg(alloc_tiny)]
#[global_allocator]
static ALLOC: memward_tiny::Tiny = memward_tiny::Tiny::new();

#[cfg(alloc_lol)]
#[global_allocator]
// SAFETY: the module is single-threaded (no wasm threads).
static ALLOC: lol_alloc::AssumeSingleThreaded<lol_alloc::FreeListAllocator> =
    unsafe { lol_alloc::AssumeSingleThreaded::new(lol_alloc::FreeListAllocator::new()) };

#[cfg(alloc_std)]
#[global_allocator]
static ALLOC: std::alloc::System = std::alloc::System;

#[cfg(not(any(alloc_std, alloc_std_none)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}

fn layout(size: usize) -> Layout {
    // SAFETY: alignment 8 is a power of two and the sizes used stay far below isize::MAX.
    unsafe { Layout::from_size_align_unchecked(size, 8) }
}

/// Allocates `size` bytes aligned to 8; 0 on failure.
#[no_mangle]
pub extern "C" fn alloc(size: usize) -> *mut u8 {
    // SAFETY: callers pass a non-zero size.
    unsafe { ALLOC.alloc(layout(size)) }
}

/// Frees a block from `alloc`/`realloc` of `size` bytes.
///
/// # Safety
/// `ptr` is live and was allocated with `size`.
#[no_mangle]
pub unsafe extern "C" fn dealloc(ptr: *mut u8, size: usize) {
    // The caller upholds GlobalAlloc's contract (rustc 1.63 allows unsafe calls directly
    // in an unsafe fn, and this file builds only there).
    ALLOC.dealloc(ptr, layout(size))
}

/// Resizes a block from `alloc`/`realloc`; 0 on failure (the block is then unchanged).
///
/// # Safety
/// `ptr` is live and was allocated with `old`; `new` is non-zero.
#[no_mangle]
pub unsafe extern "C" fn realloc(ptr: *mut u8, old: usize, new: usize) -> *mut u8 {
    // The caller upholds GlobalAlloc's contract (rustc 1.63 allows unsafe calls directly
    // in an unsafe fn, and this file builds only there).
    ALLOC.realloc(ptr, layout(old), new)
}
