//! Where segments come from and go to: the OS, a cache of empty segments, a best-fit cache
//! of huge mappings, and the list of segments abandoned by exited threads.
//!
//! Empty segments go to the cache, where they are purged after the purge delay and
//! unmapped beyond `MEMWARD_SEGMENT_CACHE` once idle for a second (`take_idle`); freed huge mappings wait in their own cache
//! for reuse (best fit, excess purged) and are unmapped once idle for the purge delay.
//! Abandoned segments wait on a global list until a heap that needs pages adopts them,
//! their free slots resident while all of them together hold less than the size bound.
//! Each list has its own spin lock; `lock_all`/`unlock_all` take them around `fork()`.
//! While a segment is on one of these lists, the holder of that list's lock plays its
//! owner (see `segment.rs`).

use crate::layout::SEGMENT_SIZE;
use crate::list::List;
use crate::lock::SpinLock;
use crate::page::OwnerHeap;
use crate::segment::{Segment, SegmentKind, HEADER_SIZE};
use crate::{options, os, segment_map, stats};
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Empty normal-size segments kept for reuse.
static CACHE: SpinLock<List<Segment>> = SpinLock::new(List::new());
/// Resident bytes of the unpurged segments in `CACHE` (their `touched`), bounded by
/// `options::free_resident_limit()`.
static CACHE_RESIDENT: AtomicUsize = AtomicUsize::new(0);
/// Recently freed huge segments, newest first: a program that frees and allocates blocks
/// of several MiB in turn reuses the mapping instead of faulting fresh pages in. Entries are
/// unmapped once idle for the purge delay, or when the cache exceeds its byte budget.
static HUGE_CACHE: SpinLock<List<Segment>> = SpinLock::new(List::new());
static HUGE_CACHED_BYTES: AtomicUsize = AtomicUsize::new(0);
/// Segments whose thread exited while they still held live blocks.
static ABANDONED_LIST: SpinLock<List<Segment>> = SpinLock::new(List::new());
static ABANDONED_COUNT: AtomicUsize = AtomicUsize::new(0);
/// Resident bytes of the free slots of abandoned segments, bounded by
/// `options::free_resident_limit()` (see [`abandon`]).
static ABANDONED_RESIDENT: AtomicUsize = AtomicUsize::new(0);
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
    // SAFETY: the caller took the locks with lock_all.
    unsafe {
        ABANDONED_LIST.release();
        HUGE_CACHE.release();
        CACHE.release();
    }
}

/// Huge segments are sized in multiples of this (and of the OS page).
pub const HUGE_GRANULE: usize = 64 * 1024;

/// Gets a small, medium or large segment (`SEGMENT_SIZE` bytes) for `heap`, with the
/// transparent-huge-page hint if it is a small one and `huge_pages` (the heap decides: see
/// `Local::wants_huge_pages`). Null when the OS is out of memory.
pub fn acquire(
    kind: SegmentKind,
    heap: *mut OwnerHeap,
    thread_id: usize,
    huge_pages: bool,
) -> *mut Segment {
    debug_assert!(kind != SegmentKind::Huge);
    let cached = CACHE.lock().pop_front();
    let (seg, zero, fresh) = if cached.is_null() {
        let mut seg = os::map_aligned(SEGMENT_SIZE, SEGMENT_SIZE);
        if seg.is_null() && unmap_all_cached() {
            seg = os::map_aligned(SEGMENT_SIZE, SEGMENT_SIZE);
        }
        (seg.cast::<Segment>(), true, true)
    } else {
        // SAFETY: cached segments are mapped, and this one is ours now.
        let (purged, touched) = unsafe { ((*cached).purged(), (*cached).touched()) };
        CACHE_RESIDENT.fetch_sub(touched, Ordering::Relaxed);
        (cached, purged, false)
    };
    let hint = huge_pages && options::huge_pages() && kind == SegmentKind::Small;
    // SAFETY: a segment just mapped or taken off the cache, ours alone.
    unsafe { finish_acquire(seg, kind, heap, thread_id, SEGMENT_SIZE, zero, fresh, hint) }
}

