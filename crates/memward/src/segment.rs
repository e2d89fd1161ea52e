//! Segments: 4 MiB regions aligned to their size, obtained from the OS and split into pages.
//!
//! Because a segment is aligned to its size, `free(p)` finds the segment header with
//! `p & !(SEGMENT_SIZE - 1)` and the page descriptor with one shift: no per-object header, no
//! lookup table. Four kinds share the header layout:
//!
//! | kind | pages | objects |
//! |---|---|---|
//! | small | 64 x 64 KiB | up to 8 KiB |
//! | medium | 8 x 512 KiB | up to 64 KiB |
//! | large | 128 x 32 KiB slots, a block takes a run of them | blocks above 64 KiB up to 2 MiB, several per segment |
//! | huge | 1 (a mapping of its own, any size) | one object above 2 MiB (or aligned to more), unmapped after the purge delay unless reused |
//!
//! The first page starts after the header. A segment belongs to one heap (one thread);
//! `thread_id` says which, and is zero while the segment is abandoned (its thread exited)
//! or cached. This module is the header type; where segments come from and go to (the OS,
//! the caches, the abandoned list) is `segment_pool.rs`.
//!
//! Sharing. Any thread holding a live block may read the header: `thread_id`, `owner` and
//! `abandoned_frees` are atomics, `kind`, `page_shift`, `page_count` and `size` are written
//! only while no block of the segment exists. Everything the owner changes while others
//! may look is behind `UnsafeCell`s: the bookkeeping in `SegmentLocal` and the page
//! descriptors. So a `&Segment` is always sound to hold, and the owner's `unsafe` methods
//! make short-lived `&mut` to the bookkeeping or one page, never to the whole header.
//!
//! Invariants (owner's view, checked by [`Segment::check`]):
//! - `used_pages + free_mask.count_ones() == page_count` for small and medium segments;
//! - slot `i` holds a page (`pages[i].in_use`) exactly when bit `i` of `free_mask` is clear;
//! - `touched == Σ pages[i].touched` (the resident estimate beyond the header).

use crate::layout::{
    segment_start, LARGE_SLOT_SHIFT, MAX_PAGES, MEDIUM_PAGE_SHIFT, SEGMENT_SIZE,
    SMALL_PAGE_SHIFT,
};
use crate::list::{Block, Linked, Links, TaggedBlockStack};
use crate::page::{OwnerHeap, Page};
use crate::{os, stats};
use core::cell::UnsafeCell;
use core::mem::size_of;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicIsize, AtomicPtr, AtomicUsize, Ordering};

/// One bit per page slot of a segment (`MAX_PAGES` bits).
pub type SlotMask = u128;
const _: () = assert!(SlotMask::BITS as usize == MAX_PAGES);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum SegmentKind {
    Small,
    Medium,
    Large,
    Huge,
}

impl SegmentKind {
    /// Index of a heap's per-kind segment lists (small, medium and large; huge segments
    /// are on a list of their own).
    pub fn class_index(self) -> usize {
        debug_assert!(self != SegmentKind::Huge);
        self as usize
    }

    /// `(page_shift, page_count)` of the kind.
    fn geometry(self) -> (usize, usize) {
        match self {
            SegmentKind::Small => (SMALL_PAGE_SHIFT, SEGMENT_SIZE >> SMALL_PAGE_SHIFT),
            SegmentKind::Medium => (MEDIUM_PAGE_SHIFT, SEGMENT_SIZE >> MEDIUM_PAGE_SHIFT),
            SegmentKind::Large => (LARGE_SLOT_SHIFT, SEGMENT_SIZE >> LARGE_SLOT_SHIFT),
            // One page however large the mapping: the shift maps every offset to page 0.
            SegmentKind::Huge => (usize::BITS as usize - 1, 1),
        }
    }
}

