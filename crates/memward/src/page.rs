//! Pages: runs of equal-sized blocks carved from a segment, with sharded free lists.
//!
//! A page keeps two lists, as mimalloc does: `free`, which the allocation fast path pops,
//! and `local_free`, which the owner's `free` pushes. Allocation never looks at `local_free`:
//! when `free` runs dry the slow path swaps the lists, which gives the heap a regular,
//! cheap moment to do housekeeping (draining cross-thread frees, purging). Frees from other
//! threads never touch a page; they go to the owning heap's atomic queue (`heap.rs`).
//!
//! Blocks are carved lazily (`extend`), a few KiB at a time, so a fresh 512 KiB page costs
//! no resident memory until it is used.
//!
//! Invariant (checked by `check`): `used + |free| + |local_free| == capacity <= reserved`.
//! All fields except `flags` belong to the owning thread; `flags` is atomic because
//! `usable_size` may read it from any thread.

use crate::heap::Heap;
use core::ptr;
use core::sync::atomic::{AtomicU8, Ordering};

/// A free block: its first word links to the next free block.
#[repr(C)]
pub struct Block {
    pub next: *mut Block,
}

/// The page is in the heap's full queue.
pub const FLAG_IN_FULL: u8 = 1;
/// Some pointer handed out from this page is not a block start (aligned allocation).
pub const FLAG_HAS_ALIGNED: u8 = 2;
/// A one-block page (large or huge object): its free takes the slow path, which releases
/// the segment.
pub const FLAG_SINGLE: u8 = 4;

/// Bytes of blocks added to `free` by one extension.
const EXTEND_BYTES: usize = 4096;

#[repr(C)]
pub struct Page {
    /// Blocks ready to allocate (fast path).
    pub free: *mut Block,
    /// Blocks handed out and not yet freed back to this page's lists.
    pub used: u32,
    /// Blocks carved so far.
    pub capacity: u32,
    /// Free-path flags; zero means the free fast path applies.
    pub flags: AtomicU8,
    /// The slot holds a live page.
    pub in_use: bool,
    /// Memory not yet carved (from `capacity` on) reads as zero.
    pub is_zero: bool,
    /// Every block on `free` is zero apart from its link word.
    pub free_is_zero: bool,
    /// The slot's memory has been returned to the OS since it was last used.
    pub purged: bool,
    /// Bytes of the slot touched since it was mapped or purged (page-rounded estimate,
    /// kept across reuse of the slot; summed in `Segment::touched`).
    pub touched: u32,
    pub bin: u8,
    /// Blocks freed by the owning thread, waiting to be moved to `free`.
    pub local_free: *mut Block,
    pub block_size: usize,
    /// First block.
    pub start: *mut u8,
    /// Blocks that fit in the page.
    pub reserved: u32,
    /// Blocks put on `free` by the last refill (statistics: they are allocated once `free`
    /// runs dry again).
    pub batch: u32,
    /// `used` as last reported to the heap's statistics.
    pub used_synced: u32,
    pub heap: *mut Heap,
    /// Links in the heap's page queue.
    pub next: *mut Page,
    pub prev: *mut Page,
    /// When the slot became free (ms), for delayed purging.
    pub freed_at: u64,
}

impl Page {
    // A template copied into fresh memory, never shared: its atomics are not aliased.
    #[allow(clippy::declare_interior_mutable_const)]
    pub const EMPTY: Page = Page {
        free: ptr::null_mut(),
        used: 0,
        capacity: 0,
        flags: AtomicU8::new(0),
        in_use: false,
        is_zero: true,
        free_is_zero: false,
        purged: false,
        touched: 0,
        bin: 0,
        local_free: ptr::null_mut(),
        block_size: 0,
        start: ptr::null_mut(),
        reserved: 0,
        batch: 0,
        used_synced: 0,
        heap: ptr::null_mut(),
        next: ptr::null_mut(),
        prev: ptr::null_mut(),
        freed_at: 0,
    };

    /// Turns a free slot into a page of `block_size` blocks over `[start, end)`.
    pub fn init(
        &mut self,
        heap: *mut Heap,
        bin: usize,
        block_size: usize,
        start: *mut u8,
        end: usize,
    ) {
        debug_assert!(!self.in_use);
        self.free = ptr::null_mut();
        self.local_free = ptr::null_mut();
        self.used = 0;
        self.capacity = 0;
        self.batch = 0;
        self.used_synced = 0;
        self.flags.store(0, Ordering::Relaxed);
        self.in_use = true;
        self.free_is_zero = false;
        self.bin = bin as u8;
        self.block_size = block_size;
        self.start = start;
        self.reserved = ((end - start as usize) / block_size).min(u32::MAX as usize) as u32;
        self.heap = heap;
        self.next = ptr::null_mut();
        self.prev = ptr::null_mut();
    }

