//! Chunks: the blocks of memory an arena bumps through.
//!
//! A chunk is one allocation from the global allocator with a small header at its start
//! (the next chunk in the arena's list and the chunk's total size) followed by the bump
//! region. The arena keeps every chunk it ever allocated in one singly linked list, in the
//! order it used them; `reset` and scopes only move the bump pointer back to an earlier
//! chunk, so a later pass reuses the same chunks in the same order and reaches a steady
//! state with no calls to the global allocator at all (bumpalo keeps only its largest
//! chunk on reset, which re-allocates every other one on the next pass).
//!
//! This module is the only one that calls the global allocator for chunks; everything it
//! hands out is a `NonNull<ChunkHeader>` whose header it has initialised.

use alloc::alloc::{alloc, dealloc};
use core::alloc::Layout;
use core::mem::size_of;
use core::ptr::NonNull;

/// Alignment of every chunk and of the start of its bump region.
pub(crate) const CHUNK_ALIGN: usize = 16;

/// The header at the start of every chunk.
#[repr(C, align(16))]
pub(crate) struct ChunkHeader {
    /// The chunk used after this one, if any.
    pub(crate) next: Option<NonNull<ChunkHeader>>,
    /// Total bytes of the chunk, header included (what `allocated_bytes` counts).
    pub(crate) size: usize,
}

/// No chunk ends within this many bytes of the top of the address space, so the bump fast
/// path can add a size of at most this much to an address inside a chunk without overflow.
pub(crate) const TOP_GUARD: usize = 4096;

/// Bytes taken by the header; the bump region starts this far into the chunk.
pub(crate) const HEADER_SIZE: usize = size_of::<ChunkHeader>();

/// Allocates a chunk of `size` total bytes (header included) from the global allocator.
/// Returns `None` when the size is too small, overflows a `Layout`, or the global
/// allocator refuses.
pub(crate) fn new_chunk(size: usize) -> Option<NonNull<ChunkHeader>> {
    if size <= HEADER_SIZE {
        return None;
    }
    let layout = Layout::from_size_align(size, CHUNK_ALIGN).ok()?;
    // SAFETY: `layout` has a non-zero size (checked above).
    let raw = unsafe { alloc(layout) };
    let chunk = NonNull::new(raw)?.cast::<ChunkHeader>();
    if (raw as usize).checked_add(size + TOP_GUARD).is_none() {
        // A chunk this close to the top of the address space would break the fast path's
        // no-overflow argument; no real platform hands one out, but refuse it if one does.
        // SAFETY: `raw` was just allocated with `layout`.
        unsafe { dealloc(raw, layout) };
        return None;
    }
    // SAFETY: `raw` is a fresh allocation of at least HEADER_SIZE bytes aligned to
    // CHUNK_ALIGN, which is the header's size and alignment.
    unsafe {
        chunk.as_ptr().write(ChunkHeader { next: None, size });
    }
    Some(chunk)
}

/// Returns a chunk to the global allocator.
///
/// # Safety
/// `chunk` came from [`new_chunk`], has not been freed, and nothing points into it any
/// more.
pub(crate) unsafe fn free_chunk(chunk: NonNull<ChunkHeader>) {
    // SAFETY: the caller guarantees the header is live and initialised.
    let size = unsafe { (*chunk.as_ptr()).size };
    // SAFETY: `new_chunk` built this layout from the same size and alignment.
    let layout = unsafe { Layout::from_size_align_unchecked(size, CHUNK_ALIGN) };
    // SAFETY: the chunk was allocated by `alloc` with this layout (caller's guarantee).
    unsafe { dealloc(chunk.as_ptr().cast(), layout) }
}

/// The bump region of a live chunk, as `(start, end)` pointers.
///
/// # Safety
/// `chunk` is a live chunk from [`new_chunk`].
#[inline]
pub(crate) unsafe fn bounds(chunk: NonNull<ChunkHeader>) -> (*mut u8, *mut u8) {
    let base = chunk.as_ptr().cast::<u8>();
    // SAFETY: the header is live (caller's guarantee), so its size can be read, and
    // `size > HEADER_SIZE` was checked when the chunk was made; both offsets stay inside
    // (or one past) the chunk's allocation.
    unsafe {
        let size = (*chunk.as_ptr()).size;
        (base.add(HEADER_SIZE), base.add(size))
    }
}

/// The chunk after `chunk` in its list.
///
/// # Safety
/// `chunk` is a live chunk from [`new_chunk`].
#[inline]
pub(crate) unsafe fn next(chunk: NonNull<ChunkHeader>) -> Option<NonNull<ChunkHeader>> {
    // SAFETY: the header is live (caller's guarantee).
    unsafe { (*chunk.as_ptr()).next }
}

/// Sets the chunk after `chunk` in its list.
///
/// # Safety
/// `chunk` is a live chunk from [`new_chunk`] and no reference to its header is held.
#[inline]
pub(crate) unsafe fn set_next(chunk: NonNull<ChunkHeader>, next: Option<NonNull<ChunkHeader>>) {
    // SAFETY: the header is live (caller's guarantee) and written through a raw pointer.
    unsafe { (*chunk.as_ptr()).next = next }
}

/// Total bytes of a chunk, header included.
///
/// # Safety
/// `chunk` is a live chunk from [`new_chunk`].
#[inline]
pub(crate) unsafe fn size(chunk: NonNull<ChunkHeader>) -> usize {
    // SAFETY: the header is live (caller's guarantee).
    unsafe { (*chunk.as_ptr()).size }
}
