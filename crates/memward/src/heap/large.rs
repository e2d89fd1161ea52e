//! Large and huge blocks (above `MEDIUM_MAX`, or aligned beyond what size classes give).
//! Owner-only. The mechanism is described in `docs/engine-large-blocks.md`.
//!
//! Large blocks (up to `LARGE_MAX`, 2 MiB) share large segments: a block takes a run of
//! 32 KiB slots, the run of a large block freed recently if one fits, else first fit over
//! the first few segments on the heap's large `avail` list.
//! Its page descriptor is the one of the run's first slot, where `free` finds it with the
//! usual shift; the other slots of the run only carry their resident estimate, so a freed
//! run is purged after the purge delay like any free slot. A block grows in
//! place into the free slots after its run (up to `GROWN_TO_HUGE`; past it, it moves to a
//! huge segment once) and gives slots back when it shrinks. 70,000
//! live 70 KB blocks take 1,650 segments (merged into a few mappings), not 70,000
//! mappings.
//!
//! Huge blocks get a mapping of their own (a huge segment), sized to the block. Growing
//! one is an `mremap`: in place when the address space after it is free, else moved to
//! a fresh reservation (page tables move, no byte is copied, untouched pages stay
//! untouched). A block aligned to more than a segment starts one segment after its
//! header (see `layout::segment_start`).

use super::Local;
use crate::layout::{LARGE_MAX, LARGE_SLOT_SHIFT, MAX_ALIGN, SEGMENT_SIZE};
use crate::page::Page;
use crate::segment::{Segment, SegmentKind, HEADER_SIZE};
use crate::size_class::MEDIUM_MAX;
use crate::stats::{self, bump, bump_i};
use crate::{options, os, segment_map, segment_pool};
use core::ptr;

/// Class index of the large segments' lists.
const LARGE: usize = SegmentKind::Large as usize;
/// Large segments tried for a free run before a new one is taken: keeps the slow path
/// bounded when many segments are nearly full. Segments that fail rotate to the back.
const MAX_SCAN: usize = 4;
/// Slot size of large segments.
const SLOT: usize = 1 << LARGE_SLOT_SHIFT;
/// Growth beyond the request that an `mremap` of a huge block asks for, at most: a buffer
/// grown in small steps then moves once every few steps, not every step. Retried without
/// it when the kernel refuses.
const HUGE_GROWTH_SLACK: usize = 64 << 20;

/// Size past which a block that `realloc` grows gets a mapping of its own (a huge
/// segment), from which later growth is an `mremap` that copies nothing. Growing it in
/// place in its large segment instead would copy it whole when it passes `LARGE_MAX`: the
/// `realloc` workload (buffers grown to 16 MiB) copied 1.9 MiB per buffer and took 1.7x
/// glibc's time, whose threshold for a mapping of its own is 128 KiB.
const GROWN_TO_HUGE: usize = 256 << 10;

/// Tail a shrinking huge block must free at least for its mapping to shrink.
const HUGE_SHRINK_MIN: usize = 1 << 20;

/// `n` rounded up to a multiple of `to` (a power of two); None on overflow.
fn round_up(n: usize, to: usize) -> Option<usize> {
    n.checked_add(to - 1).map(|s| s & !(to - 1))
}

/// Offset of a huge block from its segment start, and the alignment the mapping needs for
/// the block's address plus `prefix` to be a multiple of `align` (`prefix` is 0 for an
/// ordinary aligned block). The aligned address is the first multiple of `align` after
/// the header and `prefix`, and never lies past the segment's first `SEGMENT_SIZE` bytes,
/// where `Segment::of` finds the header from it: for alignments of a segment or more the
/// mapping is placed so that `segment + SEGMENT_SIZE` is that multiple.
fn huge_placement(align: usize, prefix: usize) -> (usize, usize) {
    debug_assert!(prefix <= SEGMENT_SIZE - HEADER_SIZE);
    if align >= SEGMENT_SIZE {
        (SEGMENT_SIZE - prefix, align)
    } else {
        (((HEADER_SIZE + prefix + align - 1) & !(align - 1)) - prefix, SEGMENT_SIZE)
    }
}

