//! Thread exit and first-class heap drop: giving every segment up, and taking abandoned
//! segments over.
//!
//! `abandon` (thread exit) frees the heap's empty pages and hands each segment that still
//! holds live blocks to the global abandoned list (its free slots stay resident for the
//! heap that adopts it, within a global size bound: `segment_pool::budget_abandoned`), after opening its
//! abandoned-free stack so that remote frees collect on the segment. Frees that raced with
//! this (pushed to our queue after we last drained it) are drained once more and routed
//! again, now to the segments' stacks. `adopt` is the reverse, on a heap that needs pages.
//! `destroy` (first-class heap drop) releases everything at once, live blocks included.

use super::accounting::Transfer;
use super::remote::{confirm_queued_not_free, queued_next};
use super::{Local, FULL};
use crate::list::Block;
use crate::page::FLAG_IN_FULL;
use crate::segment::{Segment, SegmentKind};
use crate::size_class::BIN_COUNT;
use crate::{options, os, segment_pool};
use core::ptr;

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

    /// Visits `seg`, an abandoned segment into which this thread's free just brought the
    /// count of live blocks to half or to zero, if no heap adopted it meanwhile: takes it
    /// over, applies the frees collected on it (pages that empty are freed), then releases
    /// it if no block is left, else purges its free slots and abandons it again for a
    /// thread that needs pages. So memory freed into abandoned segments comes back without
    /// waiting for an allocating thread, and the freeing thread (which may never allocate)
    /// keeps nothing. Not for first-class heaps nor for a heap being given up.
    ///
    /// # Safety
    /// `seg` is a segment of memward (mapped).
    pub unsafe fn visit_abandoned(&mut self, seg: *mut Segment) {
        if self.leaving || !self.visiting.is_null() || self.heap().is_first_class() {
            return;
        }
        // SAFETY: forwarded contract; once off the list the segment is ours until we
        // release or abandon it again, and `visiting` keeps the frees from releasing it.
        unsafe {
            if !segment_pool::take_if_abandoned(seg) {
                return;
            }
            self.visiting = seg;
            self.adopt(seg);
            self.visiting = ptr::null_mut();
            let s = &*seg;
            let empty = match s.kind() {
                SegmentKind::Huge => !(*s.page_at(0)).in_use(),
                _ => s.used_pages() == 0,
            };
            self.detach_segment(seg);
            if empty {
                if s.kind() != SegmentKind::Huge {
                    s.unpurge_slots();
                }
                segment_pool::release(seg);
            } else {
                self.abandon_segment(seg);
            }
            self.publish_live();
        }
    }

    /// Takes a segment of ours and its pages off our lists and queues.
    ///
    /// # Safety
    /// `seg` is ours, on one of our segment lists; its pages are not borrowed.
    unsafe fn detach_segment(&mut self, seg: *mut Segment) {
        // SAFETY: per the contract.
        unsafe {
            let s = &*seg;
            for i in 0..s.page_count() {
                let page = s.page_at(i);
                if (*page).in_use() && (*page).bin() != 0 {
                    self.queue_remove(Self::queue_of(page), page);
                }
            }
            self.purge_set.remove(seg);
            match s.kind() {
                SegmentKind::Huge => self.huge.remove(seg),
                kind => {
                    let k = kind.class_index();
                    if s.in_full_list() {
                        self.full[k].remove(seg);
                    } else {
                        self.avail[k].remove(seg);
                    }
                }
            }
        }
    }

    /// Hands a segment of ours, on none of our lists, to the abandoned list: its pages'
    /// live blocks leave our statistics, its free slots stay resident for the heap that
    /// adopts it or are purged (`segment_pool::budget_abandoned`), and its abandoned-free
    /// stack opens.
    ///
    /// # Safety
    /// `seg` is ours, off our lists and queues, and holds live blocks.
    unsafe fn abandon_segment(&mut self, seg: *mut Segment) {
        // SAFETY: per the contract; its pages are not borrowed.
        unsafe {
            let s = &*seg;
            let mut live = 0;
            for i in 0..s.page_count() {
                let page = s.page_at(i);
                if (*page).in_use() {
                    self.credit_now(page);
                    self.sync(page);
                    live += (*page).used() as usize;
                    self.transfer(page, Transfer::Out);
                }
            }
            self.purge_set.remove(seg);
            segment_pool::budget_abandoned(seg);
            s.mark_abandoned(live);
            segment_pool::abandon(seg);
        }
    }

    /// Gives up every segment: empty pages are freed, segments with live blocks are
    /// abandoned for other threads to adopt. The heap is left empty.
    pub fn abandon(&mut self) {
        self.leaving = true;
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
            // SAFETY: the segment is ours and now on no list; its pages are not borrowed
            // (the queues are cleared below).
            unsafe { self.abandon_segment(seg) };
        }
        self.clear_queues();
        self.pending_purge = 0;
        self.pending_bytes = 0;
        self.recent_runs.clear();
        self.purge_set.clear();
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
                        if s.has_resident_free_slot() {
                            self.purge_set.add(seg);
                        }
                    }
                }
            }
            let mut b = frees;
            while !b.is_null() {
                let next = queued_next(b);
                if Block::remote_tag(b) {
                    confirm_queued_not_free(s.page_of(b), b.cast());
                }
                self.free_in_page(s.page_of(b), b.cast());
                b = next;
            }
        }
    }

    /// Frees everything this heap holds at once (first-class heap drop): blocks queued by
    /// other threads for our segments are dropped with them, others are re-sent.
    pub fn destroy(&mut self) {
        self.leaving = true;
        for mut b in self.heap().remote.take_lanes() {
            while !b.is_null() {
                // SAFETY: queued blocks are live memward blocks being freed.
                unsafe {
                    let next = queued_next(b);
                    let seg = &*Segment::of(b);
                    let ours = seg.owner() == self.tag() && seg.thread_id() == self.thread_id;
                    if !ours {
                        self.free_from_queue(b.cast(), Block::remote_tag(b));
                    }
                    b = next;
                }
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
                self.purge_set.remove(seg);
                s.unpurge_slots();
                segment_pool::release(seg);
            }
        }
        self.clear_queues();
        self.pending_purge = 0;
        self.pending_bytes = 0;
        self.recent_runs.clear();
        self.purge_set.clear();
        self.flush_outbox();
        self.publish_live();
    }
}

