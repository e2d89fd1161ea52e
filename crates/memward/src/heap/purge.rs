//! Returning free memory: free page slots are purged once they have been free for the
//! purge delay (checked on slow paths, every `TICKS_PER_CLOCK_READ`-th one), all at once
//! when their resident bytes pass `MEMWARD_FREE_RESIDENT_MIB` (checked where a page is
//! freed, `retire.rs`), and all at once on request (`collect`). Purging only touches free
//! slots, never a live block; it looks only at the segments of the heap's purge set, and
//! returns adjacent slots with one system call. Owner-only.

use super::Local;
use crate::page::Page;
use crate::segment::Segment;
use crate::size_class::BIN_COUNT;
use crate::{options, os, segment_pool};

/// The segments of a heap that may hold free, resident slots (the ones a purge looks
/// at), so that a purge walks those instead of every segment of the heap: a program that
/// frees a 1 GiB heap block by block hits the size bound every few MiB, and walking all
/// its 1,650 segments each time took most of the frees' time (`medium-live`). A segment
/// is added when one of its slots is freed (or it comes from the cache resident), and
/// dropped by the walk that finds nothing left to purge in it. When the set is full it
/// overflows, and the next walk takes every segment and rebuilds it.
pub(super) struct PurgeSet {
    segments: [*mut Segment; PURGE_SET_CAPACITY],
    len: usize,
    overflowed: bool,
}

/// Segments a `PurgeSet` holds. A purge leaves at most half the size bound (4 MiB) of
/// young free slots, in at most 128 segments (of 32 KiB slots); the set overflows only
/// when another 128 segments get free slots before the next walk.
const PURGE_SET_CAPACITY: usize = 256;

impl PurgeSet {
    pub(super) const fn new() -> Self {
        PurgeSet {
            segments: [core::ptr::null_mut(); PURGE_SET_CAPACITY],
            len: 0,
            overflowed: false,
        }
    }

    /// Adds `seg`, a segment of ours, if it is not in the set.
    ///
    /// # Safety
    /// The calling thread owns `seg`.
    pub(super) unsafe fn add(&mut self, seg: *mut Segment) {
        // SAFETY: per the contract.
        unsafe {
            if (*seg).in_purge_set() {
                return;
            }
            if self.len == PURGE_SET_CAPACITY {
                self.overflowed = true;
                return;
            }
            (*seg).set_in_purge_set(true);
        }
        self.segments[self.len] = seg;
        self.len += 1;
    }

    /// Drops `seg`, which is leaving the heap.
    ///
    /// # Safety
    /// The calling thread owns `seg`.
    pub(super) unsafe fn remove(&mut self, seg: *mut Segment) {
        // SAFETY: per the contract.
        // SAFETY: per the contract.
        if unsafe { (*seg).in_purge_set() } {
            if let Some(j) = self.members().iter().position(|&s| s == seg) {
                // SAFETY: per the contract.
                unsafe { self.remove_at(j) };
            }
        }
    }

    /// Drops the `j`-th segment of the set (the last takes its place).
    ///
    /// # Safety
    /// The calling thread owns the segments in the set.
    unsafe fn remove_at(&mut self, j: usize) {
        // SAFETY: per the contract.
        unsafe { (*self.segments[j]).set_in_purge_set(false) };
        self.len -= 1;
        self.segments[j] = self.segments[self.len];
    }

    /// The segments in the set.
    pub(super) fn members(&self) -> &[*mut Segment] {
        &self.segments[..self.len]
    }

    /// Whether segments were left out since the last walk over every segment.
    pub(super) fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Empties the set, unmarking its segments (before a walk over every segment).
    ///
    /// # Safety
    /// The calling thread owns the segments in the set.
    unsafe fn unmark_all(&mut self) {
        while self.len > 0 {
            // SAFETY: per the contract.
            unsafe { self.remove_at(self.len - 1) };
        }
        self.overflowed = false;
    }

    /// Forgets every segment without touching them: for a heap whose segments have all
    /// left it (each one's mark is reset when it is abandoned or initialised again).
    pub(super) fn clear(&mut self) {
        self.len = 0;
        self.overflowed = false;
    }
}

