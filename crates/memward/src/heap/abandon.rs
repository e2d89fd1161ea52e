//! Thread exit and first-class heap drop: giving every segment up, and taking abandoned
//! segments over.
//!
//! `abandon` (thread exit) frees the heap's empty pages, purges free slots, and hands each
//! segment that still holds live blocks to the global abandoned list, after opening its
//! abandoned-free stack so that remote frees collect on the segment. Frees that raced with
//! this (pushed to our queue after we last drained it) are drained once more and routed
//! again, now to the segments' stacks. `adopt` is the reverse, on a heap that needs pages.
//! `destroy` (first-class heap drop) releases everything at once, live blocks included.

use super::accounting::Transfer;
use super::{Local, FULL};
use crate::list::Block;
use crate::page::FLAG_IN_FULL;
use crate::segment::{Segment, SegmentKind};
use crate::size_class::BIN_COUNT;
use crate::{options, os, segment_pool};

impl Local {
    /// Takes any segment off the heap's segment lists, or null when they are all empty.
    fn pop_any_segment(&mut self) -> *mut Segment {
        for list in self.avail.iter_mut().chain(&mut self.full).chain([&mut self.huge]) {
            let seg = list.pop_front();
            if !seg.is_null() {
                return seg;
            }
        }
        core::ptr::null_mut()
    }

    /// Gives up every segment: empty pages are freed, segments with live blocks are
    /// abandoned for other threads to adopt. The heap is left empty.
    pub fn abandon(&mut self) {
        self.flush_outbox();
        self.drain_remote();
        for qi in 0..BIN_COUNT {
            let mut page = self.queues[qi].first();
            while !page.is_null() {
                // SAFETY: pages on our queues are ours and not borrowed.
                unsafe {
                    let next = self.queues[qi].next(page);
                    self.credit_now(page);
                    self.sync(page);
                    if (*page).used() == 0 {
                        self.free_page(page);
                    }
                    page = next;
                }
            }
        }
        loop {
            let seg = self.pop_any_segment();
            if seg.is_null() {
                break;
            }
            // SAFETY: the segment is ours and now on no list; its pages are not borrowed.
            unsafe {
                let s = &*seg;
                for i in 0..s.page_count() {
                    let page = s.page_at(i);
                    if (*page).in_use() {
                        self.transfer(page, Transfer::Out);
                    }
                }
                // Nobody will use the free slots soon: return them to the OS now.
                s.purge_free_slots();
                s.mark_abandoned();
                segment_pool::abandon(seg);
            }
        }
        self.clear_queues();
        self.pending_purge = 0;
        // Frees that raced with the tagging are re-sent to their segments.
        self.drain_remote();
        self.flush_outbox();
        self.publish_live();
        // Threads that come and go return cached memory even if no thread allocates.
        if options::purge_delay_ms() >= 0 {
            segment_pool::purge_cache(os::now_ms());
        }
    }

    /// Takes over an abandoned segment: its pages join our queues and the frees collected
    /// while it had no owner are applied.
    ///
    /// # Safety
    /// `seg` was taken off the abandoned list by the calling thread.
    pub(super) unsafe fn adopt(&mut self, seg: *mut Segment) {
        // SAFETY: nobody else owns the segment now; remote freers only touch its atomics,
        // and no page of it is borrowed.
        unsafe {
            let s = &*seg;
            let frees = s.adopt(self.tag(), self.thread_id);
            for i in 0..s.page_count() {
                let page = s.page_at(i);
                if !(*page).in_use() {
                    continue;
                }
                (*page).set_heap(self.tag());
                self.transfer(page, Transfer::In);
                let bin = (*page).bin();
                if bin == 0 {
                    continue;
                }
                (*page).set_flag(FLAG_IN_FULL, false);
                if (*page).has_room() {
                    self.queue_push_back(bin, page);
                } else {
                    (*page).set_flag(FLAG_IN_FULL, true);
                    self.queue_push_back(FULL, page);
                }
            }
            match s.kind() {
                SegmentKind::Huge => self.huge.push_front(seg),
                kind => {
                    let k = kind.class_index();
                    let full = s.free_mask() == 0;
                    s.set_in_full_list(full);
                    if full {
                        self.full[k].push_front(seg);
                    } else {
                        self.avail[k].push_front(seg);
                    }
                }
            }
            let mut b = frees;
            while !b.is_null() {
                let next = Block::next(b);
                self.free_in_page(s.page_of(b), b.cast());
                b = next;
            }
        }
    }

    /// Frees everything this heap holds at once (first-class heap drop): blocks queued by
    /// other threads for our segments are dropped with them, others are re-sent.
    pub fn destroy(&mut self) {
        let mut b = self.heap().remote.0.take_all();
        while !b.is_null() {
            // SAFETY: queued blocks are live memward blocks being freed.
            unsafe {
                let next = Block::next(b);
                let seg = &*Segment::of(b);
                let ours = seg.owner() == self.tag() && seg.thread_id() == self.thread_id;
                if !ours {
                    self.free_from_queue(b.cast());
                }
                b = next;
            }
        }
        loop {
            let seg = self.pop_any_segment();
            if seg.is_null() {
                break;
            }
            // SAFETY: our segment; after this loop no page of it is referenced.
            unsafe {
                let s = &*seg;
                for i in 0..s.page_count() {
                    let page = s.page_at(i);
                    if (*page).in_use() {
                        self.credit_now(page);
                        (*page).discard_blocks();
                        self.sync(page);
                    }
                }
                s.unpurge_slots();
                segment_pool::release(seg);
            }
        }
        self.clear_queues();
        self.pending_purge = 0;
        self.flush_outbox();
        self.publish_live();
    }
}