    #[inline]
    pub fn flags(&self) -> u8 {
        self.flags.load(Ordering::Relaxed)
    }

    #[inline]
    pub fn set_flag(&self, flag: u8, on: bool) {
        let old = self.flags.load(Ordering::Relaxed);
        let new = if on { old | flag } else { old & !flag };
        self.flags.store(new, Ordering::Relaxed);
    }

    /// Makes `free` non-empty if possible: first from `local_free`, then by carving fresh
    /// blocks. Returns the number of blocks now on `free` (0 if the page is full).
    /// Only called when `free` is empty.
    pub fn refill(&mut self) -> u32 {
        debug_assert!(self.free.is_null());
        if !self.local_free.is_null() {
            self.free = self.local_free;
            self.local_free = ptr::null_mut();
            self.free_is_zero = false;
            // With `free` empty, the invariant gives the length of what was `local_free`.
            return self.capacity - self.used;
        }
        if self.capacity < self.reserved {
            return self.extend();
        }
        0
    }

    /// Carves up to `EXTEND_BYTES` worth of never-used blocks (at least one) onto `free`.
    fn extend(&mut self) -> u32 {
        let bs = self.block_size;
        let want = (EXTEND_BYTES / bs).max(1) as u32;
        let n = want.min(self.reserved - self.capacity);
        // SAFETY: blocks capacity..capacity+n lie within the page (capacity + n <= reserved,
        // and reserved blocks fit between `start` and the page end).
        unsafe {
            let first = self.start.add(self.capacity as usize * bs);
            let mut b = first;
            for _ in 1..n {
                let next = b.add(bs);
                (*(b as *mut Block)).next = next as *mut Block;
                b = next;
            }
            (*(b as *mut Block)).next = ptr::null_mut();
            self.free = first as *mut Block;
        }
        self.capacity += n;
        self.free_is_zero = self.is_zero;
        n
    }

    /// The block that contains `p`, for pages that handed out aligned interior pointers.
    #[inline]
    pub fn block_start(&self, p: *mut u8) -> *mut u8 {
        let offset = p as usize - self.start as usize;
        // SAFETY: `p` is inside this page, so the rounded-down offset is too.
        unsafe { self.start.add(offset - offset % self.block_size) }
    }

    /// Bytes of the page's span that blocks may use.
    pub fn span_end(&self) -> usize {
        self.start as usize + self.reserved as usize * self.block_size
    }

    /// Checks the page invariant by walking both lists (debug builds and tests).
    pub fn check(&self) {
        let count = |mut b: *mut Block| {
            let mut n = 0u32;
            while !b.is_null() {
                let a = b as usize;
                assert!(
                    a >= self.start as usize && a < self.span_end(),
                    "block outside its page"
                );
                assert_eq!(
                    (a - self.start as usize) % self.block_size,
                    0,
                    "misaligned block"
                );
                n += 1;
                // SAFETY: list blocks are inside the page (just asserted).
                b = unsafe { (*b).next };
            }
            n
        };
        let total = self.used + count(self.free) + count(self.local_free);
        assert_eq!(
            total, self.capacity,
            "used + |free| + |local_free| == capacity"
        );
        assert!(self.capacity <= self.reserved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extend_refill_and_invariant() {
        let mut memory = vec![0u64; 8192]; // 64 KiB
        let start = memory.as_mut_ptr() as *mut u8;
        let mut page = Page::EMPTY;
        page.init(ptr::null_mut(), 3, 32, start, start as usize + 65536);
        page.is_zero = true;
        assert_eq!(page.reserved, 2048);
        let n = page.refill();
        assert_eq!(n, 128, "4 KiB of 32-byte blocks per extension");
        assert!(page.free_is_zero);
        page.check();
        // Pop three, free two locally.
        let mut taken = vec![];
        for _ in 0..3 {
            let b = page.free;
            // SAFETY: b is a block on the free list.
            page.free = unsafe { (*b).next };
            page.used += 1;
            taken.push(b);
        }
        page.check();
        for &b in &taken[..2] {
            // SAFETY: b was allocated from this page.
            unsafe { (*b).next = page.local_free };
            page.local_free = b;
            page.used -= 1;
        }
        page.check();
        // Drain free, then refill takes local_free first.
        page.free = ptr::null_mut();
        page.capacity -= 125; // pretend the remaining blocks were never carved
        page.check();
        assert_eq!(page.refill(), 2);
        assert!(!page.free_is_zero);
        page.check();
        // SAFETY: an address inside the page's memory.
        let inner = unsafe { (page.start).add(32 * 5 + 7) };
        assert_eq!(page.block_start(inner) as usize, start as usize + 160);
    }
}