/// Gets a huge segment of at least `size` bytes for `heap`, mapped so that
/// `segment + SEGMENT_SIZE` is a multiple of `align` when `align > SEGMENT_SIZE` (a block
/// aligned beyond a segment sits one segment above its header). It gets the huge-page
/// hint only when the program's huge blocks have been used densely
/// (`huge_blocks_want_huge_pages`): a big block used here and there would make every
/// touched 4 KiB cost 2 MiB. A cached mapping much larger than `size` has its excess
/// purged unless `keep_excess` (a block that `realloc` is growing will use it). Null when
/// the OS refuses the memory, as glibc's `mmap` would be refused.
pub fn acquire_huge(
    heap: *mut OwnerHeap,
    thread_id: usize,
    size: usize,
    align: usize,
    keep_excess: bool,
) -> *mut Segment {
    let granule = os::page_size().max(HUGE_GRANULE);
    let Some(size) = size.checked_add(granule - 1).map(|s| s & !(granule - 1)) else {
        return ptr::null_mut();
    };
    let cached = if align > SEGMENT_SIZE {
        ptr::null_mut()
    } else {
        take_huge(size, keep_excess)
    };
    // SAFETY: a segment just taken off the cache is ours alone.
    let cached = if !cached.is_null() && unsafe { (*cached).size() } < size {
        // SAFETY: ours, off the cache, smaller than `size` (a multiple of the page size).
        unsafe { grow_cached(cached, size) }
    } else {
        cached
    };
    let (seg, size, zero, fresh) = if cached.is_null() {
        let map = || {
            if align > SEGMENT_SIZE {
                os::map_aligned_at(size, align, SEGMENT_SIZE)
            } else {
                os::map_aligned(size, SEGMENT_SIZE)
            }
        };
        let mut seg = map();
        if seg.is_null() && unmap_all_cached() {
            seg = map();
        }
        (seg.cast::<Segment>(), size, true, true)
    } else {
        // SAFETY: cached segments are mapped, and this one is ours now.
        let (purged, size) = unsafe { ((*cached).purged(), (*cached).size()) };
        (cached, size, purged, false)
    };
    let hint = huge_blocks_want_huge_pages();
    // SAFETY: a segment just mapped or taken off the cache, ours alone.
    unsafe { finish_acquire(seg, SegmentKind::Huge, heap, thread_id, size, zero, fresh, hint) }
}

/// How dense the program's huge blocks were when freed: the number of blocks in a row
/// (up to `DENSE_ENOUGH + 2`) that had at least 3/4 of their pages resident. Zero after a
/// sparse one.
static HUGE_DENSITY: AtomicUsize = AtomicUsize::new(0);
/// Huge blocks allocated while the density asks for the hint (one in `RESAMPLE` is
/// allocated without it, to measure again).
static HUGE_HINTED: AtomicUsize = AtomicUsize::new(0);
const DENSE_ENOUGH: usize = 2;
const RESAMPLE: usize = 16;
/// Pages of a freed block looked at to measure its density (the first 64 MiB).
const DENSITY_SAMPLE: usize = 64 << 20;

/// Whether a new huge block should get the transparent-huge-page hint: only once the
/// program has shown that it fills its huge blocks (`DENSE_ENOUGH` freed blocks in a row
/// were mostly resident), and then not for one block in `RESAMPLE`, so a program that
/// turns to sparse use is noticed. A block used here and there never learns a 2 MiB page
/// per touch from this rule; one filled whole saves 511 of 512 page faults.
fn huge_blocks_want_huge_pages() -> bool {
    options::huge_pages()
        && HUGE_DENSITY.load(Ordering::Relaxed) >= DENSE_ENOUGH
        && HUGE_HINTED.fetch_add(1, Ordering::Relaxed) % RESAMPLE != RESAMPLE - 1
}