/// The owner's bookkeeping (or the cache lock holder's while the segment is cached).
struct SegmentLocal {
    /// Which of the heap's lists the segment is on.
    in_full_list: bool,
    /// On its heap's set of segments that may hold free slots waiting to be purged
    /// (`heap/purge.rs`).
    in_purge_set: bool,
    /// While abandoned: the resident bytes of its free slots, counted in
    /// `segment_pool::ABANDONED_RESIDENT`.
    abandoned_resident: usize,
    /// While cached: everything after the header has been purged.
    purged: bool,
    /// The mapping carries the transparent-huge-page hint.
    huge_pages: bool,
    used_pages: usize,
    /// Bit i set: page slot i is free.
    free_mask: SlotMask,
    links: Links<Segment>,
    /// When the segment entered the cache (ms).
    cached_at: u64,
    /// Resident estimate beyond the header: the sum of the slots' `touched`.
    touched: usize,
}

#[repr(C)]
pub struct Segment {
    /// Owning thread, zero while abandoned or cached. Read by every `free`.
    thread_id: AtomicUsize,
    /// `(p - segment) >> page_shift` is the page index of `p`.
    page_shift: usize,
    /// Owning heap; stays set (stale) while abandoned, which remote frees tolerate.
    owner: AtomicPtr<OwnerHeap>,
    /// Frees that arrived while abandoned; open exactly while abandoned.
    abandoned_frees: TaggedBlockStack,
    /// On the global abandoned list: written and read only under that list's lock, so a
    /// thread freeing into the segment can tell whether it may take the segment over.
    on_abandoned_list: AtomicBool,
    /// Live blocks at abandonment minus frees pushed since: when it falls to half and to
    /// zero, the freeing thread visits the segment (`heap/abandon.rs`). A hint only: a free
    /// pushed just before an adoption may decrement the next abandonment's count.
    abandoned_live: AtomicIsize,
    /// `abandoned_live` when the segment was abandoned.
    abandoned_blocks: AtomicIsize,
    kind: SegmentKind,
    page_count: usize,
    /// Bytes mapped from the segment start (changed by the owner when it remaps a huge
    /// segment).
    size: AtomicUsize,
    local: UnsafeCell<SegmentLocal>,
    pages: UnsafeCell<[Page; MAX_PAGES]>,
}

/// Offset of the first page: the header rounded up to a cache line.
pub const HEADER_SIZE: usize = (size_of::<Segment>() + 63) & !63;
// The header must leave most of the first small page to blocks.
const _: () = assert!(HEADER_SIZE < (1 << SMALL_PAGE_SHIFT) / 4);

// SAFETY: the header's links live in the segment's own bookkeeping; no reference is made.
unsafe impl Linked for Segment {
    unsafe fn links(this: *mut Self) -> *mut Links<Self> {
        // SAFETY: `this` is a live segment (caller contract); `local` is an UnsafeCell, so
        // writing through the pointer it hands out is allowed.
        unsafe { ptr::addr_of_mut!((*(*this).local.get()).links) }
    }
}

impl Segment {
    /// The segment that would contain `p` (no check that it exists).
    #[inline(always)]
    pub fn of<T>(p: *const T) -> *mut Segment {
        segment_start(p).cast()
    }

