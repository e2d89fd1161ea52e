//! Whole-heap consistency checks: every page's invariant, queue membership and flags, the
//! direct table, each segment's slot accounting and the outbox. Run by tests, by
//! `memward::check_thread_heap()` and, under the `expensive-checks` feature, every 64th
//! slow path.

use super::{Local, EMPTY_PAGE_PTR, FULL, OUTBOX_MAX};
use crate::page::FLAG_IN_FULL;
use crate::size_class::{direct_range, BIN_COUNT};

impl Local {
    /// Checks the heap's invariants; panics on a violation.
    pub fn check(&self) {
        for qi in 0..BIN_COUNT {
            let queue = &self.queues[qi];
            queue.check();
            let mut page = queue.first();
            while !page.is_null() {
                // SAFETY: pages on our queues are ours and not borrowed during the check.
                unsafe {
                    let p = &*page;
                    assert!(p.in_use(), "queued page is in use");
                    assert_eq!(p.heap(), self.tag(), "queued page belongs to this heap");
                    assert_eq!(
                        qi == FULL,
                        p.flags() & FLAG_IN_FULL != 0,
                        "page on the full queue == FLAG_IN_FULL"
                    );
                    if qi != FULL {
                        assert_eq!(p.bin(), qi, "page on its class queue");
                    }
                    p.check();
                    page = queue.next(page);
                }
            }
            if qi != FULL {
                let (lo, hi) = direct_range(qi);
                let want = if queue.is_empty() {
                    EMPTY_PAGE_PTR
                } else {
                    queue.first()
                };
                for w in lo..=hi {
                    assert_eq!(self.direct[w], want, "direct[w] == first page of bin(w)");
                }
            }
        }
        for list in self.avail.iter().chain(&self.full).chain([&self.huge]) {
            list.check();
            let mut seg = list.first();
            while !seg.is_null() {
                // SAFETY: our segments; no page is borrowed during the check.
                unsafe {
                    let s = &*seg;
                    assert_eq!(s.thread_id(), self.thread_id, "segment owned by this thread");
                    s.check();
                    seg = list.next(seg);
                }
            }
        }
        self.check_purge_set();
        assert_eq!(self.outbox_head.is_null(), self.outbox_len == 0);
        assert!(self.outbox_len < OUTBOX_MAX);
    }

    /// Every segment with a free resident slot is in the purge set (unless it overflowed),
    /// and every segment in it is ours and marked.
    fn check_purge_set(&self) {
        let set = &self.purge_set;
        for &seg in set.members() {
            // SAFETY: segments in the set are ours; no page is borrowed during the check.
            unsafe {
                assert!((*seg).in_purge_set(), "a segment in the purge set is marked");
                assert_eq!((*seg).thread_id(), self.thread_id, "purge set: our segment");
            }
        }
        for list in &self.avail {
            let mut seg = list.first();
            while !seg.is_null() {
                // SAFETY: our segments; no page is borrowed during the check.
                unsafe {
                    let s = &*seg;
                    assert!(
                        !s.has_resident_free_slot() || set.overflowed() || s.in_purge_set(),
                        "a segment with free resident slots is in the purge set"
                    );
                    assert_eq!(s.in_purge_set(), set.members().contains(&seg));
                    seg = list.next(seg);
                }
            }
        }
    }
}
