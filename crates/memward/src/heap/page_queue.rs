//! Page queues and the direct table: which page each size class allocates from.
//!
//! Queue `bin` holds the heap's pages of that class that may have free blocks, the current
//! one first; queue `FULL` holds pages found without any. Every change to the front of a
//! class queue rewrites the class's slots in `direct`, so the fast path never looks at the
//! queues. Owner-only, like everything in `Local`.

use super::{Local, EMPTY_PAGE_PTR, FULL};
use crate::page::{Page, FLAG_IN_FULL};
use crate::hook_table::{self, MODE_HOOKED, MODE_SAMPLED};
use crate::size_class::direct_range;

impl Local {
    /// # Safety
    /// `page` is a page of this heap on no queue.
    pub(super) unsafe fn queue_push_front(&mut self, qi: usize, page: *mut Page) {
        // SAFETY: forwarded contract.
        unsafe { self.queues[qi].push_front(page) };
        self.update_direct(qi);
    }

    /// # Safety
    /// `page` is a page of this heap on no queue.
    pub(super) unsafe fn queue_push_back(&mut self, qi: usize, page: *mut Page) {
        // SAFETY: forwarded contract.
        unsafe { self.queues[qi].push_back(page) };
        self.update_direct(qi);
    }

    /// # Safety
    /// `page` is on queue `qi` of this heap.
    pub(super) unsafe fn queue_remove(&mut self, qi: usize, page: *mut Page) {
        // SAFETY: forwarded contract.
        unsafe { self.queues[qi].remove(page) };
        self.update_direct(qi);
    }

    /// Moves a page that is on queue `qi` to its front (it becomes the class's current page).
    ///
    /// # Safety
    /// `page` is on queue `qi` of this heap.
    pub(super) unsafe fn queue_move_to_front(&mut self, qi: usize, page: *mut Page) {
        if self.queues[qi].first() != page {
            // SAFETY: forwarded contract.
            unsafe {
                self.queues[qi].remove(page);
                self.queues[qi].push_front(page);
            }
            self.update_direct(qi);
        }
    }

    fn update_direct(&mut self, qi: usize) {
        if qi == FULL {
            return;
        }
        let first = self.queues[qi].first();
        let target = if first.is_null() || self.mode == MODE_HOOKED {
            EMPTY_PAGE_PTR
        } else {
            first
        };
        let (lo, hi) = direct_range(qi);
        self.direct[lo..=hi].fill(target);
    }

    /// The queue a page of this heap is on.
    ///
    /// # Safety
    /// `page` is a live page of this heap, not borrowed elsewhere.
    pub(super) unsafe fn queue_of(page: *mut Page) -> usize {
        // SAFETY: per the contract.
        let page = unsafe { &*page };
        if page.flags() & FLAG_IN_FULL != 0 {
            FULL
        } else {
            page.bin()
        }
    }

    /// Switches mode (`hooks.rs`): in hooked mode the direct table points only at the
    /// empty page, so every allocation takes the slow path; in sampled mode it is as in
    /// fast mode, and the sampled slow path cuts the lists it hands out
    /// (`heap/sample.rs`).
    pub fn set_mode(&mut self, mode: u8) {
        if self.mode == mode {
            return;
        }
        let direct_changes = (self.mode == MODE_HOOKED) != (mode == MODE_HOOKED);
        if mode == MODE_SAMPLED {
            self.start_sampling();
        } else {
            self.forget_cuts();
        }
        self.mode = mode;
        if direct_changes {
            for qi in 1..self.queues.len() {
                self.update_direct(qi);
            }
        }
    }

    /// The heap's mode (`hook_table::MODE_*`).
    #[inline]
    pub fn mode(&self) -> u8 {
        self.mode
    }

    /// Switches to the mode the installed hooks ask for.
    #[cold]
    #[inline(never)]
    pub fn follow_hooks(&mut self) {
        let mode = hook_table::wanted_mode(self.heap().is_first_class());
        self.set_mode(mode);
    }

    /// Forgets every page queue (abandon and destroy, once the pages are dealt with).
    pub(super) fn clear_queues(&mut self) {
        for q in &mut self.queues {
            q.clear();
        }
        self.direct = [EMPTY_PAGE_PTR; crate::size_class::DIRECT_SLOTS];
    }
}