/// Measures how much of the block of `s`, a huge segment without the hint being released,
/// was touched (`mincore`), and updates `HUGE_DENSITY`.
///
/// # Safety
/// The caller owns `s`, which holds no live block.
unsafe fn learn_huge_density(s: &Segment) {
    if !options::huge_pages() {
        return;
    }
    // SAFETY: per the contract; the retired page keeps its block's start and size.
    let (start, len) = unsafe {
        let page = &*s.page_at(0);
        (page.start(), page.block_size().min(DENSITY_SAMPLE))
    };
    // SAFETY: the block lies inside the segment's mapping and is page-aligned.
    let Some(resident) = (unsafe { os::resident_pages(start, len) }) else {
        return;
    };
    let pages = len / os::page_size();
    if resident * 4 >= pages * 3 {
        let d = HUGE_DENSITY.load(Ordering::Relaxed);
        HUGE_DENSITY.store((d + 1).min(DENSE_ENOUGH + 2), Ordering::Relaxed);
    } else {
        HUGE_DENSITY.store(0, Ordering::Relaxed);
    }
}

/// Registers a segment just mapped (`fresh`) or taken from a cache and writes its header.
///
/// # Safety
/// `seg` is null or a mapping of `size` bytes aligned to `SEGMENT_SIZE` that holds no live
/// block and that only the caller can reach.
#[allow(clippy::too_many_arguments)]
unsafe fn finish_acquire(
    seg: *mut Segment,
    kind: SegmentKind,
    heap: *mut OwnerHeap,
    thread_id: usize,
    size: usize,
    zero: bool,
    fresh: bool,
    huge: bool,
) -> *mut Segment {
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
                stats::resident(-(header_resident() as i64 + (*seg).touched() as i64));
            }
            os::unmap(seg.cast(), size);
        }
        stats::unmapped(size);
        return ptr::null_mut();
    }
    // Set or withdraw the huge-page hint for this use of the mapping. Where the kernel
    // gives huge pages to every mapping (THP `always`), a fresh mapping that should not
    // have them is told so, or the policy would be the kernel's.
    // SAFETY: a cached header is valid; a fresh mapping has no hint yet.
    let had = !fresh && unsafe { (*seg).huge_pages() };
    let had = had || (fresh && options::huge_pages() && os::thp_always());
    if huge != had {
        // SAFETY: the whole mapping is ours and holds no live block.
        unsafe {
            if huge {
                os::advise_huge_pages(seg.cast(), size);
            } else {
                os::advise_no_huge_pages(seg.cast(), size);
            }
        }
    }
    // What the cache kept resident (a fresh mapping: only the header, written below).
    let kept = if fresh {
        stats::resident(header_resident() as i64);
        0
    } else {
        // SAFETY: the cached header is still valid and ours.
        unsafe { (*seg).touched() }
    };
    // SAFETY: `seg` is a mapping of `size` bytes, aligned, holding nothing, and only we can
    // reach it (out of every cache; its blocks not yet handed out).
    unsafe { Segment::init(seg, kind, heap, thread_id, size, huge, zero, fresh, kept) };
    seg
}

/// Resident bytes of a segment header: the OS pages it occupies.
fn header_resident() -> usize {
    let ps = os::page_size();
    (HEADER_SIZE + ps - 1) & !(ps - 1)
}

/// A heap's in-use bytes from which its new small segments get the
/// transparent-huge-page hint.
///
/// A page fault costs about as much as a thousand allocations, and a 2 MiB page replaces
/// 512 of them. The price is RSS: a partly used 2 MiB page is resident whole (a common
/// complaint about allocators that use THP). The hint is worth it only where segments
/// fill up, which is a property of the heap, not of the process: 400 threads that keep
/// 10 KiB each would otherwise each get a 2 MiB page once the process as a whole holds a
/// lot (the old rule, +805 MiB). A heap that holds 32 MiB fills its segments, so at most
/// its newest segment has a partly used huge page. Medium and large segments never get it:
/// their blocks (8 KiB to 2 MiB) are often buffers touched here and there. Huge blocks get
/// it once the program has shown it fills them (`huge_blocks_want_huge_pages`). Purging
/// part of a huge page splits it, so memory still goes back.
pub const HUGE_PAGE_HEAP_THRESHOLD: i64 = 32 << 20;

