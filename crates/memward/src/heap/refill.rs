//! The allocation slow path: housekeeping, then a page of the class with a free block,
//! or a new page from one of the heap's segments, or a new segment (adopted from an exited
//! thread, from the cache, or from the OS). Owner-only.

use super::{pool, Local, FULL, MAX_ADOPT, TICKS_PER_CLOCK_READ};
use crate::page::{Page, FLAG_IN_FULL};
use crate::segment::{Segment, SegmentKind};
use crate::size_class::{bin_of, bin_size, MEDIUM_MAX, SMALL_MAX};
use crate::stats::bump;
use crate::{hook_table, options, os, segment_pool};
use core::ptr;

impl Local {
    /// Everything that is not a pop from the direct page: housekeeping, finding or making a
    /// page for the class, large and huge objects.
    pub fn alloc_slow(&mut self, size: usize) -> *mut u8 {
        self.tick();
        #[cfg(feature = "expensive-checks")]
        if self.slow_count % 64 == 0 {
            self.check();
        }
        if size > MEDIUM_MAX {
            return self.alloc_large(size, 64);
        }
        let page = self.find_page(bin_of(size));
        if page.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: find_page returns a page of ours with a non-empty free list.
        let b = unsafe { Page::pop(page) };
        debug_assert!(!b.is_null());
        bump(&self.heap().counters.requested, size as u64);
        b.cast()
    }

    /// A block for a heap in hooked mode, whose direct table names only the empty page:
    /// popped from the first page of its class's queue (the page fast mode's table would
    /// name) when that page has a free block, with no housekeeping; anything else goes to
    /// [`alloc_slow`](Self::alloc_slow), so housekeeping runs as often as in fast mode,
    /// when a page runs dry. Every allocation of a hooked heap used to take `alloc_slow`,
    /// whose tick alone cost about 40 instructions.
    #[inline]
    pub fn alloc_queued(&mut self, size: usize) -> *mut u8 {
        if size <= MEDIUM_MAX {
            let page = self.queues[bin_of(size)].first();
            // SAFETY: pages on our queues are live pages of ours, not borrowed elsewhere;
            // one with a free block pops it.
            unsafe {
                if !page.is_null() && (*page).has_free() {
                    let b = Page::pop(page);
                    (*page).prefetch_next();
                    bump(&self.heap().counters.requested, size as u64);
                    return b.cast();
                }
            }
        }
        self.alloc_slow(size)
    }

    /// Drains remote frees and, every few calls, purges what is due.
    #[inline(always)]
    pub(super) fn tick(&mut self) {
        self.flush_outbox();
        if !self.heap().remote.is_empty() {
            self.drain_remote();
        }
        self.slow_count = self.slow_count.wrapping_add(1);
        if self.slow_count % TICKS_PER_CLOCK_READ == 0 {
            // Hooks installed or removed since: switch mode (`hooks.rs`). Here, not on
            // every slow path, which programs with mixed sizes take often.
            // (One load and one test while neither is on: fast mode's slow path.)
            if hook_table::active() | self.mode != 0 {
                self.follow_hooks();
            }
            let delay = options::purge_delay_ms();
            if delay >= 0 {
                let now = os::now_ms();
                if now >= self.next_purge {
                    self.next_purge = now + (delay as u64 / 2).max(1);
                    self.purge_due(now, delay as u64, false);
                    segment_pool::purge_cache(now);
                }
            }
        }
    }

    /// Refills an exhausted page's `free` (from `local_free` or by carving) and reconciles
    /// its statistics.
    ///
    /// # Safety
    /// `page` is a live page of this heap, not borrowed elsewhere.
    #[inline(always)]
    unsafe fn refill_page(&mut self, page: *mut Page) {
        // SAFETY: per the contract; the segment header is mapped while the page lives.
        unsafe {
            if !(*page).has_free() {
                self.credit(page, 0);
                let n = (*page).refill();
                (*page).set_batch(n);
                let extent = (*page).capacity() as usize * (*page).block_size();
                (*Segment::of(page)).note_touched(page, extent);
            }
            self.sync(page);
        }
    }

    /// Finds a page of `bin` with a free block, moving exhausted pages to the full queue,
    /// or makes a new one. Pages of exited threads come before new pages: an adopted
    /// segment may hold pages of this class with room. Null if out of memory.
    #[inline(always)]
    pub(super) fn find_page(&mut self, bin: usize) -> *mut Page {
        let page = self.page_with_room(bin);
        if !page.is_null() {
            return page;
        }
        if self.adopt_abandoned(bin) {
            let page = self.page_with_room(bin);
            if !page.is_null() {
                return page;
            }
        }
        let page = self.new_page(bin);
        if !page.is_null() {
            // SAFETY: a fresh page of ours on no queue.
            unsafe {
                self.refill_page(page);
                self.queue_push_front(bin, page);
            }
        }
        page
    }