/// Whether a huge block at `offset` from its segment start was placed against the
/// segment's end (aligned to a segment or more, see [`huge_placement`]): a moved mapping
/// must then keep the alignment of `segment + SEGMENT_SIZE`. Other huge blocks start in
/// the first half (after the header, at an alignment of at most half a segment).
fn placed_at_segment_end(offset: usize) -> bool {
    offset > SEGMENT_SIZE / 2
}

/// Runs of large blocks freed recently, as (segment, first slot), newest last. A
/// stack rather than the one run freed last: when a freed block is followed by a smaller
/// one of another class, its run would otherwise be forgotten and grow cold, and the
/// program's next large block would take an old, purged hole. Bounded, so a pop costs
/// little when most runs have been taken by first fit since.
pub(super) struct RecentRuns {
    runs: [(*mut Segment, u32); RECENT_RUNS],
    len: usize,
}

/// Large runs remembered (`RecentRuns`).
const RECENT_RUNS: usize = 16;

impl RecentRuns {
    pub(super) const fn new() -> Self {
        RecentRuns {
            runs: [(ptr::null_mut(), 0); RECENT_RUNS],
            len: 0,
        }
    }

    /// Remembers the run from slot `i` of `seg`; the oldest is dropped when full.
    fn push(&mut self, seg: *mut Segment, i: usize) {
        if self.len == RECENT_RUNS {
            self.runs.copy_within(1.., 0);
            self.len -= 1;
        }
        self.runs[self.len] = (seg, i as u32);
        self.len += 1;
    }

    /// The newest run remembered (its segment and first slot), forgotten.
    fn pop(&mut self) -> Option<(*mut Segment, usize)> {
        self.len = self.len.checked_sub(1)?;
        let (seg, i) = self.runs[self.len];
        Some((seg, i as usize))
    }

    /// Forgets the runs of `seg`, which is leaving the heap.
    pub(super) fn forget(&mut self, seg: *mut Segment) {
        let mut kept = 0;
        for j in 0..self.len {
            if self.runs[j].0 != seg {
                self.runs[kept] = self.runs[j];
                kept += 1;
            }
        }
        self.len = kept;
    }

    pub(super) fn clear(&mut self) {
        self.len = 0;
    }
}

impl Local {
    /// A large or huge block of `size` bytes starting at a multiple of `align` (a power of
    /// two, at most `MAX_ALIGN`). Null when out of memory.
    pub fn alloc_large(&mut self, size: usize, align: usize) -> *mut u8 {
        self.alloc_large_for(size, align, false)
    }

    /// As [`Local::alloc_large`]; `growing` says the block replaces a smaller one that
    /// `realloc` grows: past `GROWN_TO_HUGE` it gets a mapping of its own, and a cached
    /// huge mapping it reuses keeps its resident excess for the growth to come instead of
    /// purging it.
    pub fn alloc_large_for(&mut self, size: usize, align: usize, growing: bool) -> *mut u8 {
        debug_assert!(align.is_power_of_two() && align <= MAX_ALIGN);
        let ps = os::page_size();
        let Some(block_size) = round_up(size, ps) else {
            return ptr::null_mut();
        };
        // Blocks start on an OS page so that a purged run or segment is entirely zero.
        let align = align.max(ps);
        let p = if block_size <= LARGE_MAX
            && align <= LARGE_MAX
            && !(growing && block_size > GROWN_TO_HUGE)
        {
            self.alloc_span(block_size, align)
        } else {
            self.alloc_huge(block_size, align, 0, growing)
        };
        self.count_large(p, size, block_size);
        p
    }

