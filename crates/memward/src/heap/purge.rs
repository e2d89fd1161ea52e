//! Returning free memory: free page slots are purged once they have been free for the
//! purge delay (checked on slow paths, every `TICKS_PER_CLOCK_READ`-th one), all at once
//! when their resident bytes pass `MEMWARD_FREE_RESIDENT_MIB` (checked where a page is
//! freed, `retire.rs`), and all at once on request (`collect`). Purging only touches free slots, never a live block.
//! Owner-only.

use super::Local;
use crate::size_class::BIN_COUNT;
use crate::{os, segment_pool};

impl Local {
    /// Purges free page slots that have been free for `delay` ms (all of them if `force`).
    pub(super) fn purge_due(&mut self, now: u64, delay: u64, force: bool) {
        if self.pending_purge == 0 && !force {
            return;
        }
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
                        if force || page.freed_at() + delay <= now {
                            s.purge_slot(i);
                        } else {
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