    /// Writes a fresh header into `seg` for `kind`, owned by `heap`/`thread_id`, keeping
    /// the cached resident estimate `kept` and marking slots known zero by `zero`/`fresh`.
    ///
    /// # Safety
    /// `seg` is a mapping of at least `size` bytes (`SEGMENT_SIZE` unless huge), aligned to
    /// `SEGMENT_SIZE`, that holds no live block and that no other thread can reach.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn init(
        seg: *mut Segment,
        kind: SegmentKind,
        heap: *mut OwnerHeap,
        thread_id: usize,
        size: usize,
        huge_pages: bool,
        zero: bool,
        fresh: bool,
        kept: usize,
    ) {
        let (page_shift, page_count) = kind.geometry();
        let free_mask = if page_count == SlotMask::BITS as usize {
            SlotMask::MAX
        } else {
            ((1 as SlotMask) << page_count) - 1
        };
        // SAFETY: per the contract we are the only user of the header; fields are written
        // in place through raw places, without reading the old contents.
        unsafe {
            ptr::addr_of_mut!((*seg).page_shift).write(page_shift);
            ptr::addr_of_mut!((*seg).owner).write(AtomicPtr::new(heap));
            ptr::addr_of_mut!((*seg).abandoned_frees).write(TaggedBlockStack::new());
            ptr::addr_of_mut!((*seg).on_abandoned_list).write(AtomicBool::new(false));
            ptr::addr_of_mut!((*seg).abandoned_live).write(AtomicIsize::new(0));
            ptr::addr_of_mut!((*seg).abandoned_blocks).write(AtomicIsize::new(0));
            ptr::addr_of_mut!((*seg).kind).write(kind);
            ptr::addr_of_mut!((*seg).page_count).write(page_count);
            ptr::addr_of_mut!((*seg).size).write(AtomicUsize::new(size));
            ptr::addr_of_mut!((*seg).local).write(UnsafeCell::new(SegmentLocal {
                in_full_list: false,
                in_purge_set: false,
                abandoned_resident: 0,
                purged: false,
                huge_pages,
                used_pages: 0,
                free_mask,
                links: Links::new(),
                cached_at: 0,
                touched: kept,
            }));
            let pages = ptr::addr_of_mut!((*seg).pages).cast::<Page>();
            // Only the slots of this kind are ever looked at (indices stay below page_count).
            for i in 0..page_count {
                let page = pages.add(i);
                page.write(Page::EMPTY);
                // A purged cached segment keeps the bytes that share an OS page with the
                // header, so the first small or medium slot is only known zero in a fresh
                // mapping; large and huge blocks start on an OS page of their own.
                (*page).set_is_zero(zero && (fresh || i > 0 || page_count == 1));
            }
            // Which slots the cached bytes belong to is not known: a one-slot segment keeps
            // the count; a many-slot one counts every slot as touched until it is purged.
            if kept > 0 {
                let s = &*seg;
                if page_count == 1 {
                    (*pages).set_touched(kept.min(u32::MAX as usize) as u32);
                } else {
                    let mut total = 0;
                    for i in 0..page_count {
                        let (start, end) = s.slot_range(i);
                        (*pages.add(i)).set_touched((end - start) as u32);
                        total += end - start;
                    }
                    stats::resident(total as i64 - kept as i64);
                    (*s.local.get()).touched = total;
                }
            }
            // Publish ownership last: frees can only arrive after blocks are handed out.
            ptr::addr_of_mut!((*seg).thread_id).write(AtomicUsize::new(thread_id));
        }
    }

    // ---- shared: any thread holding a pointer into the segment ----------------------------

    #[inline(always)]
    pub fn thread_id(&self) -> usize {
        self.thread_id.load(Ordering::Relaxed)
    }

    /// The owning heap (stale while abandoned).
    #[inline]
    pub fn owner(&self) -> *mut OwnerHeap {
        self.owner.load(Ordering::Acquire)
    }

    pub fn kind(&self) -> SegmentKind {
        self.kind
    }

    pub fn page_count(&self) -> usize {
        self.page_count
    }

    /// Bytes mapped from the segment start.
    pub fn size(&self) -> usize {
        self.size.load(Ordering::Relaxed)
    }

    /// Records a new mapped size after a remap.
    ///
    /// # Safety
    /// The calling thread owns the segment and has just remapped it to `size` bytes.
    pub unsafe fn set_size(&self, size: usize) {
        self.size.store(size, Ordering::Relaxed);
    }

    #[inline]
    pub fn base(&self) -> usize {
        self as *const Segment as usize
    }

    /// The descriptor of page slot `i`.
    #[inline(always)]
    pub fn page_at(&self, i: usize) -> *mut Page {
        debug_assert!(i < self.page_count, "page slot out of range");
        // `pages` is an UnsafeCell: the pointer may be written through by the owner.
        self.pages.get().cast::<Page>().wrapping_add(i)
    }

    /// The page descriptor for `p`, which must be inside this segment's pages.
    #[inline(always)]
    pub fn page_of<T>(&self, p: *const T) -> *mut Page {
        self.page_at((p as usize - self.base()) >> self.page_shift)
    }

    /// `[start, end)` of page slot `i`.
    pub fn slot_range(&self, i: usize) -> (usize, usize) {
        let base = self.base();
        let start = if i == 0 {
            base + HEADER_SIZE
        } else {
            base + (i << self.page_shift)
        };
        let end = if self.page_count == 1 {
            base + self.size()
        } else {
            base + ((i + 1) << self.page_shift)
        };
        (start, end)
    }

    /// The OS-page-aligned part of slot `i` that may be purged.
    pub fn slot_purge_range(&self, i: usize) -> (usize, usize) {
        let ps = os::page_size();
        let (start, end) = self.slot_range(i);
        let start = (start + ps - 1) & !(ps - 1);
        let end = end & !(ps - 1);
        (start, end.max(start))
    }

    /// Queues a free that arrived while the segment is abandoned; false if it has an owner
    /// (the caller then sends the block to that owner's heap).
    ///
    /// # Safety
    /// `block` is a live block of this segment that the caller is freeing.
    #[inline]
    pub unsafe fn try_push_abandoned_free(&self, block: *mut Block) -> bool {
        // SAFETY: forwarded contract.
        unsafe { self.abandoned_frees.try_push(block) }
    }

    /// Counts a free pushed by [`Segment::try_push_abandoned_free`]; true when the freeing
    /// thread should visit the segment: half or all of the blocks live at abandonment have
    /// been freed since.
    #[inline]
    pub fn note_abandoned_free(&self) -> bool {
        let left = self.abandoned_live.fetch_sub(1, Ordering::Relaxed) - 1;
        left == 0 || left == self.abandoned_blocks.load(Ordering::Relaxed) / 2
    }

    /// Is the segment on the abandoned list? Only under that list's lock.
    pub fn on_abandoned_list(&self) -> bool {
        self.on_abandoned_list.load(Ordering::Relaxed)
    }

    /// Records joining or leaving the abandoned list. Only under that list's lock.
    pub fn set_on_abandoned_list(&self, on: bool) {
        self.on_abandoned_list.store(on, Ordering::Relaxed);
    }

    // ---- owner only ------------------------------------------------------------------------

    /// The owner's bookkeeping.
    ///
    /// # Safety
    /// The calling thread owns the segment (or holds the lock of the cache it is on), and
    /// no other reference to the bookkeeping is live.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    unsafe fn local(&self) -> &mut SegmentLocal {
        // SAFETY: per the contract.
        unsafe { &mut *self.local.get() }
    }

    /// Takes a free page slot; returns its index and whether the segment is now full.
    ///
    /// # Safety
    /// The calling thread owns the segment.
    pub unsafe fn take_slot(&self) -> Option<(usize, bool)> {
        // SAFETY: per the contract.
        let l = unsafe { self.local() };
        if l.free_mask == 0 {
            return None;
        }
        let i = l.free_mask.trailing_zeros() as usize;
        debug_assert!(i < self.page_count);
        l.free_mask &= !((1 as SlotMask) << i);
        l.used_pages += 1;
        Some((i, l.free_mask == 0))
    }

    /// Marks slot `i` free again; returns the number of slots still in use.
    ///
    /// # Safety
    /// The calling thread owns the segment, and slot `i`'s page was retired.
    pub unsafe fn give_back_slot(&self, i: usize) -> usize {
        // SAFETY: per the contract.
        let l = unsafe { self.local() };
        debug_assert!(l.free_mask & ((1 as SlotMask) << i) == 0, "slot freed twice");
        l.free_mask |= (1 as SlotMask) << i;
        l.used_pages -= 1;
        debug_assert_eq!(
            l.used_pages + l.free_mask.count_ones() as usize,
            self.page_count,
            "used_pages + |free slots| == page_count"
        );
        l.used_pages
    }

    /// Marks the single slot of a large or huge segment taken.
    ///
    /// # Safety
    /// The calling thread owns the segment, which was just acquired.
    pub unsafe fn take_single_slot(&self) {
        // SAFETY: per the contract.
        let l = unsafe { self.local() };
        l.free_mask = 0;
        l.used_pages = 1;
    }

    /// Page slots in use.
    ///
    /// # Safety
    /// The calling thread owns the segment.
    pub unsafe fn used_pages(&self) -> usize {
        // SAFETY: per the contract.
        unsafe { self.local().used_pages }
    }

    /// Takes the first run of `n` free slots that starts at a slot `i >= from` with
    /// `i % step == 0` (large segments: one block per run). Returns `i` and whether the
    /// segment has no free slot left.
    ///
    /// # Safety
    /// The calling thread owns the segment.
    pub unsafe fn take_run(&self, n: usize, from: usize, step: usize) -> Option<(usize, bool)> {
        // SAFETY: per the contract.
        let l = unsafe { self.local() };
        let i = find_run(l.free_mask, n, from, step, self.page_count)?;
        l.free_mask &= !run_mask(i, n);
        l.used_pages += n;
        Some((i, l.free_mask == 0))
    }

    /// Extends the run that ends before slot `end` by the `n` slots from `end`, if they are
    /// free.
    ///
    /// # Safety
    /// The calling thread owns the segment.
    pub unsafe fn extend_run(&self, end: usize, n: usize) -> bool {
        // SAFETY: per the contract.
        let l = unsafe { self.local() };
        if end + n > self.page_count {
            return false;
        }
        let m = run_mask(end, n);
        if l.free_mask & m != m {
            return false;
        }
        l.free_mask &= !m;
        l.used_pages += n;
        true
    }

    /// Marks the `n` slots from `i` free again; returns the number of slots still in use.
    ///
    /// # Safety
    /// The calling thread owns the segment, and the run's block was retired.
    pub unsafe fn give_back_run(&self, i: usize, n: usize) -> usize {
        // SAFETY: per the contract.
        let l = unsafe { self.local() };
        let m = run_mask(i, n);
        debug_assert!(l.free_mask & m == 0, "slot freed twice");
        l.free_mask |= m;
        l.used_pages -= n;
        l.used_pages
    }

    /// Free page slots, one bit each.
    ///
    /// # Safety
    /// The calling thread owns the segment.
    pub unsafe fn free_mask(&self) -> SlotMask {
        // SAFETY: per the contract.
        unsafe { self.local().free_mask }
    }

    /// Is the segment on its heap's full list?
    ///
    /// # Safety
    /// The calling thread owns the segment.
    pub unsafe fn in_full_list(&self) -> bool {
        // SAFETY: per the contract.
        unsafe { self.local().in_full_list }
    }

    /// # Safety
    /// The calling thread owns the segment.
    pub unsafe fn set_in_full_list(&self, on: bool) {
        // SAFETY: per the contract.
        unsafe { self.local().in_full_list = on }
    }

    /// Is the segment on its heap's set of segments with free slots to purge?
    ///
    /// # Safety
    /// The calling thread owns the segment.
    pub unsafe fn in_purge_set(&self) -> bool {
        // SAFETY: per the contract.
        unsafe { self.local().in_purge_set }
    }

    /// # Safety
    /// The calling thread owns the segment.
    pub unsafe fn set_in_purge_set(&self, on: bool) {
        // SAFETY: per the contract.
        unsafe { self.local().in_purge_set = on }
    }

    /// Accounts the bytes of page `page` (a page of this segment) that blocks now reach
    /// (carved blocks, or a large block) in the resident estimate.
    ///
    /// # Safety
    /// The calling thread owns the segment; `page` is one of its pages, not borrowed.
    pub unsafe fn note_touched(&self, page: *mut Page, extent: usize) {
        let ps = os::page_size();
        let extent = ((extent + ps - 1) & !(ps - 1)).min(u32::MAX as usize) as u32;
        // SAFETY: per the contract; the page and the bookkeeping are distinct cells.
        unsafe {
            let touched = (*page).touched();
            if extent > touched {
                let delta = (extent - touched) as usize;
                (*page).set_touched(extent);
                self.local().touched += delta;
                stats::resident(delta as i64);
            }
        }
    }

    /// Returns the memory of free slot `i` to the OS (if not already purged).
    ///
    /// # Safety
    /// The calling thread owns the segment; slot `i` holds no page.
    pub unsafe fn purge_slot(&self, i: usize) {
        // SAFETY: per the contract.
        unsafe { self.purge_slots(i, 1) }
    }

    /// Returns the memory of free slots `i..i + n` to the OS with one call (a purge is a
    /// system call and a TLB flush, whatever its length: slot by slot, `medium-live`
    /// spent most of its system time in `madvise`). Slots already purged are skipped.
    ///
    /// # Safety
    /// The calling thread owns the segment; the slots hold no page.
    pub unsafe fn purge_slots(&self, i: usize, n: usize) {
        let mut j = i;
        while j < i + n {
            // Skip the slots with nothing to purge, then take the longest run of the rest.
            // SAFETY: per the contract: free slots' descriptors are ours and not borrowed.
            while j < i + n && unsafe { !self.slot_needs_purge(j) } {
                j += 1;
            }
            let first = j;
            // SAFETY: as above.
            while j < i + n && unsafe { self.slot_needs_purge(j) } {
                j += 1;
            }
            if first == j {
                break;
            }
            let ps = self.slot_purge_range(first).0;
            let pe = self.slot_purge_range(j - 1).1;
            // SAFETY: per the contract: the slots are free (no live block) and adjacent, so
            // the page-aligned range from the first's start to the last's end lies inside
            // them.
            if unsafe { !os::purge(ps as *mut u8, pe - ps) } {
                continue;
            }
            stats::purge_call();
            for k in first..j {
                // SAFETY: per the contract; each descriptor is a distinct cell, and the
                // segment's bookkeeping is borrowed for this step only.
                unsafe {
                    let l = self.local();
                    let page = self.page_at(k);
                    let slot_start = self.slot_range(k).0;
                    (*page).set_purged(true);
                    // Bytes before the first OS-page boundary (slot 0, after the header) stay.
                    (*page).set_is_zero(self.slot_purge_range(k).0 == slot_start);
                    let touched = (*page).touched() as usize;
                    (*page).set_touched(0);
                    l.touched -= touched.min(l.touched);
                    stats::resident(-(touched as i64));
                }
            }
        }
    }

    /// The free slots that hold memory a purge would return (or may: not purged since
    /// they were carved, or since the segment came from the cache), with their
    /// descriptors, in slot order.
    ///
    /// # Safety
    /// The calling thread owns the segment, and neither its free slots nor the
    /// descriptors yet to be yielded change while the iterator lives (purging slots
    /// already yielded is fine).
    pub unsafe fn resident_free_slots(&self) -> impl Iterator<Item = (usize, &Page)> + '_ {
        // SAFETY: per the contract.
        let mut mask = unsafe { self.free_mask() };
        core::iter::from_fn(move || {
            while mask != 0 {
                let i = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                // SAFETY: per the contract; slot i is free and its descriptor unborrowed.
                let page = unsafe { &*self.page_at(i) };
                if !page.purged() && !page.is_pristine() {
                    return Some((i, page));
                }
            }
            None
        })
    }

    /// Whether some free slot holds memory a purge would return.
    ///
    /// # Safety
    /// As for [`Segment::resident_free_slots`].
    pub unsafe fn has_resident_free_slot(&self) -> bool {
        // SAFETY: per the contract.
        unsafe { self.resident_free_slots() }.next().is_some()
    }

    /// Resident bytes of the free slots (their estimates), as a purge would return them.
    ///
    /// # Safety
    /// As for [`Segment::resident_free_slots`].
    pub unsafe fn free_resident_bytes(&self) -> usize {
        // SAFETY: per the contract.
        unsafe { self.resident_free_slots() }
            .map(|(_, page)| page.touched() as usize)
            .sum()
    }

    /// # Safety
    /// The calling thread owns the segment (or holds the abandoned list's lock).
    pub unsafe fn abandoned_resident(&self) -> usize {
        // SAFETY: per the contract.
        unsafe { self.local().abandoned_resident }
    }

    /// # Safety
    /// As for [`Segment::abandoned_resident`].
    pub unsafe fn set_abandoned_resident(&self, bytes: usize) {
        // SAFETY: per the contract.
        unsafe { self.local().abandoned_resident = bytes }
    }

    /// Whether free slot `j` holds memory a purge would return.
    ///
    /// # Safety
    /// The calling thread owns the segment; slot `j` holds no page.
    unsafe fn slot_needs_purge(&self, j: usize) -> bool {
        let (ps, pe) = self.slot_purge_range(j);
        // SAFETY: per the contract.
        let page = unsafe { &*self.page_at(j) };
        !page.purged() && !page.in_use() && !page.is_pristine() && pe > ps
    }

    /// Purges every free slot that has been carved since it was last purged.
    ///
    /// # Safety
    /// The calling thread owns the segment.
    pub unsafe fn purge_free_slots(&self) {
        // SAFETY: per the contract.
        let mut mask = unsafe { self.free_mask() };
        while mask != 0 {
            // The next run of free slots, purged with one call.
            let i = mask.trailing_zeros() as usize;
            let n = (mask >> i).trailing_ones() as usize;
            // Adding the run's lowest bit carries through the run and clears it.
            mask &= mask.wrapping_add(mask & mask.wrapping_neg());
            // SAFETY: slots i..i + n are free; their descriptors are not borrowed.
            unsafe { self.purge_slots(i, n) };
        }
    }

    /// Clears the slots' purged marks before the segment goes to the cache, which tracks
    /// purging per segment (its resident estimate, `touched`, carries over).
    ///
    /// # Safety
    /// The calling thread owns the segment, which holds no live block.
    pub unsafe fn unpurge_slots(&self) {
        for i in 0..self.page_count {
            // SAFETY: per the contract; no page is borrowed.
            unsafe { (*self.page_at(i)).set_purged(false) };
        }
    }

    /// Gives the segment up: frees now go to its abandoned stack until a heap adopts it.
    ///
    /// # Safety
    /// The calling thread owns the segment and is leaving it.
    pub unsafe fn mark_abandoned(&self, live_blocks: usize) {
        // SAFETY: per the contract.
        unsafe { self.set_in_full_list(false) };
        let live = live_blocks.min(isize::MAX as usize) as isize;
        self.abandoned_blocks.store(live, Ordering::Relaxed);
        self.abandoned_live.store(live, Ordering::Relaxed);
        // Open the stack first so remote frees go to the segment, then drop ownership.
        self.abandoned_frees.open();
        self.thread_id.store(0, Ordering::Release);
    }

    /// Takes ownership of an abandoned segment; returns the frees collected meanwhile.
    ///
    /// # Safety
    /// The segment was taken off the abandoned list by the caller.
    pub unsafe fn adopt(&self, heap: *mut OwnerHeap, thread_id: usize) -> *mut Block {
        self.owner.store(heap, Ordering::Release);
        self.thread_id.store(thread_id, Ordering::Release);
        self.abandoned_frees.close_and_take()
    }

    /// The segment leaves its owner (released to the cache or unmapped).
    ///
    /// # Safety
    /// The caller owns the segment, which holds no live block.
    pub unsafe fn clear_owner(&self) {
        self.thread_id.store(0, Ordering::Relaxed);
    }

    /// # Safety
    /// The caller owns the segment or holds the lock of the cache it is on.
    pub unsafe fn touched(&self) -> usize {
        // SAFETY: per the contract.
        unsafe { self.local().touched }
    }

    /// # Safety
    /// As for [`Segment::touched`].
    pub unsafe fn set_touched(&self, bytes: usize) {
        // SAFETY: per the contract.
        unsafe { self.local().touched = bytes }
    }

    /// # Safety
    /// As for [`Segment::touched`].
    pub unsafe fn purged(&self) -> bool {
        // SAFETY: per the contract.
        unsafe { self.local().purged }
    }

    /// # Safety
    /// As for [`Segment::touched`].
    pub unsafe fn set_purged(&self, purged: bool) {
        // SAFETY: per the contract.
        unsafe { self.local().purged = purged }
    }

    /// # Safety
    /// As for [`Segment::touched`].
    pub unsafe fn huge_pages(&self) -> bool {
        // SAFETY: per the contract.
        unsafe { self.local().huge_pages }
    }

    /// # Safety
    /// As for [`Segment::touched`].
    pub unsafe fn cached_at(&self) -> u64 {
        // SAFETY: per the contract.
        unsafe { self.local().cached_at }
    }

    /// # Safety
    /// As for [`Segment::touched`].
    pub unsafe fn set_cached_at(&self, ms: u64) {
        // SAFETY: per the contract.
        unsafe { self.local().cached_at = ms }
    }

    /// Checks the segment invariants (tests and `expensive-checks`).
    ///
    /// # Safety
    /// The calling thread owns the segment and no page of it is borrowed.
    pub unsafe fn check(&self) {
        // SAFETY: per the contract.
        let l = unsafe { self.local() };
        let mut touched = 0;
        for i in 0..self.page_count {
            // SAFETY: per the contract.
            let page = unsafe { &*self.page_at(i) };
            touched += page.touched() as usize;
            // (A large block's run holds its descriptor in the first slot only.)
            if page.in_use() || matches!(self.kind, SegmentKind::Small | SegmentKind::Medium) {
                assert_eq!(
                    page.in_use(),
                    l.free_mask & ((1 as SlotMask) << i) == 0,
                    "slot in use == free_mask bit clear"
                );
            }
        }
        // (Huge segments cap a page's `touched` at 4 GiB; the sum is checked for the kinds
        // with many slots.)
        if self.kind != SegmentKind::Huge {
            assert_eq!(
                l.used_pages + l.free_mask.count_ones() as usize,
                self.page_count,
                "used_pages + |free slots| == page_count"
            );
            assert_eq!(l.touched, touched, "touched == sum of the slots' touched");
        }
    }
}

