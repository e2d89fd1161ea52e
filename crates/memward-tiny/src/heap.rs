//! The allocator proper: find, split, merge, resize in place.
//!
//! `alloc` asks the bins for a block that fits, unlinks it, and splits off the tail as a new
//! free block when the tail is at least the minimum block. `free` merges the block with a
//! free neighbour on either side before putting it back, so free memory never stays cut into
//! pieces that sit next to each other: the pattern that makes wee_alloc grow without bound
//! (two large blocks freed in allocation order, again and again) ends with one free block
//! here, every time. `realloc` shrinks in place, grows in place into a free block after it,
//! and only otherwise moves.
//!
//! Regions that touch (a region added right where the previous one ended, as successive
//! `memory.grow` calls on wasm32 give) are joined: the old end sentinel becomes the start of
//! a block that spans the new memory, and freeing that block merges it with a free block
//! before it.

use crate::bins::Bins;
use crate::block::{self, FREE, GRANULE, MIN_BLOCK, PREV_FREE, WORD};
use core::ptr::{copy_nonoverlapping, null_mut};

/// How many blocks of the request's own bin are tried before looking in larger bins.
const SCAN: usize = 8;

pub(crate) struct Heap {
    pub(crate) bins: Bins,
    /// The end sentinel of the most recently added region (null before the first).
    top: *mut u8,
    /// Set once the user adds a region: from then on the heap never grows by itself.
    pub(crate) user_regions: bool,
}

impl Heap {
    pub(crate) const fn new() -> Self {
        Heap {
            bins: Bins::new(),
            top: null_mut(),
            user_regions: false,
        }
    }

    /// Adds `[start, start + len)` to the heap; false if it is too small to hold a block.
    ///
    /// # Safety
    /// The memory is writable, unused by anything else, and stays so for as long as the heap
    /// is used; if it starts exactly where the previous region ended, the two are one
    /// contiguous piece of memory.
    pub(crate) unsafe fn add_region(&mut self, start: *mut u8, len: usize) -> bool {
        let end = match (start as usize).checked_add(len) {
            Some(e) => e,
            None => usize::MAX,
        } & !(GRANULE - 1);
        let joined = !self.top.is_null() && self.top as usize + WORD == start as usize;
        let first = if joined {
            self.top as usize
        } else {
            match (start as usize).checked_add(WORD + GRANULE - 1) {
                Some(a) => (a & !(GRANULE - 1)) - WORD,
                None => return false,
            }
        };
        // The sentinel is the last header slot that still fits before `end`.
        if end < first || end - first < MIN_BLOCK + WORD {
            return false;
        }
        let sentinel = end - WORD;
        let size = sentinel - first;
        let b = if joined {
            self.top
        } else {
            start.wrapping_add(first - start as usize)
        };
        let s = b.wrapping_add(size);
        // SAFETY: `b..s + WORD` lies inside the region (or, when joined, starts at the old
        // sentinel, which is contiguous with it), is word-aligned, and belongs to the heap.
        unsafe {
            block::set_header(s, 0);
            let prev_free = if joined {
                block::header(b) & PREV_FREE
            } else {
                0
            };
            block::set_header(b, size | prev_free);
            self.top = s;
            self.free_block(b, size);
        }
        true
    }

    /// Bytes of free block to look for so a request of `size` bytes aligned to `align` fits.
    #[inline]
    fn search_size(size: usize, align: usize) -> Option<usize> {
        let need = block::block_size_for(size)?;
        if align <= GRANULE {
            Some(need)
        } else {
            need.checked_add(MIN_BLOCK + align - GRANULE)
        }
    }

    /// Allocates `size` bytes aligned to `align` (a power of two); null if no block fits.
    ///
    /// # Safety
    /// The heap's regions are valid (see `add_region`).
    pub(crate) unsafe fn alloc(&mut self, size: usize, align: usize) -> *mut u8 {
        let search = match Self::search_size(size, align) {
            Some(s) => s,
            None => return null_mut(),
        };
        // SAFETY: the bins hold only free blocks of this heap.
        let mut b = unsafe { self.bins.find(search, SCAN) };
        if b.is_null() {
            if !self.grow(search) {
                return null_mut();
            }
            // SAFETY: as above.
            b = unsafe { self.bins.find(search, SCAN) };
            if b.is_null() {
                return null_mut();
            }
        }
        let need = search
            - if align <= GRANULE {
                0
            } else {
                MIN_BLOCK + align - GRANULE
            };
        // SAFETY: `b` is a linked free block of at least `search` bytes.
        unsafe {
            let have = block::size(b);
            self.bins.unlink(b, have);
            let payload = b as usize + WORD;
            let gap = if align <= GRANULE {
                0
            } else {
                let mut gap = ((payload + align - 1) & !(align - 1)) - payload;
                if gap != 0 && gap < MIN_BLOCK {
                    gap += align;
                }
                gap
            };
            if gap == 0 {
                self.carve(b, have, need);
                b.add(WORD)
            } else {
                // Split off the front as its own free block; the block before `b` is in use
                // (free blocks are never adjacent), so no merge is needed.
                let q = b.add(gap);
                block::set_header(q, have - gap);
                block::mark_free(b, gap);
                self.bins.insert(b, gap);
                self.carve(q, have - gap, need);
                q.add(WORD)
            }
        }
    }

