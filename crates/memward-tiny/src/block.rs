//! Block layout: one header word per block, boundary tags on free blocks.
//!
//! Memory is cut into blocks whose sizes are multiples of a granule `G` (two words) and whose
//! payloads are `G`-aligned: a block starts one word before a `G` boundary, and that word is
//! its header, `size | FREE | PREV_FREE`. A free block also keeps its size in its last word
//! (the footer) and two free-list links right after the header, so the smallest block is
//! four words. `PREV_FREE` in a block's header says the block before it is free, which lets
//! `free` find that block through its footer and merge with it; allocated blocks need no
//! footer, so the overhead of a live allocation is one word. Each region ends with a
//! sentinel header of size 0 that is never free, so merging stops there.
//!
//! Invariants: no two free blocks are adjacent (they are always merged); a block's
//! `PREV_FREE` bit equals the `FREE` bit of the block before it; a free block's footer
//! equals its size.

use core::mem::size_of;

/// One machine word.
pub(crate) const WORD: usize = size_of::<usize>();
/// Granule: block sizes are multiples of it and payloads are aligned to it.
pub(crate) const GRANULE: usize = 2 * WORD;
/// The smallest block: header, two links, footer.
pub(crate) const MIN_BLOCK: usize = 2 * GRANULE;

pub(crate) const FREE: usize = 1;
pub(crate) const PREV_FREE: usize = 2;
const FLAGS: usize = FREE | PREV_FREE;

/// Reads a block's header word.
///
/// # Safety
/// `b` is the address of a block header (or region sentinel) inside a region.
#[inline]
pub(crate) unsafe fn header(b: *mut u8) -> usize {
    // SAFETY: the caller guarantees `b` is a word-aligned header inside a region.
    unsafe { *(b as *mut usize) }
}

/// Writes a block's header word.
///
/// # Safety
/// As for [`header`].
#[inline]
pub(crate) unsafe fn set_header(b: *mut u8, word: usize) {
    // SAFETY: the caller guarantees `b` is a word-aligned header inside a region.
    unsafe { *(b as *mut usize) = word }
}

#[inline]
pub(crate) fn size_of_header(word: usize) -> usize {
    word & !FLAGS
}

/// The size of the block at `b`.
///
/// # Safety
/// As for [`header`].
#[inline]
pub(crate) unsafe fn size(b: *mut u8) -> usize {
    // SAFETY: forwarded caller guarantee.
    size_of_header(unsafe { header(b) })
}

/// Sets or clears `PREV_FREE` on the block at `b`.
///
/// # Safety
/// As for [`header`].
#[inline]
pub(crate) unsafe fn set_prev_free(b: *mut u8, prev_free: bool) {
    // SAFETY: forwarded caller guarantee.
    unsafe {
        let h = header(b) & !PREV_FREE;
        set_header(b, if prev_free { h | PREV_FREE } else { h });
    }
}

/// Marks the block at `b` free with `size` bytes: header, footer, and `PREV_FREE` of the
/// block after it. The block before it must not be free.
///
/// # Safety
/// `[b, b + size)` is a block inside a region, followed by a block header or sentinel.
#[inline]
pub(crate) unsafe fn mark_free(b: *mut u8, size: usize) {
    // SAFETY: the footer is the last word of the block, and the next header directly
    // follows it, both inside the region (caller's guarantee).
    unsafe {
        set_header(b, size | FREE);
        *(b.add(size - WORD) as *mut usize) = size;
        set_prev_free(b.add(size), true);
    }
}

/// Marks the block at `b` free with `size` bytes (header and footer) when the block after
/// it already has `PREV_FREE` set, which saves touching that header: true of the tail split
/// off a free block, whose next block was already told its neighbour is free.
///
/// # Safety
/// As for [`mark_free`].
#[inline]
pub(crate) unsafe fn mark_free_tail(b: *mut u8, size: usize) {
    // SAFETY: the footer is the last word of the block (caller's guarantee).
    unsafe {
        debug_assert!(header(b.add(size)) & PREV_FREE != 0);
        set_header(b, size | FREE);
        *(b.add(size - WORD) as *mut usize) = size;
    }
}

/// The block before `b`, if it is free: its address and size (from its footer).
///
/// # Safety
/// As for [`header`].
#[inline]
pub(crate) unsafe fn free_before(b: *mut u8) -> Option<(*mut u8, usize)> {
    // SAFETY: `PREV_FREE` set means a free block with a valid footer ends right at `b`.
    unsafe {
        if header(b) & PREV_FREE == 0 {
            return None;
        }
        let size = *(b.sub(WORD) as *const usize);
        Some((b.sub(size), size))
    }
}

/// Bytes of block needed for a payload of `bytes`: header added, rounded up to the
/// granule, at least `MIN_BLOCK`. `None` on overflow.
#[inline]
pub(crate) fn block_size_for(bytes: usize) -> Option<usize> {
    let with_header = bytes.checked_add(WORD + GRANULE - 1)?;
    let size = with_header & !(GRANULE - 1);
    Some(if size < MIN_BLOCK { MIN_BLOCK } else { size })
}