    /// The first page of `bin`'s queue that has (or can be given) a free block, moving
    /// exhausted ones to the full queue; null if none. Inlined: it is the common slow path
    /// (a page whose free list ran dry), and a call here cost 7 instructions per pair in the
    /// mixed callgrind pattern.
    #[inline(always)]
    fn page_with_room(&mut self, bin: usize) -> *mut Page {
        let mut page = self.queues[bin].first();
        while !page.is_null() {
            // SAFETY: pages on our queues are ours; no reference to one is held across the
            // queue operations.
            unsafe {
                let next = self.queues[bin].next(page);
                self.refill_page(page);
                if (*page).has_free() {
                    self.queue_move_to_front(bin, page);
                    return page;
                }
                self.queue_remove(bin, page);
                (*page).set_flag(FLAG_IN_FULL, true);
                self.queue_push_front(FULL, page);
                page = next;
            }
        }
        ptr::null_mut()
    }

    /// Adopts segments abandoned by exited threads until one gives a page of `bin` or a
    /// free slot of its kind (at most `MAX_ADOPT`); true if any was adopted. First-class
    /// heaps never adopt: dropping one releases its segments, and adopted segments hold
    /// blocks that other code still owns.
    #[inline(never)]
    fn adopt_abandoned(&mut self, bin: usize) -> bool {
        if segment_pool::abandoned_count() == 0 || self.heap().is_first_class() {
            return false;
        }
        let k = Self::kind_of_bin(bin).class_index();
        pool::drain_retired_heaps(self);
        let mut adopted = false;
        for _ in 0..MAX_ADOPT {
            let s = segment_pool::take_abandoned();
            if s.is_null() {
                break;
            }
            // SAFETY: an abandoned segment taken off the list is ours to adopt.
            unsafe { self.adopt(s) };
            adopted = true;
            if !self.queues[bin].is_empty() || !self.avail[k].is_empty() {
                break;
            }
        }
        adopted
    }

    /// The segment kind whose pages hold blocks of `bin`.
    fn kind_of_bin(bin: usize) -> SegmentKind {
        if bin_size(bin) <= SMALL_MAX {
            SegmentKind::Small
        } else {
            SegmentKind::Medium
        }
    }

    /// Takes a free page slot from our segments (acquiring a segment if needed) and
    /// initialises it for `bin`.
    fn new_page(&mut self, bin: usize) -> *mut Page {
        let block_size = bin_size(bin);
        let kind = Self::kind_of_bin(bin);
        let k = kind.class_index();
        let mut seg = self.avail[k].first();
        if seg.is_null() {
            let huge_pages = self.wants_huge_pages();
            seg = segment_pool::acquire(kind, self.tag(), self.thread_id, huge_pages);
            if seg.is_null() {
                return ptr::null_mut();
            }
            // SAFETY: a fresh segment of ours on no list.
            unsafe { self.take_segment(k, seg) };
        }
        // SAFETY: seg is one of our segments with a free slot, on our `avail` list.
        unsafe {
            let s = &*seg;
            let Some((i, now_full)) = s.take_slot() else {
                unreachable!("segment on the avail list without a free slot")
            };
            self.reuse_pending(s, i, 1);
            if now_full {
                self.avail[k].remove(seg);
                self.full[k].push_front(seg);
                s.set_in_full_list(true);
            }
            let (start, end) = s.slot_range(i);
            let page = s.page_at(i);
            (*page).set_purged(false);
            (*page).init(self.tag(), bin, block_size, start as *mut u8, end);
            page
        }
    }

    /// Puts `seg`, just acquired, on our list of class `k`; one from the cache whose slots
    /// may still be resident joins the purge set.
    ///
    /// # Safety
    /// `seg` is a segment of ours on no list.
    pub(super) unsafe fn take_segment(&mut self, k: usize, seg: *mut Segment) {
        // SAFETY: per the contract.
        unsafe {
            self.avail[k].push_front(seg);
            if (*seg).has_resident_free_slot() {
                self.purge_set.add(seg);
            }
        }
    }

    /// The heap's in-use bytes above which its new small segments ask for
    /// transparent huge pages (`segment_pool::acquire`): a heap that holds this much fills
    /// its segments, so a huge page is nearly all used; a thread that keeps a few KiB
    /// never gets one, however much the whole process holds.
    pub(super) fn wants_huge_pages(&self) -> bool {
        options::huge_pages()
            && self.heap().counters.live_bytes.load(core::sync::atomic::Ordering::Relaxed)
                >= segment_pool::HUGE_PAGE_HEAP_THRESHOLD
    }
}
