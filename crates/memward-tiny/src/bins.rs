//! Segregated free lists by block size, and a bitmap of the non-empty ones.
//!
//! Small sizes (under 16 granules) get one bin per granule count, so any block in such a bin
//! fits a request of that size exactly. Larger sizes get eight bins per power of two on
//! 64-bit targets (128 bins) and four on 32-bit ones (64 bins, for code size); the last bin
//! takes everything above. To allocate, the heap takes the best fit among the first eight
//! blocks of the request's own bin, and otherwise the first block of the lowest non-empty bin
//! above it, found with one `trailing_zeros` on the bitmap: every block there is certain to
//! fit. Only if both fail is the whole own bin scanned. Lists are doubly linked through the
//! free blocks themselves (the two words after the header), so removing a block when it is
//! merged with a neighbour is O(1).

use crate::block::{self, GRANULE, WORD};
use core::ptr::null_mut;

/// 64-bit targets have memory to spare for 128 bins (eight per power of two), which fits
/// blocks tighter; 32-bit targets (wasm32, microcontrollers) keep 64 bins (four per power of
/// two) for code size. The bitmap is kept in 64-bit words either way: shifting a `u128` by a
/// variable amount costs a dozen instructions where a word costs one.
#[cfg(target_pointer_width = "64")]
const SUB_BITS: usize = 3;
#[cfg(target_pointer_width = "64")]
pub(crate) const BINS: usize = 128;
#[cfg(not(target_pointer_width = "64"))]
const SUB_BITS: usize = 2;
#[cfg(not(target_pointer_width = "64"))]
pub(crate) const BINS: usize = 64;

const WORDS: usize = BINS / 64;
// Every bin has a bit: the bitmap words cover BINS exactly.
const _: () = assert!(BINS % 64 == 0 && WORDS >= 1);