/// Returns an empty segment: huge ones are cached for reuse or unmapped, others cached
/// (or unmapped when the cache is full).
///
/// # Safety
/// The caller owns `seg`, which holds no live block and is on no heap list.
pub unsafe fn release(seg: *mut Segment) {
    // SAFETY: the caller guarantees the segment is empty, unlinked and ours.
    unsafe {
        segment_map::remove(seg as usize);
        let s = &*seg;
        s.clear_owner();
        s.set_purged(false);
        s.set_cached_at(os::now_ms());
        let delay = options::purge_delay_ms();
        if s.kind() == SegmentKind::Huge {
            if !s.huge_pages() {
                learn_huge_density(s);
            }
            if delay == 0 {
                unmap_cached(seg);
            } else {
                cache_huge(seg);
            }
            return;
        }
        // The size bound (`MEMWARD_FREE_RESIDENT_MIB`): the cache keeps at most that many
        // resident bytes; past it, a released segment is purged at once.
        if delay == 0
            || CACHE_RESIDENT.load(Ordering::Relaxed) + s.touched() > options::free_resident_limit()
        {
            purge_cached(seg);
        }
        let mut victims = Victims::new();
        {
            let mut cache = CACHE.lock();
            cache.push_front(seg);
            CACHE_RESIDENT.fetch_add(s.touched(), Ordering::Relaxed);
            take_idle(&mut cache, s.cached_at(), &mut victims);
        }
        victims.unmap();
    }
}

/// Cached segments taken off the cache under its lock, unmapped after it.
struct Victims {
    segments: [*mut Segment; 8],
    len: usize,
}

impl Victims {
    fn new() -> Self {
        Victims {
            segments: [ptr::null_mut(); 8],
            len: 0,
        }
    }

    fn unmap(&self) {
        for &v in &self.segments[..self.len] {
            // SAFETY: taken off the cache; unused.
            unsafe { unmap_cached(v) };
        }
    }
}

/// Segments the cache may hold beyond `MEMWARD_SEGMENT_CACHE` for `CACHE_IDLE_MS`: when
/// hundreds of threads start and exit together, each round's segments are there for the
/// next round's threads, instead of a `munmap` as each thread exits and an `mmap` as the
/// next one starts (`threads-keep`, 400 threads at a time: 1.27 s against 0.89 s). They
/// are purged like the others (the cache keeps at most `MEMWARD_FREE_RESIDENT_MIB`
/// resident), so they hold address space only.
const CACHE_BURST_MAX: usize = 1024;
/// How long a segment beyond `MEMWARD_SEGMENT_CACHE` stays in the cache unused.
const CACHE_IDLE_MS: u64 = 1000;

/// Takes the oldest cached segments off `cache` (a few per call, so no call holds the
/// lock long) while it holds more than `MEMWARD_SEGMENT_CACHE` and they have been idle for
/// `CACHE_IDLE_MS` (or it holds more than `CACHE_BURST_MAX`).
fn take_idle(cache: &mut List<Segment>, now: u64, victims: &mut Victims) {
    let keep = options::segment_cache_limit();
    let most = if keep == 0 { 0 } else { keep.max(CACHE_BURST_MAX) };
    while victims.len < victims.segments.len() && cache.len() > keep {
        let oldest = cache.last();
        // SAFETY: cached segments are mapped and unused; the caller holds the cache's lock.
        unsafe {
            if cache.len() <= most && (*oldest).cached_at() + CACHE_IDLE_MS > now {
                break;
            }
            cache.remove(oldest);
            CACHE_RESIDENT.fetch_sub((*oldest).touched(), Ordering::Relaxed);
        }
        victims.segments[victims.len] = oldest;
        victims.len += 1;
    }
}