    /// A huge block of `size` bytes whose address plus `prefix` (a multiple of the OS
    /// page size, at most `SEGMENT_SIZE / 4`) is a multiple of `align` (a power of two, at
    /// most `MAX_ALIGN`), with that address in the block's first segment: for an
    /// interposer that keeps `prefix` bytes of its own before the pointer it hands out,
    /// so that the engine finds the block from that pointer too. Null when out of memory.
    #[cfg(feature = "check")]
    pub fn alloc_huge_at(&mut self, size: usize, align: usize, prefix: usize) -> *mut u8 {
        debug_assert!(align.is_power_of_two() && align <= MAX_ALIGN);
        let ps = os::page_size();
        if prefix % ps != 0 || prefix > SEGMENT_SIZE / 4 {
            return ptr::null_mut();
        }
        let Some(block_size) = round_up(size, ps) else {
            return ptr::null_mut();
        };
        let p = self.alloc_huge(block_size, align.max(ps), prefix, false);
        self.count_large(p, size, block_size);
        p
    }

    /// Counts a large or huge block just allocated (none if `p` is null).
    fn count_large(&self, p: *mut u8, size: usize, block_size: usize) {
        if !p.is_null() {
            let c = &self.heap().counters;
            bump(&c.requested, size as u64);
            bump(&c.allocs[0], 1);
            bump(&c.alloc_bytes, block_size as u64);
        }
    }

    /// A run of slots in one of our large segments (or a new one).
    fn alloc_span(&mut self, block_size: usize, align: usize) -> *mut u8 {
        // Slot 0 starts after the header; other slots are SLOT-aligned.
        let head = (HEADER_SIZE + align - 1) & !(align - 1);
        let n0 = if head < SLOT {
            (head + block_size).div_ceil(SLOT)
        } else {
            usize::MAX
        };
        let n = block_size.div_ceil(SLOT);
        let step = (align >> LARGE_SLOT_SHIFT).max(1);
        let p = self.alloc_in_recent_run(block_size, n, step);
        if !p.is_null() {
            return p;
        }
        let mut seg = self.avail[LARGE].first();
        let mut scanned = 0;
        let mut fresh = false;
        loop {
            if seg.is_null() || scanned >= MAX_SCAN {
                // A block of at most LARGE_MAX aligned to at most LARGE_MAX always fits an
                // empty segment; never loop if that ever changes.
                debug_assert!(!fresh, "a large block did not fit an empty segment");
                if fresh {
                    return ptr::null_mut();
                }
                fresh = true;
                seg = segment_pool::acquire(SegmentKind::Large, self.tag(), self.thread_id, false);
                if seg.is_null() {
                    return ptr::null_mut();
                }
                // SAFETY: a fresh segment of ours on no list.
                unsafe { self.take_segment(LARGE, seg) };
            }
            // SAFETY: segments on our lists are ours; no page of them is borrowed.
            unsafe {
                let s = &*seg;
                let placed = if n0 <= s.page_count() {
                    s.take_run(n0, 0, s.page_count()).map(|r| (r, n0))
                } else {
                    None
                };
                let placed = placed.or_else(|| s.take_run(n, 1, step).map(|r| (r, n)));
                if let Some(((i, now_full), len)) = placed {
                    self.reuse_pending(s, i, len);
                    if now_full {
                        self.avail[LARGE].remove(seg);
                        self.full[LARGE].push_front(seg);
                        s.set_in_full_list(true);
                    }
                    let start = if i == 0 {
                        s.base() + head
                    } else {
                        s.base() + (i << LARGE_SLOT_SHIFT)
                    };
                    return self.place_span(s, i, len, start as *mut u8, block_size);
                }
                let next = self.avail[LARGE].next(seg);
                if scanned + 1 < MAX_SCAN && !next.is_null() {
                    self.avail[LARGE].remove(seg);
                    self.avail[LARGE].push_back(seg);
                }
                seg = next;
            }
            scanned += 1;
        }
    }