    /// Makes the unlinked block `b` of `have` bytes an allocated block of `need` bytes,
    /// freeing the tail if it is big enough to be a block. Keeps `b`'s `PREV_FREE` bit.
    ///
    /// # Safety
    /// `b` is an unlinked block of `have >= need` bytes whose next block is in use and has
    /// `PREV_FREE` set (the memory of `b`, or the free block it just absorbed, was free).
    #[inline]
    unsafe fn carve(&mut self, b: *mut u8, have: usize, need: usize) {
        // SAFETY: `b..b + have` is a block of this heap (caller's guarantee).
        unsafe {
            let flags = block::header(b) & PREV_FREE;
            if have - need >= MIN_BLOCK {
                block::set_header(b, need | flags);
                let r = b.add(need);
                // `b` was free, so the block after it already has PREV_FREE set.
                block::mark_free_tail(r, have - need);
                self.bins.insert(r, have - need);
            } else {
                block::set_header(b, have | flags);
                block::set_prev_free(b.add(have), false);
            }
        }
    }

    /// Frees the block `b` of `size` bytes, merging it with free neighbours.
    ///
    /// # Safety
    /// `b` is an in-use block of this heap of `size` bytes.
    unsafe fn free_block(&mut self, mut b: *mut u8, mut size: usize) {
        // SAFETY: `b` is a block of this heap, so the header after it and (when PREV_FREE is
        // set) the free block before it are valid.
        unsafe {
            let next = b.add(size);
            let next_header = block::header(next);
            if next_header & FREE != 0 {
                let next_size = block::size_of_header(next_header);
                self.bins.unlink(next, next_size);
                size += next_size;
            }
            if let Some((prev, prev_size)) = block::free_before(b) {
                self.bins.unlink(prev, prev_size);
                b = prev;
                size += prev_size;
            }
            block::mark_free(b, size);
            self.bins.insert(b, size);
        }
    }

    /// Frees the allocation whose payload starts at `ptr`.
    ///
    /// # Safety
    /// `ptr` came from `alloc`/`realloc` of this heap and was not freed since.
    pub(crate) unsafe fn dealloc(&mut self, ptr: *mut u8) {
        // SAFETY: the header is the word before the payload (caller's guarantee).
        unsafe {
            let b = ptr.sub(WORD);
            self.free_block(b, block::size(b));
        }
    }

    /// Resizes the allocation at `ptr` (`old_size` bytes, aligned to `align`) to
    /// `new_size` bytes, in place when it can; null (and the old block untouched) if not.
    ///
    /// # Safety
    /// As for `dealloc`, with `old_size` and `align` those of the allocation.
    pub(crate) unsafe fn realloc(
        &mut self,
        ptr: *mut u8,
        old_size: usize,
        align: usize,
        new_size: usize,
    ) -> *mut u8 {
        let need = match block::block_size_for(new_size) {
            Some(n) => n,
            None => return null_mut(),
        };
        // SAFETY: `ptr`'s header is the word before it; blocks after it are valid.
        unsafe {
            let b = ptr.sub(WORD);
            let have = block::size(b);
            if need <= have {
                if have - need >= MIN_BLOCK {
                    let flags = block::header(b) & PREV_FREE;
                    block::set_header(b, need | flags);
                    let tail = b.add(need);
                    block::set_header(tail, have - need);
                    self.free_block(tail, have - need);
                }
                return ptr;
            }
            let next = b.add(have);
            let next_header = block::header(next);
            if next_header & FREE != 0 {
                let next_size = block::size_of_header(next_header);
                if have + next_size >= need {
                    self.bins.unlink(next, next_size);
                    self.carve(b, have + next_size, need);
                    return ptr;
                }
            }
            let new = self.alloc(new_size, align);
            if !new.is_null() {
                copy_nonoverlapping(
                    ptr,
                    new,
                    if old_size < new_size {
                        old_size
                    } else {
                        new_size
                    },
                );
                self.dealloc(ptr);
            }
            new
        }
    }

    /// Asks the platform for more memory holding at least `bytes` of block.
    #[cfg(target_arch = "wasm32")]
    fn grow(&mut self, bytes: usize) -> bool {
        crate::grow::grow(self, bytes)
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[inline(always)]
    fn grow(&mut self, _bytes: usize) -> bool {
        false
    }
}