/// Unmaps every cached segment and huge mapping: for a mapping the OS just refused, which
/// the address space they hold may have been needed for (`ulimit -v`).
fn unmap_all_cached() -> bool {
    let mut any = HUGE_CACHED_BYTES.load(Ordering::Relaxed) != 0;
    expire_huge(|_| true);
    loop {
        let seg = {
            let mut cache = CACHE.lock();
            let seg = cache.pop_front();
            if !seg.is_null() {
                // SAFETY: cached segments are mapped and unused; we hold the lock.
                CACHE_RESIDENT.fetch_sub(unsafe { (*seg).touched() }, Ordering::Relaxed);
            }
            seg
        };
        if seg.is_null() {
            return any;
        }
        any = true;
        // SAFETY: taken off the cache; unused.
        unsafe { unmap_cached(seg) };
    }
}

/// Budget of the huge-segment cache in bytes.
fn huge_cache_limit() -> usize {
    options::segment_cache_limit() * SEGMENT_SIZE * 4
}

/// # Safety
/// `seg` is an empty huge segment out of the segment map, owned by the caller.
unsafe fn cache_huge(seg: *mut Segment) {
    // SAFETY: the segment is unused; the list is guarded by its lock.
    unsafe {
        let size = (*seg).size();
        if size > huge_cache_limit() {
            unmap_cached(seg);
            return;
        }
        let mut evicted: [*mut Segment; 8] = [ptr::null_mut(); 8];
        let mut n = 0;
        {
            let mut cache = HUGE_CACHE.lock();
            cache.push_front(seg);
            let mut bytes = HUGE_CACHED_BYTES.fetch_add(size, Ordering::Relaxed) + size;
            while bytes > huge_cache_limit() && n < evicted.len() {
                let oldest = cache.last();
                cache.remove(oldest);
                let oldest_size = (*oldest).size();
                bytes -= oldest_size;
                HUGE_CACHED_BYTES.fetch_sub(oldest_size, Ordering::Relaxed);
                evicted[n] = oldest;
                n += 1;
            }
        }
        for &e in &evicted[..n] {
            unmap_cached(e);
        }
    }
}

/// Grows `seg`, a huge segment just taken off the cache, to `size` bytes with `mremap`:
/// in place when the address space after it is free, else moved to a new aligned place
/// (page tables move, no byte is copied). Its resident pages serve the new block, so a
/// program that frees and allocates huge blocks of varying sizes pays page faults only
/// for the growth (mimalloc reuses its arenas' memory for any size the same way). Null
/// when the kernel refuses; the segment is then unmapped.
///
/// # Safety
/// `seg` is a cached huge segment removed from the cache, owned by the caller, smaller
/// than `size` (a multiple of the page size).
unsafe fn grow_cached(seg: *mut Segment, size: usize) -> *mut Segment {
    // SAFETY: per the contract: one whole mapping of ours, holding nothing live, out of
    // the segment map and off every list, so moving it disturbs no one.
    unsafe {
        let old = (*seg).size();
        let grown = if os::remap_in_place(seg.cast(), old, size) {
            seg
        } else {
            let target = os::reserve_aligned_at(size, SEGMENT_SIZE, 0);
            if target.is_null() || !os::remap_to(seg.cast(), old, size, target) {
                if !target.is_null() {
                    os::unmap(target, size);
                }
                unmap_cached(seg);
                return ptr::null_mut();
            }
            target.cast::<Segment>()
        };
        (*grown).set_size(size);
        stats::mapped(size - old);
        grown
    }
}

/// Resident bytes beyond its size that a huge block may inherit from the cached mapping it
/// reuses (also up to its own size): a program churning huge blocks of varying sizes then
/// finds the pages resident when a block is freed and the mapping serves a bigger one
/// (purging the excess at once made such a program fault its pages in again and again:
/// the `large` workload, 8x the page faults), while a 1 GiB mapping reused for a 10 MiB
/// block does not keep 1 GiB resident.
const HUGE_EXCESS_KEPT: usize = 64 << 20;