    /// Places the block at the start of the run of a large block freed recently, newest
    /// first, if the block fits there: in a program that frees and allocates medium-large
    /// buffers at a steady rate, a first-fit scan from the segment start would pick older
    /// holes, whose pages have been purged (`medium-live`: 7x the page faults of
    /// tcmalloc). Runs the block does not fit, or that were taken since, are dropped.
    fn alloc_in_recent_run(&mut self, block_size: usize, n: usize, step: usize) -> *mut u8 {
        while let Some((seg, i)) = self.recent_runs.pop() {
            if i == 0 || i % step != 0 {
                continue;
            }
            // SAFETY: the hint names one of our large segments (hints are forgotten when
            // the segment is released or the heap abandons its segments); no page of it
            // is borrowed.
            unsafe {
                let s = &*seg;
                if i + n > s.page_count() || !s.extend_run(i, n) {
                    continue;
                }
                self.reuse_pending(s, i, n);
                if s.free_mask() == 0 && !s.in_full_list() {
                    self.avail[LARGE].remove(seg);
                    self.full[LARGE].push_front(seg);
                    s.set_in_full_list(true);
                }
                let start = s.base() + (i << LARGE_SLOT_SHIFT);
                return self.place_span(s, i, n, start as *mut u8, block_size);
            }
        }
        ptr::null_mut()
    }

    /// Puts a block of `block_size` bytes at `start` over the run of `len` slots from `i`.
    ///
    /// # Safety
    /// The run was just taken in `s`, one of our large segments; no page is borrowed.
    unsafe fn place_span(
        &mut self,
        s: &Segment,
        i: usize,
        len: usize,
        start: *mut u8,
        block_size: usize,
    ) -> *mut u8 {
        // SAFETY: per the contract; the slots' descriptors are distinct cells.
        unsafe {
            let mut zero = true;
            for j in i..i + len {
                let pg = s.page_at(j);
                zero &= (*pg).is_zero();
                (*pg).set_purged(false);
                if j > i {
                    (*pg).set_is_zero(false);
                }
            }
            let page = s.page_at(i);
            (*page).set_is_zero(zero);
            (*page).init_single(self.tag(), start, block_size);
            self.note_span_touched(s, i, len, start as usize + block_size);
            self.sync(page);
            start
        }
    }

    /// Resident estimate of the run of `len` slots from `i`, reached up to `end`.
    ///
    /// # Safety
    /// `s` is one of our large segments; the run is taken; no page is borrowed.
    unsafe fn note_span_touched(&self, s: &Segment, i: usize, len: usize, end: usize) {
        for j in i..i + len {
            let (lo, hi) = s.slot_range(j);
            if end > lo {
                // SAFETY: per the contract.
                unsafe { s.note_touched(s.page_at(j), end.min(hi) - lo) };
            }
        }
    }

    /// Slots of the run that holds the (retired or live) block of `page`, slot `index`.
    ///
    /// # Safety
    /// `page` is slot `index` of `s`, a large segment of ours.
    unsafe fn span_len(s: &Segment, page: *mut Page, index: usize) -> usize {
        // SAFETY: per the contract; start and block size survive `retire`.
        let end = unsafe { (*page).start() as usize + (*page).block_size() };
        ((end - 1 - s.base()) >> LARGE_SLOT_SHIFT) + 1 - index
    }

    /// Returns the run of a freed large block (slot `index`, already retired) to its
    /// segment: the first slot is handled by the caller like any freed page slot, the
    /// others are marked for purging here. Returns the slots still in use.
    ///
    /// # Safety
    /// `page` is slot `index` of `s`, one of our large segments, and was just retired.
    pub(super) unsafe fn give_back_span(&mut self, s: &Segment, page: *mut Page, index: usize) -> usize {
        // SAFETY: per the contract; the run's slots are free once given back, so purging
        // them touches no live block.
        unsafe {
            let n = Self::span_len(s, page, index);
            let in_use = s.give_back_run(index, n);
            // A visited segment goes back to the abandoned list: no hint to it.
            let seg = s as *const Segment as *mut Segment;
            if seg != self.visiting {
                self.recent_runs.push(seg, index);
            }
            if in_use != 0 && n > 1 {
                let now = os::now_ms();
                let delay = options::purge_delay_ms();
                for j in index + 1..index + n {
                    let pg = s.page_at(j);
                    (*pg).set_freed_at(now);
                    if delay > 0 {
                        self.pending_purge += 1;
                        self.pending_bytes += (*pg).touched() as usize;
                    }
                }
                if delay == 0 {
                    s.purge_slots(index + 1, n - 1);
                }
            }
            in_use
        }
    }

