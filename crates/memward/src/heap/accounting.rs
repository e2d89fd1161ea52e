//! Statistics reconciliation: turning page state into the heap's counters on slow paths.
//!
//! A page's free list is refilled only when it ran dry, so every block of the previous
//! refill (`Page::batch`) has been allocated by then (`credit`); and a page's `used` count is
//! exact, so live blocks are reconciled against `Page::used_synced` whenever the slow path
//! touches the page (`sync`). In-use bytes reach the process-wide total in batches of
//! `LIVE_BATCH`. Counters are written only by the owner (see `stats.rs`).

use super::{Local, LIVE_BATCH};
use crate::page::Page;
use crate::size_class::BIN_COUNT;
use crate::stats::{self, bump, bump_i};

/// Direction of a move of a page's live blocks between heaps (abandon, adopt).
#[derive(Clone, Copy)]
pub(super) enum Transfer {
    Out,
    In,
}

impl Local {
    /// Credits allocations from the page's last refill, of which `remaining` are still on
    /// `free`.
    ///
    /// # Safety
    /// `page` is a live page of this heap, not borrowed elsewhere.
    pub(super) unsafe fn credit(&mut self, page: *mut Page, remaining: u32) {
        // SAFETY: per the contract.
        let page = unsafe { &mut *page };
        let taken = page.batch().saturating_sub(remaining);
        if taken > 0 {
            let c = &self.heap().counters;
            bump(&c.allocs[page.bin()], taken as u64);
            bump(&c.alloc_bytes, taken as u64 * page.block_size() as u64);
        }
        page.set_batch(remaining);
    }

    /// Credits the page's refill with what is left on `free` right now (walks it).
    ///
    /// # Safety
    /// As for [`Local::credit`].
    pub(super) unsafe fn credit_now(&mut self, page: *mut Page) {
        // SAFETY: per the contract.
        unsafe {
            let remaining = (*page).free_len();
            self.credit(page, remaining);
        }
    }

    /// Reports the change of the page's live blocks since the last report.
    ///
    /// # Safety
    /// As for [`Local::credit`].
    pub(super) unsafe fn sync(&mut self, page: *mut Page) {
        // SAFETY: per the contract.
        let page = unsafe { &mut *page };
        let delta = page.used() as i64 - page.used_synced() as i64;
        if delta != 0 {
            let c = &self.heap().counters;
            bump_i(&c.live_blocks[page.bin()], delta);
            let bytes = delta * page.block_size() as i64;
            bump_i(&c.live_bytes, bytes);
            page.mark_synced();
            self.pending_live += bytes;
            if self.pending_live.unsigned_abs() >= LIVE_BATCH {
                self.publish_live();
            }
        }
    }

    /// Adds the batched change of in-use bytes to the process total (and its peak).
    pub(super) fn publish_live(&mut self) {
        if self.pending_live != 0 {
            stats::live_delta(self.pending_live);
            self.pending_live = 0;
        }
    }

    /// Moves the page's synced live counts out of or into this heap's counters without
    /// touching the process total (abandon and adopt).
    ///
    /// # Safety
    /// As for [`Local::credit`], for a page this heap is giving up or taking over.
    pub(super) unsafe fn transfer(&mut self, page: *mut Page, direction: Transfer) {
        // SAFETY: per the contract.
        let page = unsafe { &*page };
        let sign = match direction {
            Transfer::Out => -1,
            Transfer::In => 1,
        };
        let c = &self.heap().counters;
        let blocks = sign * page.used_synced() as i64;
        bump_i(&c.live_blocks[page.bin()], blocks);
        bump_i(&c.live_bytes, blocks * page.block_size() as i64);
    }

    /// Makes this heap's counters exact (walks the free lists of its pages).
    pub fn flush_stats(&mut self) {
        self.flush_pages();
        self.publish_live();
    }

    fn flush_pages(&mut self) {
        for qi in 0..BIN_COUNT {
            let mut page = self.queues[qi].first();
            while !page.is_null() {
                // SAFETY: pages on our queues are ours, and none is borrowed.
                unsafe {
                    self.credit_now(page);
                    self.sync(page);
                    page = self.queues[qi].next(page);
                }
            }
        }
    }
}
