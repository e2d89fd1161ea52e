//! Heaps: one per thread (plus first-class heaps), each owning its pages and segments.
//!
//! A heap keeps, per size class, a queue of pages with free blocks; its `direct` table maps
//! small request sizes straight to the first page of their class, so `malloc` is a table
//! lookup and a list pop. Pages that run out of blocks move to the full queue (index 0) and
//! come back when a block is freed to them.
//!
//! Ownership and cross-thread frees:
//! - Only the owning thread touches `Local` (everything but `remote` and the counters).
//! - A thread freeing a block of another heap pushes it onto that heap's `remote` queue
//!   with one CAS; the owner takes the whole queue with one swap at its next slow path.
//! - When a thread exits, its heap is *abandoned*: each segment still holding live blocks
//!   gets the `ABANDONED` tag and goes to a global list; frees to it are then collected on
//!   the segment itself, and a heap that needs pages adopts it. The heap structure goes to
//!   a pool for the next thread; it is never unmapped, so a late free that read the old
//!   owner can still push to its queue, which whoever reuses or adopts from the pool drains.
//!
//! Housekeeping (draining remote frees, purging free pages after the purge delay) runs on
//! slow paths, so no background thread is needed.

use crate::page::{Block, Page, FLAG_HAS_ALIGNED, FLAG_IN_FULL, FLAG_SINGLE};
use crate::segment::{
    self, SegList, Segment, SegmentKind, ABANDONED, HEADER_SIZE, LARGE_MAX, SEGMENT_SIZE,
};
use crate::size_class::{
    bin_of, bin_size, direct_range, BIN_COUNT, DIRECT_SLOTS, MEDIUM_MAX, SMALL_MAX,
};
use crate::stats::{self, bump, bump_i, HeapCounters};
use crate::{options, os};
use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

/// Queue index of the full pages; size-class bins start at 1.
const FULL: usize = 0;
/// Slow-path calls between clock reads for purging.
const TICKS_PER_CLOCK_READ: u32 = 8;
/// Abandoned segments adopted at most per slow path.
const MAX_ADOPT: usize = 8;
/// Frees to another thread's heap collected before they are sent with one CAS.
const OUTBOX_MAX: u32 = 64;
/// In-use bytes a heap accumulates before publishing them to the process-wide total; the
/// process peak is exact to within this much per thread.
const LIVE_BATCH: u64 = 256 * 1024;

/// A page every direct slot points to while its class has no page: `free` is null, so the
/// fast path falls through to the slow path without a separate null check.
pub struct StaticPage(pub Page);
// SAFETY: the empty page is never written: the slow path replaces it before use.
unsafe impl Sync for StaticPage {}
pub static EMPTY_PAGE: StaticPage = StaticPage(Page::EMPTY);
const EMPTY_PAGE_PTR: *mut Page = &EMPTY_PAGE.0 as *const Page as *mut Page;

#[derive(Clone, Copy)]
struct PageQueue {
    first: *mut Page,
    last: *mut Page,
}

/// The owner-only part of a heap.
pub struct Local {
    /// First page of the class for each request size in words (fast path).
    pub direct: [*mut Page; DIRECT_SLOTS],
    queues: [PageQueue; BIN_COUNT],
    /// Small and medium segments with a free page slot, and without.
    avail: [SegList; 2],
    full: [SegList; 2],
    /// Large and huge segments (one block each).
    large: SegList,
    this: *mut Heap,
    thread_id: usize,
    slow_count: u32,
    next_purge: u64,
    /// Free, unpurged page slots that may be due for purging.
    pending_purge: usize,
    /// Change of in-use bytes not yet added to the process total (batched to keep atomic
    /// read-modify-writes off the slow path).
    pending_live: i64,
    /// Frees of blocks owned by another thread heap (`outbox_target`), chained through the
    /// blocks and sent as one batch (snmalloc's message batching): one CAS per batch
    /// instead of one per free, and less contention on the owner's queue. At most
    /// `OUTBOX_MAX` blocks wait; the batch goes out at the owner change, at this heap's
    /// slow paths and when its thread exits.
    outbox_target: *mut Heap,
    outbox_head: *mut Block,
    outbox_tail: *mut Block,
    outbox_len: u32,
}

#[repr(C)]
pub struct Heap {
    local: UnsafeCell<Local>,
    /// Blocks freed by other threads, linked through their first word.
    pub remote: AtomicPtr<Block>,
    pub counters: HeapCounters,
    /// All heaps ever created, through this link (set once, read by `stats()`).
    pub registry_next: AtomicPtr<Heap>,
    /// Pool of retired heaps (under the registry lock).
    pub dead_next: AtomicPtr<Heap>,
    pub owner_thread: AtomicUsize,
    /// A first-class heap: frees to it are never batched, since dropping it releases its
    /// segments, and a batched free arriving later would write into released memory.
    pub first_class: AtomicBool,
}

// SAFETY: `local` is only touched by the owning thread (see module docs); everything else
// is atomic.
unsafe impl Sync for Heap {}