    /// A huge segment for one block, placed so that its address plus `prefix` is aligned
    /// to `align` (see [`huge_placement`]).
    fn alloc_huge(&mut self, block_size: usize, align: usize, prefix: usize, growing: bool) -> *mut u8 {
        let (offset, map_align) = huge_placement(align, prefix);
        let Some(needed) = offset.checked_add(block_size) else {
            return ptr::null_mut();
        };
        let seg =
            segment_pool::acquire_huge(self.tag(), self.thread_id, needed, map_align, growing);
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
            s.note_touched(page, (offset - HEADER_SIZE).min(os::page_size()) + block_size);
            self.huge.push_front(seg);
            self.sync(page);
            start
        }
    }

    /// Resizes the large or huge block of `page` to `new_size` bytes without copying:
    /// within or next to its run (up to `GROWN_TO_HUGE` when growing), or by `mremap`.
    /// Returns the (possibly moved) block, or null when that is not possible (the caller
    /// then copies; the block is unchanged).
    ///
    /// # Safety
    /// `page` is the large or huge page of a live block of this heap, not borrowed
    /// elsewhere.
    pub unsafe fn resize_large(&mut self, page: *mut Page, new_size: usize) -> *mut u8 {
        let ps = os::page_size();
        let Some(new_block) = round_up(new_size, ps) else {
            return ptr::null_mut();
        };
        // SAFETY: the page is ours and sits in its segment's header.
        unsafe {
            let seg = Segment::of(page);
            let s = &*seg;
            let old = (*page).block_size();
            let result = match s.kind() {
                SegmentKind::Large => {
                    let grows_past = new_block > old && new_block > GROWN_TO_HUGE;
                    if new_size <= MEDIUM_MAX || new_block > LARGE_MAX || grows_past {
                        return ptr::null_mut();
                    }
                    self.resize_span(s, page, new_block)
                }
                SegmentKind::Huge => {
                    // Shrunk to a large size, it moves back into a large segment.
                    if new_block <= LARGE_MAX && new_block < old {
                        return ptr::null_mut();
                    }
                    self.resize_huge(seg, page, new_block)
                }
                _ => ptr::null_mut(),
            };
            if !result.is_null() {
                let diff = new_block as i64 - old as i64;
                bump_i(&self.heap().counters.live_bytes, diff);
                stats::live_delta(diff);
                if diff > 0 {
                    bump(&self.heap().counters.alloc_bytes, diff as u64);
                }
            }
            result
        }
    }

    /// # Safety
    /// As for [`Local::resize_large`], `s` the block's large segment.
    unsafe fn resize_span(&mut self, s: &Segment, page: *mut Page, new_block: usize) -> *mut u8 {
        // SAFETY: per the contract; slots are only given back after the block no longer
        // reaches them.
        unsafe {
            let start = (*page).start() as usize;
            let index = (start - s.base()) >> LARGE_SLOT_SHIFT;
            let have = Self::span_len(s, page, index);
            let Some(end) = start.checked_add(new_block) else {
                return ptr::null_mut();
            };
            let want = ((end - 1 - s.base()) >> LARGE_SLOT_SHIFT) + 1 - index;
            if index + want > s.page_count() {
                return ptr::null_mut();
            }
            if want > have {
                if !s.extend_run(index + have, want - have) {
                    return ptr::null_mut();
                }
                self.reuse_pending(s, index + have, want - have);
                if s.free_mask() == 0 && !s.in_full_list() {
                    let seg = s as *const Segment as *mut Segment;
                    self.avail[LARGE].remove(seg);
                    self.full[LARGE].push_front(seg);
                    s.set_in_full_list(true);
                }
                for j in index + have..index + want {
                    let pg = s.page_at(j);
                    (*pg).set_purged(false);
                    (*pg).set_is_zero(false);
                }
            }
            (*page).resize_single(new_block);
            if want < have {
                // The tail slots leave the run; they stay in use by nobody: free them.
                let seg = s as *const Segment as *mut Segment;
                let was_full = s.in_full_list();
                s.give_back_run(index + want, have - want);
                if was_full {
                    self.full[LARGE].remove(seg);
                    self.avail[LARGE].push_front(seg);
                    s.set_in_full_list(false);
                }
                let now = os::now_ms();
                self.purge_set.add(seg);
                for j in index + want..index + have {
                    (*s.page_at(j)).set_freed_at(now);
                    if options::purge_delay_ms() > 0 {
                        self.pending_purge += 1;
                    }
                }
                if options::purge_delay_ms() == 0 {
                    s.purge_slots(index + want, have - want);
                }
            }
            self.note_span_touched(s, index, want, end);
            start as *mut u8
        }
    }

    /// # Safety
    /// As for [`Local::resize_large`], `seg` the block's huge segment.
    unsafe fn resize_huge(&mut self, seg: *mut Segment, page: *mut Page, new_block: usize) -> *mut u8 {
        // SAFETY: per the contract; the segment is one whole mapping of ours (huge
        // segments are mapped by one call and only ever purged, never re-advised in part),
        // and its only block is the one being resized.
        unsafe {
            let s = &*seg;
            let start = (*page).start() as usize;
            let offset = start - s.base();
            let Some(needed) = offset
                .checked_add(new_block)
                .and_then(|n| round_up(n, segment_pool::HUGE_GRANULE))
            else {
                return ptr::null_mut();
            };
            let size = s.size();
            if needed <= size {
                // Shrinking gives the tail back when it is worth a call (growth slack and
                // small shrinks are kept for the next growth).
                let old_needed = offset + (*page).block_size();
                if new_block < (*page).block_size()
                    && size - needed >= (size / 4).max(HUGE_SHRINK_MIN)
                    && old_needed > needed
                    && os::remap_in_place(seg.cast(), size, needed)
                {
                    // Shrunk: the tail went back to the OS with its pages.
                    stats::unmapped(size - needed);
                    let touched = s.touched().min(needed - HEADER_SIZE);
                    stats::resident(touched as i64 - s.touched() as i64);
                    s.set_touched(touched);
                    (*page).set_touched(touched.min(u32::MAX as usize) as u32);
                    s.set_size(needed);
                }
                (*page).resize_single(new_block);
                s.note_touched(page, offset - HEADER_SIZE + new_block);
                return start as *mut u8;
            }
            // Grow: some slack first (fewer moves for buffers grown in small steps),
            // exactly what is needed if the kernel refuses that.
            let slack = (needed / 2).min(HUGE_GROWTH_SLACK);
            let roomy = round_up(needed.saturating_add(slack), segment_pool::HUGE_GRANULE)
                .unwrap_or(needed);
            for target_size in [roomy, needed] {
                if os::remap_in_place(seg.cast(), size, target_size) {
                    stats::mapped(target_size - size);
                    s.set_size(target_size);
                    (*page).resize_single(new_block);
                    s.note_touched(page, offset - HEADER_SIZE + new_block);
                    return start as *mut u8;
                }
                let moved = self.move_huge(seg, size, target_size, offset);
                if !moved.is_null() {
                    let s = &*moved;
                    let page = s.page_at(0);
                    (*page).resize_single(new_block);
                    s.note_touched(page, offset - HEADER_SIZE + new_block);
                    return (*page).start();
                }
                if target_size == needed {
                    break;
                }
            }
            ptr::null_mut()
        }
    }

    /// Moves huge segment `seg` (`size` bytes) to a fresh aligned place, `new_size` bytes
    /// long, by `mremap`. Returns the segment at its new place, or null (unchanged).
    ///
    /// # Safety
    /// `seg` is a huge segment of this heap holding one live block at `offset`; no page of
    /// it is borrowed.
    unsafe fn move_huge(&mut self, seg: *mut Segment, size: usize, new_size: usize, offset: usize) -> *mut Segment {
        // A block placed against its segment's end (one segment above its header, or
        // just below that for an interposer's prefix) keeps the alignment it has.
        let map_align = if placed_at_segment_end(offset) {
            let start = seg as usize + SEGMENT_SIZE;
            (1usize << start.trailing_zeros()).clamp(SEGMENT_SIZE, MAX_ALIGN)
        } else {
            SEGMENT_SIZE
        };
        let map_offset = if map_align > SEGMENT_SIZE { SEGMENT_SIZE } else { 0 };
        let target = os::reserve_aligned_at(new_size, map_align, map_offset);
        if target.is_null() || !segment_map::insert(target as usize) {
            if !target.is_null() {
                // SAFETY: the reservation is ours and holds nothing.
                unsafe { os::unmap(target, new_size) };
            }
            return ptr::null_mut();
        }
        // SAFETY: per the contract. The segment leaves our huge list while its header
        // (which holds the list links) moves; the old range leaves the segment map only
        // once the move succeeded, so a concurrent `owns` of the block never fails.
        unsafe {
            self.huge.remove(seg);
            if !os::remap_to(seg.cast(), size, new_size, target) {
                segment_map::remove(target as usize);
                self.huge.push_front(seg);
                return ptr::null_mut();
            }
            segment_map::remove(seg as usize);
            stats::mapped(new_size);
            stats::unmapped(size);
            let moved = target.cast::<Segment>();
            let s = &*moved;
            s.set_size(new_size);
            let page = s.page_at(0);
            (*page).move_single(target.add(offset));
            self.huge.push_front(moved);
            moved
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_blocks_are_placed_where_their_segment_is_found() {
        let ps = 4096;
        // Ordinary blocks: at the alignment after the header, or one segment up.
        assert_eq!(huge_placement(ps, 0), ((HEADER_SIZE + ps - 1) & !(ps - 1), SEGMENT_SIZE));
        assert_eq!(huge_placement(2 << 20, 0), (2 << 20, SEGMENT_SIZE));
        assert_eq!(huge_placement(SEGMENT_SIZE, 0), (SEGMENT_SIZE, SEGMENT_SIZE));
        assert_eq!(huge_placement(64 << 20, 0), (SEGMENT_SIZE, 64 << 20));
        // With a prefix, the aligned address (offset + prefix) stays in the first
        // segment, at most one segment above its header.
        for align in [ps, 64 << 10, 2 << 20, SEGMENT_SIZE, 16 << 20, MAX_ALIGN] {
            for prefix in [ps, 4 * ps, SEGMENT_SIZE / 4] {
                let (offset, map_align) = huge_placement(align, prefix);
                assert!(offset >= HEADER_SIZE, "{align} {prefix}");
                assert!(offset + prefix <= SEGMENT_SIZE, "{align} {prefix}");
                assert_eq!(offset % ps, 0);
                if align >= SEGMENT_SIZE {
                    // The mapping makes segment + SEGMENT_SIZE a multiple of `align`.
                    assert_eq!(offset + prefix, SEGMENT_SIZE);
                    assert_eq!(map_align, align);
                    assert!(placed_at_segment_end(offset));
                } else {
                    assert_eq!((offset + prefix) % align, 0);
                    assert_eq!(map_align, SEGMENT_SIZE);
                    assert!(!placed_at_segment_end(offset));
                }
            }
        }
        assert!(placed_at_segment_end(SEGMENT_SIZE));
        assert!(!placed_at_segment_end(2 << 20));
    }
}