/// Applies `decide` to the free, resident slots of `s` (purging, adjacent ones with one
/// system call, those it says yes to) and adds the slots left to `pending`, as a count
/// and bytes. True if some are left.
///
/// # Safety
/// The calling thread owns `s`, whose free slots hold no page.
unsafe fn purge_segment_where(
    s: &Segment,
    decide: &mut impl FnMut(&Page) -> bool,
    pending: &mut (usize, usize),
) -> bool {
    let before = pending.0;
    // The run of slots to purge being gathered, as [start, end).
    let (mut start, mut end) = (0, 0);
    // SAFETY: per the contract; slots are purged only once the iterator has passed them,
    // and purging leaves the free mask as it is.
    unsafe {
        for (i, page) in s.resident_free_slots() {
            if decide(page) {
                if i != end {
                    s.purge_slots(start, end - start);
                    start = i;
                }
                end = i + 1;
            } else {
                pending.0 += 1;
                pending.1 += page.touched() as usize;
            }
        }
        s.purge_slots(start, end - start);
    }
    pending.0 != before
}

impl Local {
    /// Calls `decide` on every free slot of our small, medium and large segments that
    /// holds resident memory (not purged, carved since mapped or purged); the slots it
    /// says yes to are purged. Walks the purge set (every segment if it overflowed) and
    /// recounts `pending_purge` and `pending_bytes` from the slots left.
    fn purge_slots_where(&mut self, mut decide: impl FnMut(&Page) -> bool) {
        let mut pending = (0, 0);
        if self.purge_set.overflowed {
            // SAFETY: segments in the set are ours.
            unsafe { self.purge_set.unmark_all() };
            for k in 0..self.avail.len() {
                let mut seg = self.avail[k].first();
                while !seg.is_null() {
                    // SAFETY: segments on our lists are ours; their free slots hold no page.
                    unsafe {
                        if purge_segment_where(&*seg, &mut decide, &mut pending) {
                            self.purge_set.add(seg);
                        }
                        seg = self.avail[k].next(seg);
                    }
                }
            }
        } else {
            let mut j = 0;
            while j < self.purge_set.len {
                let seg = self.purge_set.segments[j];
                // SAFETY: segments in the set are ours (a segment leaving the heap leaves
                // the set); their free slots hold no page.
                if unsafe { purge_segment_where(&*seg, &mut decide, &mut pending) } {
                    j += 1;
                } else {
                    // SAFETY: as above.
                    unsafe { self.purge_set.remove_at(j) };
                }
            }
        }
        (self.pending_purge, self.pending_bytes) = pending;
    }

    /// Purges free page slots that have been free for `delay` ms (all of them if `force`).
    pub(super) fn purge_due(&mut self, now: u64, delay: u64, force: bool) {
        if self.pending_purge == 0 && !force {
            return;
        }
        self.purge_slots_where(|page| force || page.freed_at() + delay <= now);
    }

    /// The heap's size bound on free resident memory: `MEMWARD_FREE_RESIDENT_MIB`, or an
    /// eighth of the bytes the heap has live if that is more. A heap of 1 GiB replacing
    /// 70 KB buffers has 50-100 MiB free between them at any time, as its frees and
    /// allocations of differing sizes drift apart; a fixed 8 MiB purged that memory every
    /// few hundred frees and the next blocks faulted it in again (`medium-live`: 14,000
    /// `madvise` calls, each a TLB flush, and 10,000 page faults; `frag` likewise). An
    /// eighth of the live heap is the slack that fragmentation leaves in any allocator;
    /// the floor keeps small heaps within the fixed bound. (A program that drops all its
    /// data between rounds, `rust-json`, gains nothing: the bound falls with the live
    /// bytes as it frees.)
    pub(super) fn free_resident_bound(&self) -> usize {
        let live = self.heap().counters.live_bytes.load(core::sync::atomic::Ordering::Relaxed);
        options::free_resident_limit().max(live.max(0) as usize / 8)
    }

    /// The size bound (`free_resident_bound`) was passed: purges the slots freed
    /// longest ago until at most half the bound stays resident. The newest free slots are
    /// the likeliest to be reused soon, and holes that nothing fits grow old and go first;
    /// purging everything instead made a program that frees and allocates at a steady rate
    /// fault its reused memory in again and again.
    pub(super) fn purge_oldest(&mut self, now: u64) {
        // Resident bytes by age: bucket b holds ages in [2^(b-1), 2^b) ms, bucket 0 age 0.
        let bucket = |freed_at: u64| (64 - now.saturating_sub(freed_at).leading_zeros()) as usize;
        let mut by_age = [0usize; 65];
        self.purge_slots_where(|page| {
            by_age[bucket(page.freed_at())] += page.touched() as usize;
            false
        });
        let keep = self.free_resident_bound() / 2;
        let (mut cut, mut kept) = (0, 0);
        while cut < by_age.len() && kept + by_age[cut] <= keep {
            kept += by_age[cut];
            cut += 1;
        }
        self.purge_slots_where(|page| bucket(page.freed_at()) >= cut);
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