/// The bin of a block of `size` bytes (a multiple of the granule, at least the minimum).
#[inline]
pub(crate) fn bin_of(size: usize) -> usize {
    let units = size / GRANULE;
    if units < 16 {
        return units;
    }
    let log = (usize::BITS - 1 - units.leading_zeros()) as usize;
    let sub = (units >> (log - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    let bin = 16 + ((log - 4) << SUB_BITS) + sub;
    if bin < BINS {
        bin
    } else {
        BINS - 1
    }
}

/// The free lists.
pub(crate) struct Bins {
    bitmap: [u64; WORDS],
    heads: [*mut u8; BINS],
}

/// Reads a free block's next link.
///
/// # Safety
/// `b` is a free block of this heap (at least `MIN_BLOCK` bytes, so its link words exist).
#[inline]
unsafe fn next_of(b: *mut u8) -> *mut u8 {
    // SAFETY: `b` is a free block, whose second word is its next link (caller's guarantee).
    unsafe { *(b.add(WORD) as *const *mut u8) }
}

/// Writes a free block's next link.
///
/// # Safety
/// `b` is a free block of this heap (at least `MIN_BLOCK` bytes, so its link words exist).
#[inline]
unsafe fn set_next(b: *mut u8, next: *mut u8) {
    // SAFETY: as in `next_of`.
    unsafe { *(b.add(WORD) as *mut *mut u8) = next }
}

/// Writes a free block's previous link.
///
/// # Safety
/// `b` is a free block of this heap (at least `MIN_BLOCK` bytes, so its link words exist).
#[inline]
unsafe fn set_prev(b: *mut u8, prev: *mut u8) {
    // SAFETY: `b` is a free block, whose third word is its previous link.
    unsafe { *(b.add(2 * WORD) as *mut *mut u8) = prev }
}

/// Reads a free block's previous link.
///
/// # Safety
/// `b` is a free block of this heap (at least `MIN_BLOCK` bytes, so its link words exist).
#[inline]
unsafe fn prev_of(b: *mut u8) -> *mut u8 {
    // SAFETY: as in `set_prev`.
    unsafe { *(b.add(2 * WORD) as *const *mut u8) }
}

/// The smallest block of at least `need` bytes among the first `scan` blocks of the list
/// starting at `b`; null if none of them fits.
///
/// # Safety
/// `b` starts a list of free blocks (or is null).
#[inline]
unsafe fn best_of(mut b: *mut u8, need: usize, scan: usize) -> *mut u8 {
    let mut best = null_mut();
    let mut best_size = usize::MAX;
    let mut left = scan;
    while !b.is_null() && left > 0 {
        // SAFETY: `b` is a free block in the list (caller's guarantee).
        let size = unsafe { block::size(b) };
        if size >= need && size < best_size {
            best = b;
            best_size = size;
            if size == need {
                break;
            }
        }
        // SAFETY: as above.
        b = unsafe { next_of(b) };
        left -= 1;
    }
    best
}

impl Bins {
    pub(crate) const fn new() -> Self {
        Bins {
            bitmap: [0; WORDS],
            heads: [null_mut(); BINS],
        }
    }

    /// Adds the free block `b` of `size` bytes to its bin.
    ///
    /// # Safety
    /// `b` is a free block of at least `MIN_BLOCK` bytes that is in no list.
    #[inline]
    pub(crate) unsafe fn insert(&mut self, b: *mut u8, size: usize) {
        let bin = bin_of(size);
        // SAFETY: `bin < BINS`; `b` and the old head are free blocks whose link words may be
        // written (caller's guarantee and the list invariant).
        unsafe {
            let head = *self.heads.get_unchecked(bin);
            set_next(b, head);
            set_prev(b, null_mut());
            if !head.is_null() {
                set_prev(head, b);
            }
            *self.heads.get_unchecked_mut(bin) = b;
        }
        // SAFETY: `bin < BINS`, so `bin / 64 < WORDS`.
        unsafe { *self.bitmap.get_unchecked_mut(bin / 64) |= 1 << (bin % 64) };
    }

    /// Removes the free block `b` of `size` bytes from its bin.
    ///
    /// # Safety
    /// `b` is in the list of `bin_of(size)`.
    #[inline]
    pub(crate) unsafe fn unlink(&mut self, b: *mut u8, size: usize) {
        // SAFETY: `b` and its neighbours in the list are free blocks (list invariant).
        unsafe {
            let next = next_of(b);
            let prev = prev_of(b);
            if !next.is_null() {
                set_prev(next, prev);
            }
            if !prev.is_null() {
                set_next(prev, next);
            } else {
                // Only a list head needs its bin (computed here, off the common path).
                let bin = bin_of(size);
                // SAFETY: `bin < BINS`.
                *self.heads.get_unchecked_mut(bin) = next;
                if next.is_null() {
                    // SAFETY: `bin / 64 < WORDS`, as above.
                    *self.bitmap.get_unchecked_mut(bin / 64) &= !(1 << (bin % 64));
                }
            }
        }
    }

    /// A free block of at least `need` bytes, still linked: a first fit among the first
    /// `scan` blocks of `need`'s own bin, else the head of the next non-empty bin above it,
    /// else a first fit over the rest of its own bin. Null if there is none.
    ///
    /// # Safety
    /// The lists hold only free blocks with valid headers.
    #[inline]
    pub(crate) unsafe fn find(&self, need: usize, scan: usize) -> *mut u8 {
        let bin = bin_of(need);
        // SAFETY: `bin < BINS`; the list holds free blocks (caller's guarantee).
        let found = unsafe { best_of(*self.heads.get_unchecked(bin), need, scan) };
        if !found.is_null() {
            return found;
        }
        if let Some(above) = self.first_nonempty_from(bin + 1) {
            // SAFETY: the bin is below BINS and its list is non-empty; every block in it fits.
            return unsafe { *self.heads.get_unchecked(above) };
        }
        // SAFETY: as above.
        unsafe { best_of(*self.heads.get_unchecked(bin), need, usize::MAX) }
    }

    /// The lowest non-empty bin at or above `bin`, if any.
    #[inline]
    fn first_nonempty_from(&self, bin: usize) -> Option<usize> {
        let mut word = bin / 64;
        if word >= WORDS {
            return None;
        }
        let mut bits = self.bitmap[word] & (!0u64 << (bin % 64));
        loop {
            if bits != 0 {
                return Some(word * 64 + bits.trailing_zeros() as usize);
            }
            word += 1;
            if word == WORDS {
                return None;
            }
            bits = self.bitmap[word];
        }
    }

    /// Calls `f` with the size of every free block, checking the lists on the way: each
    /// block is marked free, its footer matches, it sits in the right bin, the block after
    /// it knows it is free, and the bitmap has a bit exactly for the non-empty bins. Panics
    /// if any of that is wrong (a corrupted heap).
    ///
    /// # Safety
    /// The lists hold only free blocks with valid headers.
    pub(crate) unsafe fn for_each(&self, mut f: impl FnMut(usize)) {
        let mut nonempty = [0u64; WORDS];
        for bin in 0..BINS {
            let mut b = self.heads[bin];
            while !b.is_null() {
                nonempty[bin / 64] |= 1 << (bin % 64);
                // SAFETY: `b` is a free block in the list (caller's guarantee), so its
                // header, footer and the next block's header are valid.
                unsafe {
                    let size = block::size(b);
                    assert!(block::header(b) & block::FREE != 0, "listed block not free");
                    assert_eq!(*(b.add(size - WORD) as *const usize), size, "bad footer");
                    assert_eq!(bin_of(size), bin, "block in the wrong bin");
                    assert!(block::header(b.add(size)) & block::PREV_FREE != 0);
                    f(size);
                    b = next_of(b);
                }
            }
        }
        assert_eq!(nonempty, self.bitmap, "free-list bitmap out of sync");
    }
}