impl Local {
    const EMPTY: Local = Local {
        direct: [EMPTY_PAGE_PTR; DIRECT_SLOTS],
        queues: [PageQueue {
            first: ptr::null_mut(),
            last: ptr::null_mut(),
        }; BIN_COUNT],
        avail: [SegList::new(), SegList::new()],
        full: [SegList::new(), SegList::new()],
        large: SegList::new(),
        this: ptr::null_mut(),
        thread_id: 0,
        slow_count: 0,
        next_purge: 0,
        pending_purge: 0,
        pending_live: 0,
        outbox_target: ptr::null_mut(),
        outbox_head: ptr::null_mut(),
        outbox_tail: ptr::null_mut(),
        outbox_len: 0,
    };
}

impl Heap {
    /// The heap every thread starts with: it owns nothing, and its first slow path replaces
    /// it with a real heap.
    // A template copied into fresh memory, never shared: its atomics are not aliased.
    #[allow(clippy::declare_interior_mutable_const)]
    pub const EMPTY: Heap = Heap {
        local: UnsafeCell::new(Local::EMPTY),
        remote: AtomicPtr::new(ptr::null_mut()),
        counters: HeapCounters::new(),
        registry_next: AtomicPtr::new(ptr::null_mut()),
        dead_next: AtomicPtr::new(ptr::null_mut()),
        owner_thread: AtomicUsize::new(0),
        first_class: AtomicBool::new(false),
    };

    /// Prepares a heap structure (fresh or from the pool) for a new owner.
    ///
    /// # Safety
    /// `h` points to a heap nobody else uses as owner.
    pub unsafe fn reset_for(h: *mut Heap, thread_id: usize) {
        // SAFETY: the caller has exclusive ownership of the heap's local part.
        unsafe {
            let l = &mut *(*h).local.get();
            *l = Local::EMPTY;
            l.this = h;
            l.thread_id = thread_id;
            (*h).owner_thread.store(thread_id, Ordering::Relaxed);
            (*h).first_class.store(false, Ordering::Relaxed);
        }
    }

