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
//! | large | 1 (the whole segment) | one object up to 2 MiB |
//! | huge | 1 (a mapping of its own, any size) | one object above 2 MiB, unmapped after the purge delay unless reused |
//!
//! The first page starts after the header. A segment belongs to one heap (one thread);
//! `thread_id` says which, and is zero while the segment is abandoned (its thread exited).
//! Empty segments go to a global cache where they are purged after the purge delay and
//! unmapped beyond `MEMWARD_SEGMENT_CACHE`; abandoned segments wait on a global list until a
//! heap that needs pages adopts them.

use crate::heap::Heap;
use crate::lock::SpinLock;
use crate::page::{Block, Page};
use crate::{options, os, segment_map, stats};
use core::mem::size_of;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

pub const SEGMENT_SHIFT: usize = 22;
pub const SEGMENT_SIZE: usize = 1 << SEGMENT_SHIFT;
pub const SEGMENT_MASK: usize = SEGMENT_SIZE - 1;
pub const SMALL_PAGE_SHIFT: usize = 16;
pub const MEDIUM_PAGE_SHIFT: usize = 19;
pub const MAX_PAGES: usize = SEGMENT_SIZE >> SMALL_PAGE_SHIFT;
/// Largest object placed in a (cached, reusable) large segment; larger ones are huge.
pub const LARGE_MAX: usize = SEGMENT_SIZE / 2;
/// Largest supported alignment: an aligned block must start within the segment's first
/// `SEGMENT_SIZE` bytes for the address arithmetic of `free` to find its header.
pub const MAX_ALIGN: usize = SEGMENT_SIZE / 2;
/// Bit 0 of `Segment::abandoned_frees`: the segment has no owner, push frees here.
pub const ABANDONED: usize = 1;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum SegmentKind {
    Small,
    Medium,
    Large,
    Huge,
}

#[repr(C)]
pub struct Segment {
    /// Owning thread, zero while abandoned or cached. Read by every `free`.
    pub thread_id: AtomicUsize,
    /// `(p - segment) >> page_shift` is the page index of `p`.
    pub page_shift: usize,
    /// Owning heap; stays set (stale) while abandoned, which remote frees tolerate.
    pub owner: AtomicPtr<Heap>,
    /// Frees that arrived while abandoned, tagged with `ABANDONED` in bit 0.
    pub abandoned_frees: AtomicUsize,
    pub kind: SegmentKind,
    /// Heap bookkeeping: which of the heap's lists the segment is on.
    pub in_full_list: bool,
    /// While cached: everything after the header has been purged.
    pub purged: bool,
    /// The mapping carries the transparent-huge-page hint.
    pub huge_pages: bool,
    pub page_count: usize,
    pub used_pages: usize,
    /// Bit i set: page slot i is free.
    pub free_mask: u64,
    /// Bytes mapped from the segment start.
    pub size: usize,
    pub next: *mut Segment,
    pub prev: *mut Segment,
    /// When the segment entered the cache (ms).
    pub cached_at: u64,
    /// Resident estimate beyond the header: the sum of the slots' `touched`.
    pub touched: usize,
    pub pages: [Page; MAX_PAGES],
}

/// Offset of the first page: the header rounded up to a cache line.
pub const HEADER_SIZE: usize = (size_of::<Segment>() + 63) & !63;
// The header must leave most of the first small page to blocks.
const _: () = assert!(HEADER_SIZE < (1 << SMALL_PAGE_SHIFT) / 4);

impl Segment {
    /// The segment that would contain `p` (no check that it exists).
    #[inline(always)]
    pub fn of(p: *const u8) -> *mut Segment {
        (p as usize & !SEGMENT_MASK) as *mut Segment
    }

    /// The page descriptor for `p`, which must be inside this segment's pages.
    #[inline(always)]
    pub fn page_of(&self, p: *const u8) -> *mut Page {
        let index = (p as usize - self as *const Segment as usize) >> self.page_shift;
        debug_assert!(index < self.page_count);
        // SAFETY: the index of an address inside the segment's pages is below page_count.
        unsafe { self.pages.as_ptr().add(index) as *mut Page }
    }

    #[inline]
    pub fn base(&self) -> usize {
        self as *const Segment as usize
    }