/// The smallest cached huge segment of at least `size` bytes, or else the largest one
/// (for [`grow_cached`]). Resident excess beyond [`HUGE_EXCESS_KEPT`] (and beyond `size`)
/// is purged, unless `keep_excess` (a growing `realloc`).
fn take_huge(size: usize, keep_excess: bool) -> *mut Segment {
    if HUGE_CACHED_BYTES.load(Ordering::Relaxed) == 0 {
        return ptr::null_mut();
    }
    let mut cache = HUGE_CACHE.lock();
    let mut best: *mut Segment = ptr::null_mut();
    let mut largest: *mut Segment = ptr::null_mut();
    let mut s = cache.first();
    while !s.is_null() {
        // SAFETY: cached segments are mapped and on this list; we hold the lock.
        unsafe {
            let have = (*s).size();
            if have >= size && (best.is_null() || have < (*best).size()) {
                best = s;
            }
            if largest.is_null() || have > (*largest).size() {
                largest = s;
            }
            s = cache.next(s);
        }
    }
    if best.is_null() {
        best = largest;
    }
    if !best.is_null() {
        // SAFETY: best is on this list.
        unsafe {
            cache.remove(best);
            HUGE_CACHED_BYTES.fetch_sub((*best).size(), Ordering::Relaxed);
        }
    }
    drop(cache);
    // SAFETY: the segment is ours and unused; the purged range is page-aligned and lies
    // beyond what the new block will use.
    unsafe {
        if !best.is_null() && !keep_excess && !(*best).purged() {
            let ps = os::page_size();
            let keep = (size + ps - 1) & !(ps - 1);
            let excess = (*best).size().saturating_sub(keep);
            if excess > HUGE_EXCESS_KEPT.max(size) && os::purge(best.cast::<u8>().add(keep), excess) {
                stats::purge_call();
                let before = (*best).touched();
                let touched = before.min(keep - HEADER_SIZE.min(keep));
                stats::resident(touched as i64 - before as i64);
                (*best).set_touched(touched);
            }
        }
    }
    best
}

/// # Safety
/// `seg` is a cached segment that was removed from its cache.
unsafe fn unmap_cached(seg: *mut Segment) {
    // SAFETY: cached segments hold nothing live and are out of the segment map.
    unsafe {
        let size = (*seg).size();
        stats::resident(-(header_resident() as i64 + (*seg).touched() as i64));
        os::unmap(seg.cast(), size);
        stats::unmapped(size);
    }
}

/// Purges a segment on `CACHE`, keeping `CACHE_RESIDENT` in step.
///
/// # Safety
/// `seg` is on `CACHE`, whose lock the caller holds.
unsafe fn purge_in_cache(seg: *mut Segment) {
    // SAFETY: per the contract; purging sets `touched` to zero when it succeeds.
    unsafe {
        let before = (*seg).touched();
        purge_cached(seg);
        CACHE_RESIDENT.fetch_sub(before - (*seg).touched(), Ordering::Relaxed);
    }
}

