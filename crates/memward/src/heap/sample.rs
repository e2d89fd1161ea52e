//! The slow path of a heap in sampled mode (`sampling.rs` says why it is unbiased): for
//! direct sizes, find a page as usual, tell whether this allocation is the block a cut
//! was made before, and cut the list it hands to the direct table before the next
//! sampled block; for larger sizes, count the requested bytes down. Owner-only.
//!
//! A cut is remembered per size class as the page and its key (a page slot gets a new
//! key at every `init`, so a cut of a page since retired never matches its next life).
//! The fast path never looks at any of this.

use super::Local;
use crate::page::Page;
use crate::size_class::{bin_of, SMALL_DIRECT_MAX};
use crate::stats::bump;
use crate::hook_table::{self, MODE_SAMPLED};
use crate::sampling;
use core::ptr;

/// Size classes that the direct table serves (bins `1..CUT_BINS`).
const CUT_BINS: usize = bin_of(SMALL_DIRECT_MAX) + 1;

/// A heap's sampling state.
pub(crate) struct Sampling {
    /// Mean bytes between samples.
    rate: u64,
    /// Generator state (xorshift64*, never zero once started).
    rng: u64,
    /// Requested bytes to the next sample, for allocations that count bytes directly.
    countdown: i64,
    /// Per direct class: the page (and its key) whose list was cut before a sampled block.
    cut: [(*mut Page, u64); CUT_BINS],
}

impl Sampling {
    pub(crate) const OFF: Sampling = Sampling {
        rate: 0,
        rng: 0,
        countdown: 0,
        cut: [(ptr::null_mut(), 0); CUT_BINS],
    };
}

impl Local {
    /// Enters sampled mode with the installed rate.
    pub(super) fn start_sampling(&mut self) {
        let s = &mut self.sampling;
        s.rate = hook_table::rate().max(1);
        s.rng = sampling::seed(self.this as usize);
        s.countdown = sampling::interval(&mut s.rng, s.rate);
        self.forget_cuts();
    }

    /// Drops the remembered cuts (leaving sampled mode, giving pages up). The cut lists
    /// themselves need nothing: their rest is on `local_free`, where it is allocated as
    /// any freed block.
    pub(super) fn forget_cuts(&mut self) {
        self.sampling.cut = [(ptr::null_mut(), 0); CUT_BINS];
    }

    /// Counts `size` requested bytes of an allocation that does not take the fast path;
    /// whether it is sampled. Inside a hook or an operation that reports itself, and
    /// outside sampled mode, nothing is counted.
    pub fn count_sample(&mut self, size: usize) -> bool {
        // A heap that has not switched to sampled mode yet (or has left it) samples
        // nothing.
        if self.mode != MODE_SAMPLED || self.heap().in_hook_now() {
            return false;
        }
        let s = &mut self.sampling;
        s.countdown -= size.max(1) as i64;
        if s.countdown > 0 {
            return false;
        }
        s.countdown = sampling::interval(&mut s.rng, s.rate);
        true
    }

    /// The allocation slow path in sampled mode: the block and whether it is sampled.
    pub fn alloc_sampled(&mut self, size: usize) -> (*mut u8, bool) {
        if size > SMALL_DIRECT_MAX {
            let p = self.alloc_slow(size);
            return (p, !p.is_null() && self.count_sample(size));
        }
        self.tick();
        let bin = bin_of(size);
        let head = self.queues[bin].first();
        let (cut, key) = core::mem::replace(&mut self.sampling.cut[bin], (ptr::null_mut(), 0));
        // The cut matches only if it is the head page itself in the same life.
        let pending = !head.is_null()
            && head == cut
            // SAFETY: the head is a live page of ours, not borrowed elsewhere.
            && unsafe { (*head).key_bits() == key && !(*head).has_free() };
        let page = self.find_page(bin);
        if page.is_null() {
            return (ptr::null_mut(), false);
        }
        // SAFETY: find_page returns a page of ours with a non-empty free list.
        let b = unsafe { Page::pop(page) };
        debug_assert!(!b.is_null());
        bump(&self.heap().counters.requested, size as u64);
        // SAFETY: as above.
        let block_size = unsafe { (*page).block_size() };
        let s = &mut self.sampling;
        let (hit, keep) = if pending && page == head {
            (true, sampling::blocks_before_point(&mut s.rng, s.rate, block_size))
        } else {
            match sampling::blocks_before_point(&mut s.rng, s.rate, block_size) {
                0 => (true, sampling::blocks_before_point(&mut s.rng, s.rate, block_size)),
                n => (false, n - 1),
            }
        };
        // SAFETY: our page, not borrowed elsewhere.
        unsafe { self.cut_before_point(bin, page, keep) };
        let in_hook = self.heap().in_hook_now();
        let s = &mut self.sampling;
        let sampled = hit && !in_hook && sampling::keep(&mut s.rng, size, block_size, s.rate);
        (b.cast(), sampled)
    }

    /// Leaves `keep` blocks on `page`'s free list (the direct page of `bin`), so that
    /// the allocation after them takes the slow path, and remembers the cut.
    ///
    /// # Safety
    /// `page` is a live page of this heap, not borrowed elsewhere, just popped from.
    unsafe fn cut_before_point(&mut self, bin: usize, page: *mut Page, keep: u32) {
        // SAFETY: per the contract.
        let page_ref = unsafe { &mut *page };
        // The last refill put `batch` blocks on `free`, of which one at least (ours) was
        // taken: `free` has fewer than `batch`, and no cut is needed if `keep` reaches it.
        let batch = page_ref.batch();
        if keep.saturating_add(1) >= batch {
            return;
        }
        let moved = page_ref.cut_free(keep);
        if moved > 0 {
            // The moved blocks were not allocated from this refill.
            page_ref.set_batch(batch - moved);
            self.sampling.cut[bin] = (page, page_ref.key_bits());
        }
    }
}
