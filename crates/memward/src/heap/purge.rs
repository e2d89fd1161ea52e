//! Returning free memory: free page slots are purged once they have been free for the
//! purge delay (checked on slow paths, every `TICKS_PER_CLOCK_READ`-th one), all at once
//! when their resident bytes pass `MEMWARD_FREE_RESIDENT_MIB` (checked where a page is
//! freed, `retire.rs`), and all at once on request (`collect`). Purging only touches free slots, never a live block.
//! Owner-only.

use super::Local;
use crate::segment::Segment;
use crate::size_class::BIN_COUNT;
use crate::{options, os, segment_pool};

impl Local {
    /// Calls `visit` on every free slot of our small, medium and large segments that holds
    /// resident memory (not purged, carved since mapped or purged), with its segment and
    /// index; `visit` says whether the slot is still pending (not purged by it). Recounts
    /// `pending_purge` and `pending_bytes` from the answers.
    fn visit_free_slots(&mut self, mut visit: impl FnMut(&Segment, usize, &crate::page::Page) -> bool) {
        let mut pending = 0;
        let mut pending_bytes = 0;
        for k in 0..self.avail.len() {
            let mut seg = self.avail[k].first();
            while !seg.is_null() {
                // SAFETY: segments on our lists are ours; their free slots hold no page.
                unsafe {
                    let s = &*seg;
                    let mut mask = s.free_mask();
                    while mask != 0 {
                        let i = mask.trailing_zeros() as usize;
                        mask &= mask - 1;
                        let page = &*s.page_at(i);
                        if page.purged() || page.is_pristine() {
                            continue;
                        }
                        if visit(s, i, page) {
                            pending += 1;
                            pending_bytes += page.touched() as usize;
                        }
                    }
                    seg = self.avail[k].next(seg);
                }
            }
        }
        self.pending_purge = pending;
        self.pending_bytes = pending_bytes;
    }

    /// Purges free page slots that have been free for `delay` ms (all of them if `force`).
    pub(super) fn purge_due(&mut self, now: u64, delay: u64, force: bool) {
        if self.pending_purge == 0 && !force {
            return;
        }
        self.visit_free_slots(|s, i, page| {
            if force || page.freed_at() + delay <= now {
                // SAFETY: a free slot of our segment.
                unsafe { s.purge_slot(i) };
                false
            } else {
                true
            }
        });
    }

    /// The size bound (`MEMWARD_FREE_RESIDENT_MIB`) was passed: purges the slots freed
    /// longest ago until at most half the bound stays resident. The newest free slots are
    /// the likeliest to be reused soon, and holes that nothing fits grow old and go first;
    /// purging everything instead made a program that frees and allocates at a steady rate
    /// fault its reused memory in again and again.
    pub(super) fn purge_oldest(&mut self, now: u64) {
        // Resident bytes by age: bucket b holds ages in [2^(b-1), 2^b) ms, bucket 0 age 0.
        let bucket = |freed_at: u64| (64 - now.saturating_sub(freed_at).leading_zeros()) as usize;
        let mut by_age = [0usize; 65];
        self.visit_free_slots(|_, _, page| {
            by_age[bucket(page.freed_at())] += page.touched() as usize;
            true
        });
        let keep = options::free_resident_limit() / 2;
        let (mut cut, mut kept) = (0, 0);
        while cut < by_age.len() && kept + by_age[cut] <= keep {
            kept += by_age[cut];
            cut += 1;
        }
        self.visit_free_slots(|s, i, page| {
            if bucket(page.freed_at()) >= cut {
                // SAFETY: a free slot of our segment.
                unsafe { s.purge_slot(i) };
                false
            } else {
                true
            }
        });
    }

    /// Slots `i..i + n` of `s` were just taken for a new page or block: the resident
    /// bytes they had while free no longer count against the size bound, which would
    /// otherwise fire again and again in a program that frees and reuses memory at a steady
    /// rate (purging memory about to be reused: 6x the page faults of `medium-live`).
    ///
    /// # Safety
    /// `s` is one of our segments; the slots were free until now.
    pub(super) unsafe fn reuse_pending(&mut self, s: &Segment, i: usize, n: usize) {
        for j in i..i + n {
            // SAFETY: per the contract; free slots' descriptors are ours to read.
            let page = unsafe { &*s.page_at(j) };
            if !page.purged() && !page.is_pristine() {
                self.pending_bytes = self.pending_bytes.saturating_sub(page.touched() as usize);
            }
        }
    }

    /// Returns all free memory of this heap and the segment cache to the OS now.
    pub fn collect(&mut self) {
        self.drain_remote();
        // Retire the kept-empty current pages too.
        for bin in 1..BIN_COUNT {
            let first = self.queues[bin].first();
            // SAFETY: pages on our queues are ours and not borrowed.
            unsafe {
                if !first.is_null() && (*first).used() == 0 {
                    self.free_page(first);
                }
            }
        }
        self.purge_due(os::now_ms(), 0, true);
        segment_pool::purge_cache_all();
    }
}