/// # Safety
/// `seg` is cached (holds no live block) and owned by the caller or the cache lock holder.
unsafe fn purge_cached(seg: *mut Segment) {
    // SAFETY: everything after the header is unused in a cached segment.
    unsafe {
        let s = &*seg;
        if s.purged() {
            return;
        }
        let ps = os::page_size();
        let start = (seg as usize + HEADER_SIZE + ps - 1) & !(ps - 1);
        if os::purge(start as *mut u8, seg as usize + s.size() - start) {
            s.set_purged(true);
            stats::purge_call();
            stats::resident(-(s.touched() as i64));
            s.set_touched(0);
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
    // Segments due are taken off the cache and purged outside its lock: when hundreds of
    // threads exit together, each releasing a segment, a walk that purged under the lock
    // kept them all waiting (600,000 `sched_yield` calls in `threads-keep`). A contended
    // cache is left for a later call.
    let mut due = Victims::new();
    let mut victims = Victims::new();
    if let Some(mut cache) = CACHE.try_lock() {
        let mut s = cache.first();
        while !s.is_null() && due.len < due.segments.len() {
            // SAFETY: segments on the cache list are mapped and unused; we hold the lock.
            unsafe {
                let next = cache.next(s);
                if !(*s).purged() && (*s).cached_at() + delay as u64 <= now {
                    cache.remove(s);
                    CACHE_RESIDENT.fetch_sub((*s).touched(), Ordering::Relaxed);
                    due.segments[due.len] = s;
                    due.len += 1;
                }
                s = next;
            }
        }
        take_idle(&mut cache, now, &mut victims);
    }
    victims.unmap();
    if due.len > 0 {
        for &s in &due.segments[..due.len] {
            // SAFETY: taken off the cache; unused and ours until it goes back.
            unsafe { purge_cached(s) };
        }
        let mut cache = CACHE.lock();
        for &s in &due.segments[..due.len] {
            // SAFETY: ours, off every list; purged, so it adds nothing resident.
            unsafe {
                cache.push_back(s);
                CACHE_RESIDENT.fetch_add((*s).touched(), Ordering::Relaxed);
            }
        }
    }
    expire_huge(|s| {
        // SAFETY: `expire_huge` calls this on cached segments under the huge cache's lock.
        let cached_at = unsafe { s.cached_at() };
        cached_at + delay as u64 <= now
    });
}

/// Unmaps the cached huge segments `due` selects.
fn expire_huge(due: impl Fn(&Segment) -> bool) {
    if HUGE_CACHED_BYTES.load(Ordering::Relaxed) == 0 {
        return;
    }
    loop {
        let victim = {
            let mut cache = HUGE_CACHE.lock();
            let mut s = cache.first();
            // SAFETY: cached segments are mapped and on this list; we hold the lock.
            unsafe {
                while !s.is_null() && !due(&*s) {
                    s = cache.next(s);
                }
                if !s.is_null() {
                    cache.remove(s);
                    HUGE_CACHED_BYTES.fetch_sub((*s).size(), Ordering::Relaxed);
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

/// Purges every cached segment now (`malloc_trim`, `memward::raw::collect`).
pub fn purge_cache_all() {
    expire_huge(|_| true);
    let cache = CACHE.lock();
    let mut s = cache.first();
    while !s.is_null() {
        // SAFETY: as in purge_cache.
        unsafe {
            purge_in_cache(s);
            s = cache.next(s);
        }
    }
}

/// Puts a segment whose thread exited on the abandoned list.
///
/// # Safety
/// The caller owned `seg`, has called `Segment::mark_abandoned`, and the segment is on no
/// heap list.
pub unsafe fn abandon(seg: *mut Segment) {
    let mut list = ABANDONED_LIST.lock();
    // SAFETY: the segment is on no other list.
    unsafe {
        list.push_front(seg);
        (*seg).set_on_abandoned_list(true);
    }
    ABANDONED_COUNT.fetch_add(1, Ordering::Relaxed);
}

/// Decides, for a segment about to be abandoned, whether its free slots stay resident or
/// are purged now.
///
/// # Safety
/// The caller owns `seg` and is about to abandon it.
pub unsafe fn budget_abandoned(seg: *mut Segment) {
    // Free slots stay resident for the thread that adopts the segment (the next thread
    // of a program that starts and ends threads in waves takes warm pages instead of
    // faulting fresh ones in: `thread-exit` faulted 22,000 times against 6,400), as long
    // as abandoned segments hold at most the size bound together; past it they are purged,
    // so threads that each leave a block behind cannot pile up resident memory.
    // SAFETY: the caller owns the segment until it is on the list.
    unsafe {
        let s = &*seg;
        let bytes = s.free_resident_bytes();
        let before = ABANDONED_RESIDENT.fetch_add(bytes, Ordering::Relaxed);
        if options::purge_delay_ms() == 0 || before + bytes > options::free_resident_limit() {
            ABANDONED_RESIDENT.fetch_sub(bytes, Ordering::Relaxed);
            s.purge_free_slots();
            s.set_abandoned_resident(0);
        } else {
            s.set_abandoned_resident(bytes);
        }
    }
}

/// Takes one abandoned segment, or null. One relaxed load when there are none.
pub fn take_abandoned() -> *mut Segment {
    if ABANDONED_COUNT.load(Ordering::Relaxed) == 0 {
        return ptr::null_mut();
    }
    let s = {
        let mut list = ABANDONED_LIST.lock();
        let s = list.pop_front();
        if !s.is_null() {
            // SAFETY: segments on the list are mapped; we hold its lock.
            unsafe {
                (*s).set_on_abandoned_list(false);
                leave_abandoned(s);
            }
        }
        s
    };
    if !s.is_null() {
        ABANDONED_COUNT.fetch_sub(1, Ordering::Relaxed);
    }
    s
}

/// Takes `seg` off the abandoned list if it is still there (no heap adopted it since);
/// true if the caller now owns it.
///
/// # Safety
/// `seg` is a mapped segment: the caller is freeing one of its live blocks.
pub unsafe fn take_if_abandoned(seg: *mut Segment) -> bool {
    let mut list = ABANDONED_LIST.lock();
    // SAFETY: the flag is only read and written under the lock, and set exactly while the
    // segment is on the list.
    unsafe {
        if !(*seg).on_abandoned_list() {
            return false;
        }
        list.remove(seg);
        (*seg).set_on_abandoned_list(false);
        leave_abandoned(seg);
    }
    drop(list);
    ABANDONED_COUNT.fetch_sub(1, Ordering::Relaxed);
    true
}

/// `seg` was just taken off the abandoned list: its resident free slots leave the
/// abandoned budget (its new owner's purge set takes them).
///
/// # Safety
/// The caller holds the abandoned list's lock and took `seg` off it.
unsafe fn leave_abandoned(seg: *mut Segment) {
    // SAFETY: per the contract, the segment is the caller's now.
    unsafe {
        ABANDONED_RESIDENT.fetch_sub((*seg).abandoned_resident(), Ordering::Relaxed);
        (*seg).set_abandoned_resident(0);
    }
}

pub fn abandoned_count() -> usize {
    ABANDONED_COUNT.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::Page;

    #[test]
    fn acquire_lays_out_pages_and_release_caches() {
        let seg = acquire(SegmentKind::Small, ptr::null_mut(), 12345, false);
        assert!(!seg.is_null());
        assert!(segment_map::contains(seg as usize));
        // SAFETY: seg was just acquired and is used by this test only.
        unsafe {
            let s = &*seg;
            assert_eq!(s.page_count(), 64);
            assert_eq!(s.thread_id(), 12345);
            assert_eq!(s.slot_range(0).0, seg as usize + HEADER_SIZE);
            assert_eq!(
                s.slot_range(1),
                (seg as usize + 65536, seg as usize + 131072)
            );
            let p = seg.cast::<u8>().add(3 * 65536 + 100);
            assert_eq!(s.page_of(p), s.page_at(0).add(3));
            assert_eq!(Segment::of(p), seg);
            let (ps, pe) = s.slot_purge_range(0);
            assert_eq!(ps % os::page_size(), 0);
            assert!(ps >= seg as usize + HEADER_SIZE && pe == seg as usize + 65536);
            // Slot accounting keeps used_pages + |free slots| == page_count.
            let (i, full) = s.take_slot().unwrap();
            assert_eq!((i, full), (0, false));
            let page: *mut Page = s.page_at(i);
            let (start, end) = s.slot_range(i);
            (*page).init(ptr::null_mut(), 5, 64, start as *mut u8, end);
            s.check();
            (*page).retire();
            assert_eq!(s.give_back_slot(i), 0);
            s.check();
            release(seg);
        }
        assert!(!segment_map::contains(seg as usize));
    }

    #[test]
    fn huge_segments_are_sized_to_fit() {
        let seg = acquire_huge(ptr::null_mut(), 1, 9 << 20, SEGMENT_SIZE, false);
        assert!(!seg.is_null());
        // SAFETY: seg is ours; the last byte is inside the mapping.
        unsafe {
            assert!((*seg).size() >= 9 << 20);
            *seg.cast::<u8>().add((*seg).size() - 1) = 1;
            release(seg);
        }
    }
}

