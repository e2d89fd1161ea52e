//! Large and huge objects: one block per segment, placed at its alignment, with address
//! space to grow in place. Owner-only.

use super::Local;
use crate::layout::{LARGE_MAX, SEGMENT_SIZE};
use crate::page::Page;
use crate::segment::{Segment, SegmentKind, HEADER_SIZE};
use crate::stats::{self, bump, bump_i};
use crate::{os, segment_pool};
use core::ptr;

impl Local {
    /// Objects above `MEDIUM_MAX` (or over-aligned ones): one per large or huge segment,
    /// starting at a multiple of `align` (a power of two, at most `MAX_ALIGN`), with room
    /// to grow in place to `reserve` bytes (address space only until touched).
    pub fn alloc_large(&mut self, size: usize, align: usize, reserve: usize) -> *mut u8 {
        let ps = os::page_size();
        let Some(block_size) = size.checked_add(ps - 1).map(|s| s & !(ps - 1)) else {
            return ptr::null_mut();
        };
        // Blocks start on an OS page so that a purged segment's block is entirely zero.
        let align = align.max(ps);
        let offset = (HEADER_SIZE + align - 1) & !(align - 1);
        let Some(needed) = offset.checked_add(block_size) else {
            return ptr::null_mut();
        };
        let room = offset.saturating_add(reserve.max(block_size)).max(needed);
        let seg = if block_size <= LARGE_MAX && room <= SEGMENT_SIZE {
            segment_pool::acquire(SegmentKind::Large, self.tag(), self.thread_id, 0)
        } else {
            segment_pool::acquire(SegmentKind::Huge, self.tag(), self.thread_id, room)
        };
        if seg.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: a fresh segment of ours, at least offset + block_size bytes long; its one
        // page descriptor is not borrowed.
        unsafe {
            let s = &*seg;
            s.take_single_slot();
            let start = seg.cast::<u8>().add(offset);
            let page = s.page_at(0);
            (*page).init_single(self.tag(), start, block_size);
            s.note_touched(page, offset - HEADER_SIZE + block_size);
            self.large.push_front(seg);
            let c = &self.heap().counters;
            bump(&c.requested, size as u64);
            bump(&c.allocs[0], 1);
            bump(&c.alloc_bytes, block_size as u64);
            self.sync(page);
            start
        }
    }

    /// Grows or shrinks a large or huge block in place if its segment has room.
    ///
    /// # Safety
    /// `page` is a large or huge page of this heap, not borrowed elsewhere.
    pub unsafe fn resize_large_in_place(&mut self, page: *mut Page, new_size: usize) -> bool {
        let ps = os::page_size();
        let Some(new_block) = new_size.checked_add(ps - 1).map(|s| s & !(ps - 1)) else {
            return false;
        };
        // SAFETY: the page is ours and sits in its segment's header.
        unsafe {
            let seg = &*Segment::of(page);
            let limit = seg.base()
                + if seg.kind() == SegmentKind::Huge {
                    seg.size()
                } else {
                    SEGMENT_SIZE
                };
            let start = (*page).start() as usize;
            if start + new_block > limit {
                return false;
            }
            let old = (*page).block_size();
            (*page).resize_single(new_block);
            let slot_start = seg.base() + HEADER_SIZE;
            seg.note_touched(page, start - slot_start + new_block);
            let diff = new_block as i64 - old as i64;
            bump_i(&self.heap().counters.live_bytes, diff);
            stats::live_delta(diff);
            if diff > 0 {
                bump(&self.heap().counters.alloc_bytes, diff as u64);
            }
            true
        }
    }
}