/// Bits `i..i+n` set.
fn run_mask(i: usize, n: usize) -> SlotMask {
    let bits = SlotMask::BITS as usize;
    debug_assert!(n >= 1 && i + n <= bits);
    (SlotMask::MAX >> (bits - n)) << i
}

/// The first `i >= from`, `i % step == 0`, with bits `i..i+n` of `mask` all set and
/// `i + n <= count`.
fn find_run(mask: SlotMask, n: usize, from: usize, step: usize, count: usize) -> Option<usize> {
    if n == 0 || n > count {
        return None;
    }
    // Bit j of `starts` set: bits j..j+n of mask are all set.
    let mut starts = mask;
    for k in 1..n {
        starts &= mask >> k;
    }
    let mut i = from.next_multiple_of(step.max(1));
    while i + n <= count {
        let rest = starts >> i;
        if rest == 0 {
            return None;
        }
        if step <= 1 {
            let j = i + rest.trailing_zeros() as usize;
            return (j + n <= count).then_some(j);
        }
        if rest & 1 != 0 {
            return Some(i);
        }
        i += step;
    }
    None
}

#[cfg(test)]
mod run_tests {
    use super::{find_run, run_mask};

    #[test]
    fn runs_are_found_first_fit_on_their_step() {
        assert_eq!(run_mask(0, 128), u128::MAX);
        assert_eq!(run_mask(0, 64), u64::MAX as u128);
        assert_eq!(run_mask(3, 2), 0b11000);
        let mask = !0b1111_0110u128; // slots 1, 2 and 4..8 taken
        assert_eq!(find_run(mask, 1, 0, 1, 64), Some(0));
        assert_eq!(find_run(mask, 1, 1, 1, 64), Some(3));
        assert_eq!(find_run(mask, 2, 0, 1, 64), Some(8));
        assert_eq!(find_run(mask, 2, 0, 4, 64), Some(8));
        assert_eq!(find_run(mask, 3, 0, 16, 64), Some(16));
        assert_eq!(find_run(mask, 64, 0, 1, 64), None);
        assert_eq!(find_run(u128::MAX, 64, 0, 1, 64), Some(0));
        assert_eq!(find_run(u128::MAX, 32, 1, 32, 64), Some(32));
        assert_eq!(find_run(u128::MAX, 128, 0, 1, 128), Some(0));
        assert_eq!(find_run(u128::MAX << 1, 64, 1, 64, 128), Some(64));
        assert_eq!(find_run(1 << 127, 1, 0, 1, 128), Some(127));
        assert_eq!(find_run(1 << 63, 1, 0, 1, 64), Some(63));
        assert_eq!(find_run(1 << 63, 2, 0, 1, 64), None);
        assert_eq!(find_run(3 << 63, 2, 0, 1, 64), None);
        assert_eq!(find_run(3 << 63, 2, 0, 1, 128), Some(63));
        assert_eq!(find_run(0, 1, 0, 1, 64), None);
    }
}