    /// `[start, end)` of page slot `i` (small and medium segments).
    pub fn slot_range(&self, i: usize) -> (usize, usize) {
        let base = self.base();
        let start = if i == 0 {
            base + HEADER_SIZE
        } else {
            base + (i << self.page_shift)
        };
        let end = if self.page_count == 1 {
            base + self.size
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
}

/// An intrusive list of segments through `next`/`prev`.
pub struct SegList {
    pub first: *mut Segment,
    pub count: usize,
}

// SAFETY: the list only links segments, which are plain memory; whoever holds the list
// (a heap's owner thread, or a global lock) has exclusive use of the links.
unsafe impl Send for SegList {}

impl SegList {
    pub const fn new() -> Self {
        SegList {
            first: ptr::null_mut(),
            count: 0,
        }
    }

    /// # Safety
    /// `s` is a live segment on no list.
    pub unsafe fn push(&mut self, s: *mut Segment) {
        // SAFETY: s is live and unlinked; first, if any, is on this list.
        unsafe {
            (*s).prev = ptr::null_mut();
            (*s).next = self.first;
            if !self.first.is_null() {
                (*self.first).prev = s;
            }
        }
        self.first = s;
        self.count += 1;
    }

    /// # Safety
    /// `s` is on this list.
    pub unsafe fn remove(&mut self, s: *mut Segment) {
        // SAFETY: s and its neighbours are on this list.
        unsafe {
            if (*s).prev.is_null() {
                self.first = (*s).next;
            } else {
                (*(*s).prev).next = (*s).next;
            }
            if !(*s).next.is_null() {
                (*(*s).next).prev = (*s).prev;
            }
            (*s).next = ptr::null_mut();
            (*s).prev = ptr::null_mut();
        }
        self.count -= 1;
    }

    pub fn pop(&mut self) -> *mut Segment {
        let s = self.first;
        if !s.is_null() {
            // SAFETY: s is the first segment of this list.
            unsafe { self.remove(s) };
        }
        s
    }

    /// The last segment (oldest pushed), or null.
    pub fn last(&self) -> *mut Segment {
        let mut s = self.first;
        // SAFETY: walking links of segments on this list.
        unsafe {
            while !s.is_null() && !(*s).next.is_null() {
                s = (*s).next;
            }
        }
        s
    }
}

/// Empty normal-size segments kept for reuse.
static CACHE: SpinLock<SegList> = SpinLock::new(SegList::new());
/// Recently freed huge segments, newest first: a program that frees and allocates blocks
/// of several MiB in turn reuses the mapping instead of faulting fresh pages in. Entries are
/// unmapped once idle for the purge delay, or when the cache exceeds its byte budget.
static HUGE_CACHE: SpinLock<SegList> = SpinLock::new(SegList::new());
static HUGE_CACHED_BYTES: AtomicUsize = AtomicUsize::new(0);
/// Segments whose thread exited while they still held live blocks.
static ABANDONED_LIST: SpinLock<SegList> = SpinLock::new(SegList::new());
static ABANDONED_COUNT: AtomicUsize = AtomicUsize::new(0);
/// Next time (ms) the cache should be checked for segments to purge.
static NEXT_CACHE_PURGE: AtomicUsize = AtomicUsize::new(0);

/// Takes all global segment locks (fork prepare handler).
pub fn lock_all() {
    CACHE.acquire();
    HUGE_CACHE.acquire();
    ABANDONED_LIST.acquire();
}

/// Releases what `lock_all` took.
///
/// # Safety
/// Only after `lock_all` on this thread (fork parent/child handlers).
pub unsafe fn unlock_all() {
    // SAFETY: the caller took both locks with lock_all.
    unsafe {
        ABANDONED_LIST.release();
        HUGE_CACHE.release();
        CACHE.release();
    }
}

/// Gets a segment of `kind` for `heap`, with `size` mapped bytes (huge) or `SEGMENT_SIZE`.
/// Null when the OS is out of memory.
pub fn acquire(
    kind: SegmentKind,
    heap: *mut Heap,
    thread_id: usize,
    huge_size: usize,
) -> *mut Segment {
    let (seg, size, zero, fresh) = if kind == SegmentKind::Huge {
        let ps = os::page_size().max(64 * 1024);
        let Some(size) = huge_size.checked_add(ps - 1).map(|s| s & !(ps - 1)) else {
            return ptr::null_mut();
        };
        let cached = take_huge(size);
        if cached.is_null() {
            let seg = os::map_aligned(size, SEGMENT_SIZE);
            (seg as *mut Segment, size, true, true)
        } else {
            // SAFETY: cached segments are mapped and unused.
            let (purged, size) = unsafe { ((*cached).purged, (*cached).size) };
            (cached, size, purged, false)
        }
    } else {
        let cached = CACHE.lock().pop();
        if cached.is_null() {
            let seg = os::map_aligned(SEGMENT_SIZE, SEGMENT_SIZE);
            (seg as *mut Segment, SEGMENT_SIZE, true, true)
        } else {
            // SAFETY: cached segments are mapped and unused.
            let purged = unsafe { (*cached).purged };
            (cached, SEGMENT_SIZE, purged, false)
        }
    };
    if seg.is_null() {
        return seg;
    }
    if fresh {
        stats::mapped(size);
    }
    if !segment_map::insert(seg as usize) {
        // SAFETY: the mapping was just made (or taken from the cache) and holds nothing.
        unsafe {
            if !fresh {
                stats::resident(-(header_resident() as i64 + (*seg).touched as i64));
            }
            os::unmap(seg as *mut u8, size);
        }
        stats::unmapped(size);
        return ptr::null_mut();
    }
    // Set or withdraw the huge-page hint for this use of the mapping.
    let huge = wants_huge_pages(kind);
    // SAFETY: a cached header is valid; a fresh mapping has no hint yet.
    let had = !fresh && unsafe { (*seg).huge_pages };
    if huge != had {
        // SAFETY: the whole mapping is ours and holds no live block.
        unsafe {
            if huge {
                os::advise_huge_pages(seg as *mut u8, size);
            } else {
                os::advise_no_huge_pages(seg as *mut u8, size);
            }
        }
    }
    // What the cache kept resident (a fresh mapping: only the header, written below).
    let kept = if fresh {
        stats::resident(header_resident() as i64);
        0
    } else {
        // SAFETY: the cached header is still valid.
        unsafe { (*seg).touched }
    };
    let (page_shift, page_count) = match kind {
        SegmentKind::Small => (SMALL_PAGE_SHIFT, SEGMENT_SIZE >> SMALL_PAGE_SHIFT),
        SegmentKind::Medium => (MEDIUM_PAGE_SHIFT, SEGMENT_SIZE >> MEDIUM_PAGE_SHIFT),
        SegmentKind::Large => (SEGMENT_SHIFT, 1),
        SegmentKind::Huge => (usize::BITS as usize - 1, 1),
    };
    // SAFETY: `seg` is a mapping of at least SEGMENT_SIZE (or `size`) bytes that nothing
    // else uses; we write its header fields in place.
    unsafe {
        ptr::addr_of_mut!((*seg).page_shift).write(page_shift);
        ptr::addr_of_mut!((*seg).owner).write(AtomicPtr::new(heap));
        ptr::addr_of_mut!((*seg).abandoned_frees).write(AtomicUsize::new(0));
        ptr::addr_of_mut!((*seg).kind).write(kind);
        ptr::addr_of_mut!((*seg).in_full_list).write(false);
        ptr::addr_of_mut!((*seg).purged).write(false);
        ptr::addr_of_mut!((*seg).huge_pages).write(huge);
        ptr::addr_of_mut!((*seg).page_count).write(page_count);
        ptr::addr_of_mut!((*seg).used_pages).write(0);
        let mask = if page_count == 64 {
            u64::MAX
        } else {
            (1u64 << page_count) - 1
        };
        ptr::addr_of_mut!((*seg).free_mask).write(mask);
        ptr::addr_of_mut!((*seg).size).write(size);
        ptr::addr_of_mut!((*seg).next).write(ptr::null_mut());
        ptr::addr_of_mut!((*seg).prev).write(ptr::null_mut());
        ptr::addr_of_mut!((*seg).cached_at).write(0);
        ptr::addr_of_mut!((*seg).touched).write(kept);
        let pages = ptr::addr_of_mut!((*seg).pages) as *mut Page;
        // Only the slots of this kind are ever looked at (indices stay below page_count).
        for i in 0..page_count {
            let page = pages.add(i);
            page.write(Page::EMPTY);
            // A purged cached segment keeps the bytes that share an OS page with the
            // header, so the first small or medium slot is only known zero in a fresh
            // mapping; large and huge blocks start on an OS page of their own.
            (*page).is_zero = zero && (fresh || i > 0 || page_count == 1);
        }
        // Which slots the cached bytes belong to is not known: a one-slot segment keeps the
        // count; a many-slot one counts every slot as touched until it is purged.
        if kept > 0 {
            let s = &mut *seg;
            if page_count == 1 {
                s.pages[0].touched = kept.min(u32::MAX as usize) as u32;
            } else {
                let mut total = 0;
                for i in 0..page_count {
                    let (start, end) = s.slot_range(i);
                    s.pages[i].touched = (end - start) as u32;
                    total += end - start;
                }
                stats::resident(total as i64 - kept as i64);
                s.touched = total;
            }
        }
        // Publish ownership last: frees can only arrive after blocks are handed out.
        ptr::addr_of_mut!((*seg).thread_id).write(AtomicUsize::new(thread_id));
    }
    seg
}

/// Resident bytes of a segment header: the OS pages it occupies.
fn header_resident() -> usize {
    let ps = os::page_size();
    (HEADER_SIZE + ps - 1) & !(ps - 1)
}

/// Bytes in use above which new segments of every kind get the huge-page hint.
const HUGE_PAGE_THRESHOLD: i64 = 64 << 20;

/// Whether a new mapping for `kind` should ask for transparent huge pages.
///
/// A page fault costs about as much as a thousand allocations, and a 2 MiB page replaces
/// 512 of them. The price is RSS: a partly used 2 MiB page is resident whole (a common
/// complaint about allocators that always use THP). So huge objects, which are normally
/// used whole, always get the hint, and other segments only once the program has
/// `HUGE_PAGE_THRESHOLD` bytes in use, where a few partly used huge pages are a small
/// fraction of the heap. Purging part of a huge page splits it, so memory still goes back.
/// Large segments never get it: their single block may be far smaller than the 4 MiB
/// segment, and a huge page would make the rest of its 2 MiB resident.
fn wants_huge_pages(kind: SegmentKind) -> bool {
    options::huge_pages()
        && match kind {
            SegmentKind::Huge => true,
            SegmentKind::Large => false,
            SegmentKind::Small | SegmentKind::Medium => stats::live_bytes() >= HUGE_PAGE_THRESHOLD,
        }
}

/// Returns an empty segment: huge ones are unmapped, others cached (or unmapped when the
/// cache is full).
///
/// # Safety
/// `seg` holds no live block and is on no heap list.
pub unsafe fn release(seg: *mut Segment) {
    // SAFETY: the caller guarantees the segment is empty and unlinked.
    unsafe {
        segment_map::remove(seg as usize);
        (*seg).thread_id.store(0, Ordering::Relaxed);
        (*seg).purged = false;
        (*seg).cached_at = os::now_ms();
        let delay = options::purge_delay_ms();
        if (*seg).kind == SegmentKind::Huge {
            if delay == 0 {
                unmap_cached(seg);
            } else {
                cache_huge(seg);
            }
            return;
        }
        if delay == 0 {
            purge_cached(seg);
        }
        let evict = {
            let mut cache = CACHE.lock();
            cache.push(seg);
            if cache.count > options::segment_cache_limit() {
                let oldest = cache.last();
                cache.remove(oldest);
                oldest
            } else {
                ptr::null_mut()
            }
        };
        if !evict.is_null() {
            unmap_cached(evict);
        }
    }
}

/// Budget of the huge-segment cache in bytes.
fn huge_cache_limit() -> usize {
    options::segment_cache_limit() * SEGMENT_SIZE * 4
}

/// # Safety
/// `seg` is an empty huge segment out of the segment map.
unsafe fn cache_huge(seg: *mut Segment) {
    // SAFETY: the segment is unused; the list is guarded by its lock.
    unsafe {
        let size = (*seg).size;
        if size > huge_cache_limit() {
            unmap_cached(seg);
            return;
        }
        let mut evicted: [*mut Segment; 8] = [ptr::null_mut(); 8];
        let mut n = 0;
        {
            let mut cache = HUGE_CACHE.lock();
            cache.push(seg);
            let mut bytes = HUGE_CACHED_BYTES.fetch_add(size, Ordering::Relaxed) + size;
            while bytes > huge_cache_limit() && n < evicted.len() {
                let oldest = cache.last();
                cache.remove(oldest);
                bytes -= (*oldest).size;
                HUGE_CACHED_BYTES.fetch_sub((*oldest).size, Ordering::Relaxed);
                evicted[n] = oldest;
                n += 1;
            }
        }
        for &e in &evicted[..n] {
            unmap_cached(e);
        }
    }
}

/// The smallest cached huge segment of at least `size` bytes. When it is more than twice
/// that, the part beyond `size` is purged so the reuse does not keep unneeded memory
/// resident.
fn take_huge(size: usize) -> *mut Segment {
    if HUGE_CACHED_BYTES.load(Ordering::Relaxed) == 0 {
        return ptr::null_mut();
    }
    let mut cache = HUGE_CACHE.lock();
    let mut best: *mut Segment = ptr::null_mut();
    let mut s = cache.first;
    while !s.is_null() {
        // SAFETY: cached segments are mapped; we hold the lock.
        unsafe {
            let have = (*s).size;
            if have >= size && (best.is_null() || have < (*best).size) {
                best = s;
            }
            s = (*s).next;
        }
    }
    if !best.is_null() {
        // SAFETY: best is on this list.
        unsafe {
            cache.remove(best);
            HUGE_CACHED_BYTES.fetch_sub((*best).size, Ordering::Relaxed);
        }
    }
    drop(cache);
    // SAFETY: the segment is ours and unused; the purged range is page-aligned and lies
    // beyond what the new block will use.
    unsafe {
        if !best.is_null() && !(*best).purged && (*best).size / 2 > size {
            let ps = os::page_size();
            let keep = (size + ps - 1) & !(ps - 1);
            if os::purge((best as *mut u8).add(keep), (*best).size - keep) {
                stats::purge_call();
                let touched = (*best).touched.min(keep - HEADER_SIZE.min(keep));
                stats::resident(touched as i64 - (*best).touched as i64);
                (*best).touched = touched;
            }
        }
    }
    best
}

/// # Safety
/// `seg` is a cached segment that was removed from its cache.
unsafe fn unmap_cached(seg: *mut Segment) {
    // SAFETY: cached segments hold nothing live; they are out of the segment map.
    let size = unsafe { (*seg).size };
    unsafe {
        stats::resident(-(header_resident() as i64 + (*seg).touched as i64));
        os::unmap(seg as *mut u8, size);
    }
    stats::unmapped(size);
}

/// # Safety
/// `seg` is cached (holds no live block) and owned by the caller or the cache lock holder.
unsafe fn purge_cached(seg: *mut Segment) {
    // SAFETY: everything after the header is unused in a cached segment.
    unsafe {
        if (*seg).purged {
            return;
        }
        let ps = os::page_size();
        let start = (seg as usize + HEADER_SIZE + ps - 1) & !(ps - 1);
        let size = (*seg).size;
        if os::purge(start as *mut u8, seg as usize + size - start) {
            (*seg).purged = true;
            stats::purge_call();
            stats::resident(-((*seg).touched as i64));
            (*seg).touched = 0;
        }
    }
}

/// Purges cached segments that have been idle longer than the purge delay. Cheap when
/// nothing is due: one atomic load.
pub fn purge_cache(now: u64) {
    let delay = options::purge_delay_ms();
    if delay < 0 || (now as usize) < NEXT_CACHE_PURGE.load(Ordering::Relaxed) {
        return;
    }
    NEXT_CACHE_PURGE.store(
        now as usize + (delay as usize / 2).max(1),
        Ordering::Relaxed,
    );
    {
        let cache = CACHE.lock();
        let mut s = cache.first;
        while !s.is_null() {
            // SAFETY: segments on the cache list are mapped and unused; we hold the lock.
            unsafe {
                if !(*s).purged && (*s).cached_at + delay as u64 <= now {
                    purge_cached(s);
                }
                s = (*s).next;
            }
        }
    }
    expire_huge(|s| s.cached_at + delay as u64 <= now);
}

/// Unmaps the cached huge segments `due` selects.
fn expire_huge(due: impl Fn(&Segment) -> bool) {
    if HUGE_CACHED_BYTES.load(Ordering::Relaxed) == 0 {
        return;
    }
    loop {
        let victim = {
            let mut cache = HUGE_CACHE.lock();
            let mut s = cache.first;
            // SAFETY: cached segments are mapped; we hold the lock.
            unsafe {
                while !s.is_null() && !due(&*s) {
                    s = (*s).next;
                }
                if !s.is_null() {
                    cache.remove(s);
                    HUGE_CACHED_BYTES.fetch_sub((*s).size, Ordering::Relaxed);
                }
            }
            s
        };
        if victim.is_null() {
            return;
        }
        // SAFETY: taken off the cache; unused.
        unsafe { unmap_cached(victim) };
    }
}

/// Purges every cached segment now (`malloc_trim`, `memward::collect`).
pub fn purge_cache_all() {
    expire_huge(|_| true);
    let cache = CACHE.lock();
    let mut s = cache.first;
    while !s.is_null() {
        // SAFETY: as in purge_cache.
        unsafe {
            purge_cached(s);
            s = (*s).next;
        }
    }
}

/// Puts a segment whose thread exited on the abandoned list.
///
/// # Safety
/// The caller owned `seg` and has set `ABANDONED` and cleared `thread_id`.
pub unsafe fn abandon(seg: *mut Segment) {
    let mut list = ABANDONED_LIST.lock();
    // SAFETY: the segment is no longer on any heap list.
    unsafe { list.push(seg) };
    ABANDONED_COUNT.fetch_add(1, Ordering::Relaxed);
}

/// Takes one abandoned segment, or null. One relaxed load when there are none.
pub fn take_abandoned() -> *mut Segment {
    if ABANDONED_COUNT.load(Ordering::Relaxed) == 0 {
        return ptr::null_mut();
    }
    let s = ABANDONED_LIST.lock().pop();
    if !s.is_null() {
        ABANDONED_COUNT.fetch_sub(1, Ordering::Relaxed);
    }
    s
}

pub fn abandoned_count() -> usize {
    ABANDONED_COUNT.load(Ordering::Relaxed)
}

/// Pushes a free that arrived while the segment was abandoned; false if the segment has an
/// owner again (the caller then sends the block to that owner's heap).
///
/// # Safety
/// `block` is a live block of `seg` that the caller is freeing.
pub unsafe fn push_abandoned_free(seg: &Segment, block: *mut Block) -> bool {
    let mut head = seg.abandoned_frees.load(Ordering::Acquire);
    loop {
        if head & ABANDONED == 0 {
            return false;
        }
        // SAFETY: the block is being freed; its first word is ours to use as a link.
        unsafe { (*block).next = (head & !ABANDONED) as *mut Block };
        match seg.abandoned_frees.compare_exchange_weak(
            head,
            block as usize | ABANDONED,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => return true,
            Err(h) => head = h,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acquire_lays_out_pages_and_release_caches() {
        let seg = acquire(SegmentKind::Small, ptr::null_mut(), 12345, 0);
        assert!(!seg.is_null());
        assert!(segment_map::contains(seg as usize));
        // SAFETY: seg was just acquired and is used by this test only.
        unsafe {
            let s = &*seg;
            assert_eq!(s.page_count, 64);
            assert_eq!(s.slot_range(0).0, seg as usize + HEADER_SIZE);
            assert_eq!(
                s.slot_range(1),
                (seg as usize + 65536, seg as usize + 131072)
            );
            let p = (seg as *mut u8).add(3 * 65536 + 100);
            assert_eq!(s.page_of(p), s.pages.as_ptr().add(3) as *mut Page);
            assert_eq!(Segment::of(p), seg);
            let (ps, pe) = s.slot_purge_range(0);
            assert_eq!(ps % os::page_size(), 0);
            assert!(ps >= seg as usize + HEADER_SIZE && pe == seg as usize + 65536);
            release(seg);
        }
        assert!(!segment_map::contains(seg as usize));
    }

    #[test]
    fn huge_segments_are_sized_to_fit() {
        let seg = acquire(SegmentKind::Huge, ptr::null_mut(), 1, 9 << 20);
        assert!(!seg.is_null());
        // SAFETY: seg is ours; the last byte is inside the mapping.
        unsafe {
            assert!((*seg).size >= 9 << 20);
            *(seg as *mut u8).add((*seg).size - 1) = 1;
            release(seg);
        }
    }
}
