//! Owner frees that change a page's state: the page leaves the full queue, or its last
//! block comes back and its slot returns to the segment (and the segment to the pool when
//! it empties). The common owner free is the fast path in `free.rs`; this is its slow
//! half. Owner-only.

use super::{Local, FULL};
use crate::list::Block;
use crate::page::{Page, FLAG_HAS_ALIGNED, FLAG_IN_FULL, FLAG_SAMPLED, FLAG_SINGLE, FLAG_UNUSED};
use crate::segment::{Segment, SegmentKind};
use crate::{hardening, options, os, sampling, segment_pool};

impl Local {
    /// Owner free with the flags handled (full page, aligned pointers, a one-block page,
    /// a released slot). Aborts on a pointer that is not a block start (unless the page
    /// handed out aligned pointers) and on a double free.
    ///
    /// # Safety
    /// `page` is a page slot of this heap's segment that contains `p`, not borrowed
    /// elsewhere.
    pub unsafe fn free_in_page(&mut self, page: *mut Page, p: *mut u8) {
        // SAFETY: per the contract; references to the page end before queue operations.
        unsafe {
            let flags = (*page).flags();
            if flags & FLAG_UNUSED != 0 {
                hardening::free_in_released_page();
            }
            let b = if flags & FLAG_HAS_ALIGNED != 0 {
                (*page).block_start(p)
            } else {
                let start = if flags & FLAG_SINGLE != 0 {
                    p == (*page).start()
                } else {
                    (*page).is_block_start(p)
                };
                if !start {
                    hardening::invalid_pointer();
                }
                p
            };
            if flags & FLAG_SAMPLED != 0 {
                sampling::clear_flag_if_done(page);
            }
            let used = Page::push_local(page, b.cast::<Block>());
            if flags & FLAG_IN_FULL != 0 {
                self.queue_remove(FULL, page);
                (*page).set_flag(FLAG_IN_FULL, false);
                self.queue_push_back((*page).bin(), page);
            }
            if used == 0 {
                self.page_emptied(page);
            }
        }
    }

    /// A page's last block came back: keep it if it is the current page of its class
    /// (to avoid thrashing), else give the slot back to its segment.
    ///
    /// # Safety
    /// `page` is a page of this heap with no live block, not borrowed elsewhere.
    pub unsafe fn page_emptied(&mut self, page: *mut Page) {
        // SAFETY: per the contract.
        unsafe {
            let bin = (*page).bin();
            if bin != 0
                && self.queues[bin].first() == page
                && (*page).flags() & FLAG_IN_FULL == 0
                && Segment::of(page) != self.visiting
            {
                return;
            }
            self.free_page(page);
        }
    }

    /// Returns an empty page's slot to its segment; releases the segment when it empties.
    ///
    /// # Safety
    /// As for [`Local::page_emptied`].
    pub(super) unsafe fn free_page(&mut self, page: *mut Page) {
        // SAFETY: per the contract; the page's segment is one of ours. The segment is only
        // reached through `&Segment` (its owner state is in cells), so it never overlaps a
        // reference to the page.
        unsafe {
            debug_assert_eq!((*page).used(), 0);
            self.credit_now(page);
            self.sync(page);
            let seg = Segment::of(page);
            let s = &*seg;
            if (*page).bin() != 0 {
                self.queue_remove(Self::queue_of(page), page);
            }
            (*page).retire();
            match s.kind() {
                // A visited segment is released (or abandoned again) when the visit ends.
                SegmentKind::Huge if seg == self.visiting => {}
                SegmentKind::Huge => {
                    self.huge.remove(seg);
                    segment_pool::release(seg);
                }
                kind => {
                    let k = kind.class_index();
                    let index = (page as usize - s.page_at(0) as usize) / size_of::<Page>();
                    let was_full = s.in_full_list();
                    let in_use = if kind == SegmentKind::Large {
                        self.give_back_span(s, page, index)
                    } else {
                        s.give_back_slot(index)
                    };
                    if was_full {
                        self.full[k].remove(seg);
                        self.avail[k].push_front(seg);
                        s.set_in_full_list(false);
                    }
                    if in_use == 0 && seg != self.visiting {
                        self.recent_runs.forget(seg);
                        self.purge_set.remove(seg);
                        self.avail[k].remove(seg);
                        s.unpurge_slots();
                        segment_pool::release(seg);
                    } else {
                        let now = os::now_ms();
                        (*page).set_freed_at(now);
                        if seg != self.visiting {
                            self.purge_set.add(seg);
                        }
                        match options::purge_delay_ms() {
                            0 => s.purge_slot(index),
                            d if d > 0 => {
                                self.pending_purge += 1;
                                self.pending_bytes += (*page).touched() as usize;
                                // The size bound: enforced here, where memory becomes free,
                                // so a program that stops allocating keeps no more.
                                if self.pending_bytes > self.free_resident_bound() {
                                    self.purge_oldest(now);
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
    }
}