    /// The owner-only state.
    ///
    /// # Safety
    /// Only the owning thread may call this, and it must not hold another `&mut Local` of
    /// the same heap.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn local(&self) -> &mut Local {
        // SAFETY: guaranteed by the caller.
        unsafe { &mut *self.local.get() }
    }

    /// Direct-table lookup for the fast path.
    ///
    /// # Safety
    /// `h` is a live heap owned by the calling thread (or the static empty heap), and
    /// `size <= SMALL_DIRECT_MAX`.
    #[inline(always)]
    pub unsafe fn direct_page(h: *const Heap, size: usize) -> *mut Page {
        // SAFETY: the index is at most DIRECT_SLOTS - 1 for size <= SMALL_DIRECT_MAX, and
        // only the owner writes the table.
        unsafe { *(*(*h).local.get()).direct.get_unchecked((size + 7) >> 3) }
    }

    /// Pushes a chain of blocks freed by another thread onto this heap's queue.
    ///
    /// # Safety
    /// `first..=last` is a chain of live blocks of segments this heap owned when the caller
    /// read their owner.
    pub unsafe fn push_remote_chain(&self, first: *mut Block, last: *mut Block) {
        let mut head = self.remote.load(Ordering::Relaxed);
        loop {
            // SAFETY: the chain's blocks are being freed; their first words are links.
            unsafe { (*last).next = head };
            match self.remote.compare_exchange_weak(
                head,
                first,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    /// Pushes a block freed by another thread onto this heap's queue.
    ///
    /// # Safety
    /// `p` is a live block (or aligned pointer into one) of a segment this heap owned when
    /// the caller read `owner`.
    pub unsafe fn push_remote(&self, p: *mut u8) {
        let block = p as *mut Block;
        // SAFETY: a one-block chain, under the caller's guarantee.
        unsafe { self.push_remote_chain(block, block) }
    }
}

/// Frees `p` from any thread: a push onto the page's local list when the calling thread owns
/// it, else a remote push. Shared by the front ends and by the drains below.
///
/// # Safety
/// `p` was returned by memward and is not freed twice.
#[inline]
pub unsafe fn free_any(p: *mut u8) {
    // SAFETY: p is a live memward pointer, so its segment header is mapped.
    unsafe {
        let seg = &*Segment::of(p);
        if seg.thread_id.load(Ordering::Relaxed) == os::thread_id() {
            let page = seg.page_of(p);
            free_owned(page, p);
        } else {
            free_remote(seg, p);
        }
    }
}

/// Owner-thread free into `page` (fast path inline, the rest cold).
///
/// # Safety
/// The calling thread owns `page`'s segment and `p` is a live block or aligned pointer in it.
#[inline(always)]
pub unsafe fn free_owned(page: *mut Page, p: *mut u8) {
    // SAFETY: the page belongs to this thread; p is a block of it.
    unsafe {
        if (*page).flags() == 0 {
            let b = p as *mut Block;
            (*b).next = (*page).local_free;
            (*page).local_free = b;
            (*page).used -= 1;
            // The first page of a class queue (no `prev`) is kept when it empties, which
            // is the common case of a block allocated and freed in turn: no call.
            if (*page).used == 0 && !(*page).prev.is_null() {
                page_emptied(page);
            }
            return;
        }
        free_owned_slow(page, p)
    }
}

#[cold]
#[inline(never)]
unsafe fn page_emptied(page: *mut Page) {
    // SAFETY: the page belongs to this thread; its heap's Local is not borrowed here.
    unsafe { (*(*page).heap).local().page_emptied(page) }
}

#[cold]
#[inline(never)]
unsafe fn free_owned_slow(page: *mut Page, p: *mut u8) {
    // SAFETY: as for free_owned; we take the heap's Local for queue changes.
    unsafe { (*(*page).heap).local().free_in_page(page, p) }
}

/// A free from a thread that does not own the segment.
///
/// # Safety
/// `p` is a live block of `seg`.
#[cold]
#[inline(never)]
pub unsafe fn free_remote(seg: &Segment, p: *mut u8) {
    // SAFETY: the block is live; the owner (possibly stale) is a never-unmapped heap; the
    // calling thread's heap is ours and not borrowed on this path.
    unsafe {
        if segment::push_abandoned_free(seg, p as *mut Block) {
            return;
        }
        let owner = seg.owner.load(Ordering::Acquire);
        if (*owner).first_class.load(Ordering::Relaxed) {
            (*owner).push_remote(p);
            return;
        }
        let mut me = crate::thread::current();
        if crate::thread::is_empty(me) {
            // A thread that only frees gets a heap too, for its outbox and exit hook.
            me = crate::thread::init_thread_heap();
            if me.is_null() {
                (*owner).push_remote(p);
                return;
            }
        }
        (*me).local().push_outbox(owner, p);
    }
}

impl Local {
    #[inline]
    fn heap(&self) -> &Heap {
        // SAFETY: `this` is set when the heap is given an owner and heaps are never unmapped.
        unsafe { &*self.this }
    }

    // ---- page queues -------------------------------------------------------------------

    unsafe fn queue_push_front(&mut self, qi: usize, page: *mut Page) {
        // SAFETY: the page is owned by this heap and on no queue.
        unsafe {
            let q = &mut self.queues[qi];
            (*page).prev = ptr::null_mut();
            (*page).next = q.first;
            if q.first.is_null() {
                q.last = page;
            } else {
                (*q.first).prev = page;
            }
            q.first = page;
        }
        self.update_direct(qi);
    }

    unsafe fn queue_push_back(&mut self, qi: usize, page: *mut Page) {
        // SAFETY: the page is owned by this heap and on no queue.
        unsafe {
            let q = &mut self.queues[qi];
            (*page).next = ptr::null_mut();
            (*page).prev = q.last;
            if q.last.is_null() {
                q.first = page;
            } else {
                (*q.last).next = page;
            }
            q.last = page;
        }
        self.update_direct(qi);
    }

    unsafe fn queue_remove(&mut self, qi: usize, page: *mut Page) {
        // SAFETY: the page is on queue qi of this heap.
        unsafe {
            let q = &mut self.queues[qi];
            if (*page).prev.is_null() {
                q.first = (*page).next;
            } else {
                (*(*page).prev).next = (*page).next;
            }
            if (*page).next.is_null() {
                q.last = (*page).prev;
            } else {
                (*(*page).next).prev = (*page).prev;
            }
            (*page).next = ptr::null_mut();
            (*page).prev = ptr::null_mut();
        }
        self.update_direct(qi);
    }

    fn update_direct(&mut self, qi: usize) {
        if qi == FULL {
            return;
        }
        let first = self.queues[qi].first;
        let target = if first.is_null() {
            EMPTY_PAGE_PTR
        } else {
            first
        };
        let (lo, hi) = direct_range(qi);
        let mut w = lo;
        while w <= hi {
            self.direct[w] = target;
            w += 1;
        }
    }

    fn queue_of(page: &Page) -> usize {
        if page.flags() & FLAG_IN_FULL != 0 {
            FULL
        } else {
            page.bin as usize
        }
    }

    // ---- statistics reconciliation ------------------------------------------------------

    /// Credits allocations from the page's last refill, of which `remaining` are still on
    /// `free`.
    fn credit(&mut self, page: &mut Page, remaining: u32) {
        let taken = page.batch.saturating_sub(remaining);
        if taken > 0 {
            let c = &self.heap().counters;
            bump(&c.allocs[page.bin as usize], taken as u64);
            bump(&c.alloc_bytes, taken as u64 * page.block_size as u64);
        }
        page.batch = remaining;
    }

    /// Reports the change of the page's live blocks since the last report.
    fn sync(&mut self, page: &mut Page) {
        let delta = page.used as i64 - page.used_synced as i64;
        if delta != 0 {
            let c = &self.heap().counters;
            bump_i(&c.live_blocks[page.bin as usize], delta);
            let bytes = delta * page.block_size as i64;
            bump_i(&c.live_bytes, bytes);
            page.used_synced = page.used;
            self.pending_live += bytes;
            if self.pending_live.unsigned_abs() >= LIVE_BATCH {
                self.publish_live();
            }
        }
    }

    /// Adds the batched change of in-use bytes to the process total (and its peak).
    fn publish_live(&mut self) {
        if self.pending_live != 0 {
            stats::live_delta(self.pending_live);
            self.pending_live = 0;
        }
    }

    /// Moves the page's synced live counts out of (`sign = -1`) or into (`1`) this heap's
    /// counters without touching the process total (abandon and adopt).
    fn transfer(&mut self, page: &Page, sign: i64) {
        let c = &self.heap().counters;
        let blocks = sign * page.used_synced as i64;
        bump_i(&c.live_blocks[page.bin as usize], blocks);
        bump_i(&c.live_bytes, blocks * page.block_size as i64);
    }

    fn free_list_len(mut b: *mut Block) -> u32 {
        let mut n = 0;
        while !b.is_null() {
            n += 1;
            // SAFETY: blocks on an owned free list start with a valid link.
            b = unsafe { (*b).next };
        }
        n
    }

    /// Makes this heap's counters exact (walks the free lists of its pages).
    pub fn flush_stats(&mut self) {
        self.flush_pages();
        self.publish_live();
    }

    fn flush_pages(&mut self) {
        for qi in 0..BIN_COUNT {
            let mut page = self.queues[qi].first;
            while !page.is_null() {
                // SAFETY: pages on our queues are owned by this thread.
                unsafe {
                    let remaining = Self::free_list_len((*page).free);
                    self.credit(&mut *page, remaining);
                    self.sync(&mut *page);
                    page = (*page).next;
                }
            }
        }
    }

    // ---- allocation ---------------------------------------------------------------------

    /// Everything that is not a pop from the direct page: housekeeping, finding or making a
    /// page for the class, large and huge objects.
    ///
    /// # Safety
    /// Called by the owning thread.
    pub unsafe fn alloc_slow(&mut self, size: usize) -> *mut u8 {
        self.tick();
        #[cfg(feature = "expensive-checks")]
        if self.slow_count % 64 == 0 {
            self.check();
        }
        if size > MEDIUM_MAX {
            return self.alloc_large(size, 64, size);
        }
        let bin = bin_of(size);
        let page = self.find_page(bin);
        if page.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: find_page returns an owned page with a non-empty free list.
        unsafe {
            let b = (*page).free;
            (*page).free = (*b).next;
            (*page).used += 1;
            bump(&self.heap().counters.requested, size as u64);
            b as *mut u8
        }
    }

    /// Drains remote frees and, every few calls, purges what is due.
    fn tick(&mut self) {
        self.flush_outbox();
        if !self.heap().remote.load(Ordering::Relaxed).is_null() {
            self.drain_remote();
        }
        self.slow_count = self.slow_count.wrapping_add(1);
        if self.slow_count % TICKS_PER_CLOCK_READ == 0 {
            let delay = options::purge_delay_ms();
            if delay >= 0 {
                let now = os::now_ms();
                if now >= self.next_purge {
                    self.next_purge = now + (delay as u64 / 2).max(1);
                    self.purge_due(now, delay as u64, false);
                    segment::purge_cache(now);
                }
            }
        }
    }

    /// Frees every block other threads queued for this heap.
    pub fn drain_remote(&mut self) {
        let mut b = self.heap().remote.swap(ptr::null_mut(), Ordering::Acquire);
        while !b.is_null() {
            // SAFETY: queued blocks are live blocks of memward segments; the link was
            // written by the pusher before its release-CAS, which our swap acquired.
            unsafe {
                let next = (*b).next;
                self.free_from_queue(b as *mut u8);
                b = next;
            }
        }
    }

    /// Frees a block taken from a heap queue: usually a block of ours, but a queue can
    /// hold blocks pushed to a heap that has since been retired.
    pub(crate) unsafe fn free_from_queue(&mut self, p: *mut u8) {
        // SAFETY: p is a live memward block.
        unsafe {
            let seg = &*Segment::of(p);
            if seg.thread_id.load(Ordering::Relaxed) == self.thread_id {
                let page = seg.page_of(p);
                if (*page).heap == self.this {
                    self.free_in_page(page, p);
                } else {
                    free_owned(page, p);
                }
            } else {
                self.free_remote_from(seg, p);
            }
        }
    }

    /// `free_remote` for a thread that already holds its heap's `Local`.
    unsafe fn free_remote_from(&mut self, seg: &Segment, p: *mut u8) {
        // SAFETY: as in free_remote.
        unsafe {
            if segment::push_abandoned_free(seg, p as *mut Block) {
                return;
            }
            let owner = seg.owner.load(Ordering::Acquire);
            if (*owner).first_class.load(Ordering::Relaxed)
                || self.heap().first_class.load(Ordering::Relaxed)
            {
                (*owner).push_remote(p);
            } else {
                self.push_outbox(owner, p);
            }
        }
    }

    /// Adds a free for `owner` to the outbox, sending the batch when the owner changes or
    /// it is full.
    ///
    /// # Safety
    /// `p` is a live block of a segment `owner` owned when the caller read it.
    pub unsafe fn push_outbox(&mut self, owner: *mut Heap, p: *mut u8) {
        if owner != self.outbox_target {
            self.flush_outbox();
            self.outbox_target = owner;
        }
        let b = p as *mut Block;
        // SAFETY: the block is being freed; its first word becomes the link.
        unsafe {
            (*b).next = ptr::null_mut();
            if self.outbox_head.is_null() {
                self.outbox_head = b;
            } else {
                (*self.outbox_tail).next = b;
            }
        }
        self.outbox_tail = b;
        self.outbox_len += 1;
        if self.outbox_len >= OUTBOX_MAX {
            self.flush_outbox();
        }
    }

    /// Sends the outbox to its heap.
    pub fn flush_outbox(&mut self) {
        if self.outbox_head.is_null() {
            return;
        }
        // SAFETY: the chain holds live blocks of segments the target owned when queued; a
        // target that has since retired drains stale pushes (module docs).
        unsafe { (*self.outbox_target).push_remote_chain(self.outbox_head, self.outbox_tail) };
        self.outbox_head = ptr::null_mut();
        self.outbox_tail = ptr::null_mut();
        self.outbox_len = 0;
    }

    /// Finds a page of `bin` with a free block, moving exhausted pages to the full queue,
    /// or makes a new one. Null if out of memory.
    fn find_page(&mut self, bin: usize) -> *mut Page {
        let mut page = self.queues[bin].first;
        while !page.is_null() {
            // SAFETY: pages on our queues are owned by this thread.
            unsafe {
                let next = (*page).next;
                let p = &mut *page;
                if p.free.is_null() {
                    self.credit(p, 0);
                    p.batch = p.refill();
                    Self::note_touched(p, p.capacity as usize * p.block_size);
                }
                self.sync(p);
                if !p.free.is_null() {
                    if page != self.queues[bin].first {
                        self.queue_remove(bin, page);
                        self.queue_push_front(bin, page);
                    }
                    return page;
                }
                self.queue_remove(bin, page);
                p.set_flag(FLAG_IN_FULL, true);
                self.queue_push_front(FULL, page);
                page = next;
            }
        }
        let page = self.new_page(bin);
        if page.is_null() {
            return page;
        }
        // SAFETY: a fresh page of ours.
        unsafe {
            let p = &mut *page;
            p.batch = p.refill();
            Self::note_touched(p, p.capacity as usize * p.block_size);
            self.queue_push_front(bin, page);
        }
        page
    }

    /// Takes a free page slot from our segments (adopting or acquiring a segment if
    /// needed) and initialises it for `bin`.
    fn new_page(&mut self, bin: usize) -> *mut Page {
        let block_size = bin_size(bin);
        let (kind, k) = if block_size <= SMALL_MAX {
            (SegmentKind::Small, 0)
        } else {
            (SegmentKind::Medium, 1)
        };
        let mut seg = self.avail[k].first;
        if seg.is_null() {
            seg = self.new_segment(kind);
            if seg.is_null() {
                return ptr::null_mut();
            }
        }
        // SAFETY: seg is one of our segments with a free slot.
        unsafe {
            let s = &mut *seg;
            let i = s.free_mask.trailing_zeros() as usize;
            s.free_mask &= !(1u64 << i);
            s.used_pages += 1;
            if s.free_mask == 0 {
                self.avail[k].remove(seg);
                self.full[k].push(seg);
                s.in_full_list = true;
            }
            let (start, end) = s.slot_range(i);
            let page = &mut *(s.pages.as_mut_ptr().add(i));
            page.purged = false;
            page.init(self.this, bin, block_size, start as *mut u8, end);
            page
        }
    }

    /// A segment with free page slots for `kind`: adopted from exited threads if any,
    /// else from the cache or the OS. It is put on our `avail` list.
    fn new_segment(&mut self, kind: SegmentKind) -> *mut Segment {
        let k = if kind == SegmentKind::Small { 0 } else { 1 };
        if segment::abandoned_count() > 0 {
            crate::thread::drain_retired_heaps(self);
            for _ in 0..MAX_ADOPT {
                let s = segment::take_abandoned();
                if s.is_null() {
                    break;
                }
                // SAFETY: an abandoned segment taken off the list is ours to adopt.
                unsafe { self.adopt(s) };
                if !self.avail[k].first.is_null() {
                    return self.avail[k].first;
                }
            }
        }
        let seg = segment::acquire(kind, self.this, self.thread_id, 0);
        if !seg.is_null() {
            // SAFETY: a fresh segment on no list.
            unsafe { self.avail[k].push(seg) };
        }
        seg
    }

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
            segment::acquire(SegmentKind::Large, self.this, self.thread_id, 0)
        } else {
            segment::acquire(SegmentKind::Huge, self.this, self.thread_id, room)
        };
        if seg.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: a fresh segment of ours, large enough for offset + block_size.
        unsafe {
            let s = &mut *seg;
            s.free_mask = 0;
            s.used_pages = 1;
            let start = (seg as *mut u8).add(offset);
            let page = &mut *s.pages.as_mut_ptr();
            page.init(self.this, 0, block_size, start, start as usize + block_size);
            page.capacity = 1;
            page.used = 1;
            page.set_flag(FLAG_SINGLE, true);
            Self::note_touched(page, offset - HEADER_SIZE + block_size);
            self.large.push(seg);
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
    /// `page` is a large/huge page owned by the calling thread.
    pub unsafe fn resize_large_in_place(&mut self, page: *mut Page, new_size: usize) -> bool {
        let ps = os::page_size();
        let Some(new_block) = new_size.checked_add(ps - 1).map(|s| s & !(ps - 1)) else {
            return false;
        };
        // SAFETY: the page is ours and sits in its segment's header.
        unsafe {
            let seg = &*Segment::of(page as *const u8);
            let limit = seg.base()
                + if seg.kind == SegmentKind::Huge {
                    seg.size
                } else {
                    SEGMENT_SIZE
                };
            let p = &mut *page;
            if p.start as usize + new_block > limit {
                return false;
            }
            let old = p.block_size;
            p.block_size = new_block;
            p.reserved = 1;
            let slot_start = seg.base() + HEADER_SIZE;
            Self::note_touched(p, p.start as usize - slot_start + new_block);
            let diff = new_block as i64 - old as i64;
            bump_i(&self.heap().counters.live_bytes, diff);
            stats::live_delta(diff);
            if diff > 0 {
                bump(&self.heap().counters.alloc_bytes, diff as u64);
            }
            true
        }
    }

    // ---- freeing ------------------------------------------------------------------------

    /// Owner free with the flags handled (full page, aligned pointers).
    ///
    /// # Safety
    /// `page` is owned by this heap and `p` is a live block or aligned pointer in it.
    pub unsafe fn free_in_page(&mut self, page: *mut Page, p: *mut u8) {
        // SAFETY: as stated; queue moves only touch our own pages.
        unsafe {
            let pg = &mut *page;
            let flags = pg.flags();
            let b = if flags & FLAG_HAS_ALIGNED != 0 {
                pg.block_start(p)
            } else {
                p
            } as *mut Block;
            (*b).next = pg.local_free;
            pg.local_free = b;
            pg.used -= 1;
            if flags & FLAG_IN_FULL != 0 {
                self.queue_remove(FULL, page);
                pg.set_flag(FLAG_IN_FULL, false);
                self.queue_push_back(pg.bin as usize, page);
            }
            if pg.used == 0 {
                self.page_emptied(page);
            }
        }
    }

    /// A page's last block came back: keep it if it is the current page of its class
    /// (to avoid thrashing), else give the slot back to its segment.
    unsafe fn page_emptied(&mut self, page: *mut Page) {
        // SAFETY: an owned page with no live blocks.
        unsafe {
            let bin = (*page).bin as usize;
            if bin != 0 && self.queues[bin].first == page && (*page).flags() & FLAG_IN_FULL == 0 {
                return;
            }
            self.free_page(page);
        }
    }

    /// Returns an empty page's slot to its segment; releases the segment when it empties.
    unsafe fn free_page(&mut self, page: *mut Page) {
        // SAFETY: an owned page with used == 0; its segment is one of ours.
        unsafe {
            let p = &mut *page;
            debug_assert_eq!(p.used, 0);
            let remaining = Self::free_list_len(p.free);
            self.credit(p, remaining);
            self.sync(p);
            let seg = Segment::of(page as *const u8);
            let s = &mut *seg;
            if p.bin != 0 {
                self.queue_remove(Self::queue_of(p), page);
            }
            p.in_use = false;
            p.free = ptr::null_mut();
            p.local_free = ptr::null_mut();
            p.flags.store(0, Ordering::Relaxed);
            p.is_zero = p.is_zero && p.capacity == 0;
            s.used_pages -= 1;
            match s.kind {
                SegmentKind::Large | SegmentKind::Huge => {
                    self.large.remove(seg);
                    segment::release(seg);
                }
                SegmentKind::Small | SegmentKind::Medium => {
                    let k = if s.kind == SegmentKind::Small { 0 } else { 1 };
                    let index =
                        (page as usize - s.pages.as_ptr() as usize) / core::mem::size_of::<Page>();
                    s.free_mask |= 1u64 << index;
                    if s.in_full_list {
                        self.full[k].remove(seg);
                        self.avail[k].push(seg);
                        s.in_full_list = false;
                    }
                    if s.used_pages == 0 {
                        self.avail[k].remove(seg);
                        self.unpurge_slots(s);
                        segment::release(seg);
                    } else {
                        p.freed_at = os::now_ms();
                        match options::purge_delay_ms() {
                            0 => Self::purge_slot(s, index),
                            d if d > 0 => self.pending_purge += 1,
                            _ => {}
                        }
                    }
                }
            }
        }
    }

    /// Clears the slots' purged marks before the segment goes to the cache, which tracks
    /// purging per segment (its resident estimate, `touched`, carries over).
    fn unpurge_slots(&mut self, s: &mut Segment) {
        for i in 0..s.page_count {
            s.pages[i].purged = false;
        }
    }

    /// Accounts the bytes of `page` that blocks now reach (carved blocks, or a large block)
    /// in the resident estimate.
    fn note_touched(page: &mut Page, extent: usize) {
        let ps = os::page_size();
        let extent = ((extent + ps - 1) & !(ps - 1)).min(u32::MAX as usize) as u32;
        if extent > page.touched {
            let delta = (extent - page.touched) as usize;
            page.touched = extent;
            let seg = Segment::of(page as *const Page as *const u8);
            // SAFETY: the page lives in its segment's header, which the owner may update.
            unsafe { (*seg).touched += delta };
            stats::resident(delta as i64);
        }
    }

    fn purge_slot(s: &mut Segment, i: usize) {
        let (ps, pe) = s.slot_purge_range(i);
        let slot_start = s.slot_range(i).0;
        let page = &mut s.pages[i];
        if page.purged || page.in_use || pe <= ps {
            return;
        }
        // SAFETY: the slot is free (no live block) and the range is page-aligned inside it.
        if unsafe { os::purge(ps as *mut u8, pe - ps) } {
            page.purged = true;
            // Bytes before the first OS-page boundary (slot 0, after the header) were kept.
            page.is_zero = ps == slot_start;
            let touched = page.touched as usize;
            page.touched = 0;
            s.touched -= touched.min(s.touched);
            stats::purge_call();
            stats::resident(-(touched as i64));
        }
    }

    /// Purges free page slots that have been free for `delay` ms (all of them if `force`).
    fn purge_due(&mut self, now: u64, delay: u64, force: bool) {
        if self.pending_purge == 0 && !force {
            return;
        }
        let mut pending = 0;
        for k in 0..2 {
            let mut seg = self.avail[k].first;
            while !seg.is_null() {
                // SAFETY: segments on our lists are ours.
                unsafe {
                    let s = &mut *seg;
                    let mut mask = s.free_mask;
                    while mask != 0 {
                        let i = mask.trailing_zeros() as usize;
                        mask &= mask - 1;
                        let page = &s.pages[i];
                        if page.purged || page.capacity == 0 && page.is_zero {
                            continue;
                        }
                        if force || page.freed_at + delay <= now {
                            Self::purge_slot(s, i);
                        } else {
                            pending += 1;
                        }
                    }
                    seg = s.next;
                }
            }
        }
        self.pending_purge = pending;
    }

    /// Returns all free memory of this heap and the segment cache to the OS now.
    pub fn collect(&mut self) {
        self.drain_remote();
        // Retire the kept-empty current pages too.
        for bin in 1..BIN_COUNT {
            let first = self.queues[bin].first;
            // SAFETY: pages on our queues are ours.
            unsafe {
                if !first.is_null() && (*first).used == 0 {
                    self.free_page(first);
                }
            }
        }
        self.purge_due(os::now_ms(), 0, true);
        segment::purge_cache_all();
    }

    // ---- thread exit and adoption -------------------------------------------------------

    /// Gives up every segment: empty pages are freed, segments with live blocks are
    /// abandoned for other threads to adopt. The heap is left empty.
    pub fn abandon(&mut self) {
        self.flush_outbox();
        self.drain_remote();
        for qi in 0..BIN_COUNT {
            let mut page = self.queues[qi].first;
            while !page.is_null() {
                // SAFETY: pages on our queues are ours.
                unsafe {
                    let next = (*page).next;
                    let remaining = Self::free_list_len((*page).free);
                    self.credit(&mut *page, remaining);
                    self.sync(&mut *page);
                    if (*page).used == 0 {
                        self.free_page(page);
                    }
                    page = next;
                }
            }
        }
        let lists: [*mut SegList; 5] = [
            &mut self.avail[0],
            &mut self.avail[1],
            &mut self.full[0],
            &mut self.full[1],
            &mut self.large,
        ];
        for list in lists {
            loop {
                // SAFETY: the list pointers are fields of self, used one at a time.
                let seg = unsafe { (*list).pop() };
                if seg.is_null() {
                    break;
                }
                // SAFETY: the segment is ours and now on no list.
                unsafe {
                    let s = &mut *seg;
                    s.in_full_list = false;
                    for i in 0..s.page_count {
                        if s.pages[i].in_use {
                            let page = &s.pages[i];
                            self.transfer(page, -1);
                        }
                    }
                    // Nobody will use the free slots soon: return them to the OS now.
                    let mut mask = s.free_mask;
                    while mask != 0 {
                        let i = mask.trailing_zeros() as usize;
                        mask &= mask - 1;
                        if !(s.pages[i].capacity == 0 && s.pages[i].is_zero) {
                            Self::purge_slot(s, i);
                        }
                    }
                    // Tag first so remote frees go to the segment, then drop ownership.
                    s.abandoned_frees.fetch_or(ABANDONED, Ordering::AcqRel);
                    s.thread_id.store(0, Ordering::Release);
                    segment::abandon(seg);
                }
            }
        }
        self.queues = Local::EMPTY.queues;
        self.direct = [EMPTY_PAGE_PTR; DIRECT_SLOTS];
        self.pending_purge = 0;
        // Frees that raced with the tagging are re-sent to their segments.
        self.drain_remote();
        self.flush_outbox();
        self.publish_live();
        // Threads that come and go return cached memory even if no thread allocates.
        if options::purge_delay_ms() >= 0 {
            segment::purge_cache(os::now_ms());
        }
    }

    /// Takes over an abandoned segment: its pages join our queues and the frees collected
    /// while it had no owner are applied.
    ///
    /// # Safety
    /// `seg` was taken off the abandoned list.
    unsafe fn adopt(&mut self, seg: *mut Segment) {
        // SAFETY: nobody else owns the segment now; remote freers only touch the atomics.
        unsafe {
            let s = &mut *seg;
            s.owner.store(self.this, Ordering::Release);
            s.thread_id.store(self.thread_id, Ordering::Release);
            let frees = s.abandoned_frees.swap(0, Ordering::AcqRel) & !ABANDONED;
            let kind = s.kind;
            for i in 0..s.page_count {
                let page = &mut *s.pages.as_mut_ptr().add(i);
                if !page.in_use {
                    continue;
                }
                page.heap = self.this;
                self.transfer(page, 1);
                if page.bin == 0 {
                    continue;
                }
                page.set_flag(FLAG_IN_FULL, false);
                let has_room = !page.free.is_null()
                    || !page.local_free.is_null()
                    || page.capacity < page.reserved;
                if has_room {
                    self.queue_push_back(page.bin as usize, page);
                } else {
                    page.set_flag(FLAG_IN_FULL, true);
                    self.queue_push_back(FULL, page);
                }
            }
            match kind {
                SegmentKind::Large | SegmentKind::Huge => self.large.push(seg),
                _ => {
                    let k = if kind == SegmentKind::Small { 0 } else { 1 };
                    if s.free_mask == 0 {
                        s.in_full_list = true;
                        self.full[k].push(seg);
                    } else {
                        s.in_full_list = false;
                        self.avail[k].push(seg);
                    }
                }
            }
            let mut b = frees as *mut Block;
            while !b.is_null() {
                let next = (*b).next;
                let page = (*seg).page_of(b as *const u8);
                self.free_in_page(page, b as *mut u8);
                b = next;
            }
        }
    }

    /// Frees everything this heap holds at once (first-class heap drop): blocks queued by
    /// other threads for our segments are dropped with them, others are re-sent.
    pub fn destroy(&mut self) {
        let mut b = self.heap().remote.swap(ptr::null_mut(), Ordering::Acquire);
        while !b.is_null() {
            // SAFETY: queued blocks are live memward blocks.
            unsafe {
                let next = (*b).next;
                let seg = &*Segment::of(b as *const u8);
                let ours = seg.owner.load(Ordering::Relaxed) == self.this
                    && seg.thread_id.load(Ordering::Relaxed) == self.thread_id;
                if !ours {
                    self.free_from_queue(b as *mut u8);
                }
                b = next;
            }
        }
        let lists: [*mut SegList; 5] = [
            &mut self.avail[0],
            &mut self.avail[1],
            &mut self.full[0],
            &mut self.full[1],
            &mut self.large,
        ];
        for list in lists {
            loop {
                // SAFETY: the list pointers are fields of self, used one at a time.
                let seg = unsafe { (*list).pop() };
                if seg.is_null() {
                    break;
                }
                // SAFETY: our segment; after this loop no page of it is referenced.
                unsafe {
                    let s = &mut *seg;
                    for i in 0..s.page_count {
                        let page = &mut *s.pages.as_mut_ptr().add(i);
                        if page.in_use {
                            let remaining = Self::free_list_len(page.free);
                            self.credit(page, remaining);
                            page.used = 0;
                            self.sync(page);
                        }
                    }
                    self.unpurge_slots(s);
                    segment::release(seg);
                }
            }
        }
        self.queues = Local::EMPTY.queues;
        self.direct = [EMPTY_PAGE_PTR; DIRECT_SLOTS];
        self.pending_purge = 0;
        self.flush_outbox();
        self.publish_live();
    }

    /// Checks every page's invariant and queue membership (tests, `expensive-checks`).
    pub fn check(&self) {
        for qi in 0..BIN_COUNT {
            let mut page = self.queues[qi].first;
            let mut prev: *mut Page = ptr::null_mut();
            while !page.is_null() {
                // SAFETY: pages on our queues are ours.
                unsafe {
                    let p = &*page;
                    assert!(p.in_use);
                    assert_eq!(p.prev, prev);
                    assert_eq!(p.heap, self.this);
                    assert_eq!(qi == FULL, p.flags() & FLAG_IN_FULL != 0);
                    p.check();
                    prev = page;
                    page = p.next;
                }
            }
            assert_eq!(self.queues[qi].last, prev);
            if qi != FULL {
                let (lo, hi) = direct_range(qi);
                let want = if self.queues[qi].first.is_null() {
                    EMPTY_PAGE_PTR
                } else {
                    self.queues[qi].first
                };
                for w in lo..=hi {
                    assert_eq!(self.direct[w], want);
                }
            }
        }
    }
}
