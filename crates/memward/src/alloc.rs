//! The allocation operations every front end shares, on an explicit heap.
//!
//! Cost of the fast path of `heap_malloc` for sizes up to 1 KiB (x86_64, release): the TLS
//! load of the heap pointer (done by the caller, one `mov` from `fs`), the size test, the
//! direct-table load, the pop (`Page::pop`: load `free`, test it, load its link, store
//! `free`, increment `used`) and the `requested` statistic (a load, an add and a store):
//! 2 conditional branches, about 13 instructions. C `malloc` is a leaf: every way out of
//! the fast path is a tail jump (`heap_malloc_then`), the `ENOMEM` test is in the cold
//! path, so there is no stack frame: 19 instructions in all (21 with a frame before;
//! callgrind, `bench/c/pairs.c fixed`: 85.2 -> 81.2 instructions per 64-byte pair with
//! the same change to `free`). Everything else is in `#[cold]` functions. Alignment: blocks of more than 8
//! bytes are 16-byte aligned; larger alignments use size classes whose blocks happen to be
//! aligned, then over-allocation inside a block (the page is flagged so `free` rounds the
//! pointer back to its block), then runs of large-segment slots or huge segments placed
//! at the alignment (up to 1 GiB, `heap/large.rs`).

use crate::free::{
    free_any, interposed_page, report_free, report_to_hooks, reporting_heap, through_interposer,
};
use crate::heap::Heap;
use crate::hook_table::{self as hooks, Hooks, Kind, MODE_FAST, MODE_HOOKED};
use crate::layout::MAX_ALIGN;
use crate::page::{Page, Popped, FLAG_HAS_ALIGNED, FLAG_HOOKED, FLAG_SAMPLED};
use crate::segment::{Segment, SegmentKind};
use crate::size_class::{bin_of, bin_size, MEDIUM_MAX, SMALL_DIRECT_MAX};
use crate::stats::bump;
use crate::{hardening, os, sampling, thread};
use core::ptr;

/// Alignment of every block larger than 8 bytes.
pub const MIN_ALIGN: usize = 16;

/// Allocates `size` bytes from heap `h`. Null when out of memory.
///
/// # Safety
/// `h` is the calling thread's heap (possibly the empty one) or a first-class heap owned by
/// the calling thread.
#[inline(always)]
pub unsafe fn heap_malloc(h: *mut Heap, size: usize) -> *mut u8 {
    // SAFETY: forwarded precondition.
    unsafe { heap_malloc_then(h, size, heap_malloc_slow) }
}

/// As [`heap_malloc`], and sets `errno` to `ENOMEM` when the result is null (C `malloc`).
///
/// # Safety
/// As for [`heap_malloc`].
#[inline(always)]
pub unsafe fn heap_malloc_or_enomem(h: *mut Heap, size: usize) -> *mut u8 {
    // SAFETY: forwarded precondition.
    unsafe { heap_malloc_then(h, size, heap_malloc_slow_or_enomem) }
}

/// The fast path, then `slow`. Every way out of the fast path is a tail jump (to `slow`
/// or to the corruption report), so a caller that adds nothing after it needs no stack
/// frame: two instructions of every `malloc`.
///
/// # Safety
/// As for [`heap_malloc`]; `slow` serves any request on `h`.
#[inline(always)]
unsafe fn heap_malloc_then(
    h: *mut Heap,
    size: usize,
    slow: unsafe fn(*mut Heap, usize) -> *mut u8,
) -> *mut u8 {
    if size <= SMALL_DIRECT_MAX {
        // SAFETY: h is owned by this thread; the direct table always points at a valid page
        // (the static empty page when the class has none), whose free list is ours.
        unsafe {
            match Page::pop_or_report(Heap::direct_page(h, size)) {
                Popped::Block(b) => {
                    bump(&(*h).counters().requested, size as u64);
                    return b.cast();
                }
                Popped::Corrupted => return hardening::corrupted_free_list_in_malloc(),
                Popped::Empty => {}
            }
        }
    }
    // SAFETY: forwarded precondition.
    unsafe { slow(h, size) }
}

/// # Safety
/// As for [`heap_malloc`].
#[cold]
#[inline(never)]
unsafe fn heap_malloc_slow_or_enomem(h: *mut Heap, size: usize) -> *mut u8 {
    // SAFETY: forwarded precondition.
    let p = unsafe { heap_malloc_slow(h, size) };
    if p.is_null() {
        os::set_errno(libc::ENOMEM);
    }
    p
}

/// Replaces the static empty heap with the thread's real heap. Null if out of memory.
#[inline]
fn ensure_heap(h: *mut Heap) -> *mut Heap {
    if thread::is_empty(h) {
        thread::init_thread_heap()
    } else {
        h
    }
}

/// # Safety
/// As for [`heap_malloc`].
#[cold]
#[inline(never)]
unsafe fn heap_malloc_slow(h: *mut Heap, size: usize) -> *mut u8 {
    let h = ensure_heap(h);
    if h.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: h is a real heap owned by this thread; the `Local` borrow ends before a
    // hook (which may allocate on this heap) runs.
    unsafe {
        let local = (*h).local();
        if local.mode() != MODE_FAST {
            return malloc_in_mode(h, size);
        }
        local.alloc_slow(size)
    }
}

/// The slow path of a heap in hooked or sampled mode.
///
/// # Safety
/// `h` is a real heap owned by this thread, not borrowed elsewhere.
#[cold]
#[inline(never)]
unsafe fn malloc_in_mode(h: *mut Heap, size: usize) -> *mut u8 {
    // SAFETY: per the contract; the `Local` borrow ends before the hook runs.
    unsafe {
        if (*h).local().mode() == MODE_HOOKED {
            return malloc_hooked(h, size);
        }
        let (p, sampled) = (*h).local().alloc_sampled(size);
        if sampled {
            report_sampled(p, |hooks| (hooks.alloc)(p, size));
        }
        p
    }
}

/// Records `p`, a block this thread just allocated and sampled, as a live sampled block
/// (its page flagged and counted, `sampling.rs`) and calls `report` with the hooks,
/// unless the thread is inside a hook or an operation that reports itself (the sample is
/// then dropped) or the hooks are gone.
///
/// # Safety
/// `p` is a live block (or aligned pointer into one) of a heap owned by the calling thread.
#[cold]
unsafe fn report_sampled(p: *mut u8, report: impl FnOnce(&Hooks)) {
    report_to_hooks(|hooks| {
        // SAFETY: `p` is a live block of this thread's heap (the contract), so its page is
        // live and ours.
        if unsafe { sampling::note((*Segment::of(p)).page_of(p), p) } {
            report(hooks);
        }
    });
}

/// Runs `op` (an operation built from others) with reporting suspended on this thread;
/// samples its result by `size` requested bytes on the thread heap's countdown and
/// reports it through `report` if sampled. Sampled mode's [`reported_once`].
///
/// # Safety
/// `op` returns null or a block of a heap owned by the calling thread.
#[cold]
unsafe fn sampled_once(op: impl FnOnce() -> *mut u8, size: usize, report: impl FnOnce(&Hooks, *mut u8)) -> *mut u8 {
    let me = reporting_heap();
    if me.is_null() {
        return op();
    }
    // SAFETY: the calling thread's heap, whose `Local` is not borrowed here; the
    // section ends before returning.
    unsafe {
        let take = (*me).local().count_sample(size);
        let was_in = (*me).enter_hook();
        let p = op();
        (*me).leave_hook(was_in);
        if take && !p.is_null() {
            report_sampled(p, |hooks| report(hooks, p));
        }
        p
    }
}

/// The slow path of a heap in hooked mode (every allocation of such a heap): allocate,
/// then report.
///
/// # Safety
/// `h` is a real heap owned by this thread, not borrowed elsewhere.
#[cold]
#[inline(never)]
unsafe fn malloc_hooked(h: *mut Heap, size: usize) -> *mut u8 {
    // SAFETY: per the contract; the `Local` borrow ends before the hook or interposer
    // (which may allocate on this heap) runs.
    unsafe {
        if !(*h).is_first_class() {
            if let Some(p) = through_interposer(|i| (i.alloc)(size, MIN_ALIGN, false, Kind::Malloc)) {
                return p;
            }
        }
        let p = (*h).local().alloc_queued(size);
        if !p.is_null() {
            report_alloc(p, |hooks| (hooks.alloc)(p, size));
        }
        p
    }
}

/// Memory for the installed interposer's own use (the checker's blocks, with their header
/// and red zones): `size` bytes aligned to [`MIN_ALIGN`] from the calling thread's heap,
/// never reported and never interposed, on a page flagged as hooked, so that a free of a
/// pointer into it reaches the interposer. The same block [`heap_malloc_aligned`] would
/// give inside the interposer's section, without its two rounds of interposer and hook
/// checks (about 200 instructions of the checker's 4 per-allocation engine calls).
///
/// # Safety
/// Called by the installed interposer from inside its section (`through_interposer`), so
/// the calling thread's heap exists and no `Local` borrow of it is alive.
pub unsafe fn interposer_malloc(size: usize) -> *mut u8 {
    let h = thread::current();
    if thread::is_empty(h) {
        // SAFETY: the calling thread's (empty) heap; the aligned path sets it up.
        return unsafe { heap_malloc_aligned(h, size, MIN_ALIGN) };
    }
    // SAFETY: the calling thread's heap, not borrowed (per the contract); blocks of 16
    // bytes and more are 16-byte aligned.
    unsafe {
        let p = (*h).local().alloc_queued(size.max(MIN_ALIGN));
        if !p.is_null() {
            (*(*Segment::of(p)).page_of(p)).set_flag(FLAG_HOOKED, true);
        }
        p
    }
}

/// Marks the page of `p`, a block this thread just allocated, so that its free is reported,
/// then calls `report` with the hooks unless the thread is inside a hook or an operation
/// that reports itself.
///
/// # Safety
/// `p` is a live block (or aligned pointer into one) of a heap owned by the calling thread.
#[cold]
unsafe fn report_alloc(p: *mut u8, report: impl FnOnce(&Hooks)) {
    // SAFETY: the block's page belongs to this thread, which alone writes its flags.
    unsafe { (*(*Segment::of(p)).page_of(p)).set_flag(FLAG_HOOKED, true) };
    report_to_hooks(report);
}

/// Runs `op` with reporting suspended on this thread, then reports its result `p` (if not
/// null) once through `report`: for operations built from other allocations and frees.
///
/// # Safety
/// `op` returns null or a block of a heap owned by the calling thread.
#[cold]
unsafe fn reported_once(op: impl FnOnce() -> *mut u8, report: impl FnOnce(&Hooks, *mut u8)) -> *mut u8 {
    let me = reporting_heap();
    if me.is_null() {
        return op();
    }
    // SAFETY: the calling thread's heap; the section ends before reporting.
    let was_in = unsafe { (*me).enter_hook() };
    let p = op();
    // SAFETY: as above.
    unsafe { (*me).leave_hook(was_in) };
    if !p.is_null() {
        // SAFETY: p was just allocated (or kept) by this thread.
        unsafe { report_alloc(p, |hooks| report(hooks, p)) };
    }
    p
}

/// Allocates `size` bytes aligned to `align` (a power of two). Null when out of memory or
/// when `align` exceeds `MAX_ALIGN` (1 GiB).
///
/// # Safety
/// As for [`heap_malloc`].
pub unsafe fn heap_malloc_aligned(h: *mut Heap, size: usize, align: usize) -> *mut u8 {
    // A thread without a heap yet may be making the process's first allocation, whose
    // setup installs hooks or an interposer: they must see this block whole (not the
    // over-allocation `malloc_aligned` would make).
    if hooks::installed() || thread::is_empty(h) {
        // SAFETY: h is the thread's heap (possibly the empty one) or a first-class heap.
        if !unsafe { (*h).is_first_class() } {
            // SAFETY: the interposer's contract.
            let served =
                through_interposer(|i| unsafe { (i.alloc)(size, align, false, Kind::Malloc) });
            if let Some(p) = served {
                return p;
            }
        }
        // SAFETY: forwarded precondition.
        return unsafe {
            if hooks::sampled() {
                // First-class heaps are not sampled.
                if (*h).is_first_class() {
                    return malloc_aligned(h, size, align);
                }
                sampled_once(|| malloc_aligned(h, size, align), size, |hooks, p| {
                    (hooks.alloc)(p, size)
                })
            } else {
                reported_once(
                    || malloc_aligned(h, size, align),
                    |hooks, p| (hooks.alloc)(p, size),
                )
            }
        };
    }
    // SAFETY: forwarded precondition.
    unsafe { malloc_aligned(h, size, align) }
}

/// [`heap_malloc_aligned`] without reporting.
///
/// # Safety
/// As for [`heap_malloc`].
unsafe fn malloc_aligned(h: *mut Heap, size: usize, align: usize) -> *mut u8 {
    debug_assert!(align.is_power_of_two());
    if align <= MIN_ALIGN {
        // SAFETY: forwarded precondition.
        return unsafe { heap_malloc(h, size.max(align)) };
    }
    if align > MAX_ALIGN {
        return ptr::null_mut();
    }
    let size = size.max(8);
    if size <= MEDIUM_MAX && align <= 64 {
        // Page starts are 64-byte aligned, so a class whose size is a multiple of the
        // alignment yields aligned blocks.
        let s = size.max(align);
        if bin_size(bin_of(s)) % align == 0 {
            // SAFETY: forwarded precondition.
            return unsafe { heap_malloc(h, s) };
        }
    }
    let Some(total) = size.checked_add(align - 1) else {
        return ptr::null_mut();
    };
    if total <= MEDIUM_MAX {
        // SAFETY: forwarded precondition; the block is ours, so we may flag its page.
        unsafe {
            let p = heap_malloc(h, total);
            if p.is_null() {
                return p;
            }
            let aligned = (p as usize + align - 1) & !(align - 1);
            if aligned != p as usize {
                let page = (*Segment::of(p)).page_of(p);
                (*page).set_flag(FLAG_HAS_ALIGNED, true);
            }
            debug_assert_eq!(aligned % align, 0);
            return aligned as *mut u8;
        }
    }
    let h = ensure_heap(h);
    if h.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: h is a real heap owned by this thread.
    unsafe { (*h).local().alloc_large(size, align) }
}

/// A huge block of `size` bytes at `p` such that `p + prefix` is a multiple of `align` (a
/// power of two up to `MAX_ALIGN`) and lies in the block's first segment, so that the
/// engine finds the block from `p + prefix` as from `p`; `prefix` is a multiple of the OS
/// page size, at most a quarter segment. For the checker's backing (`check_env.rs`),
/// whose blocks keep a header of their own before the pointer the program gets: with an
/// ordinary aligned block that pointer would lie a whole alignment past the block's
/// start, beyond the first segment for alignments of a segment or more. Reported as any
/// allocation (so its page is flagged in hooked mode); never routed to the interposer.
/// Null when out of memory or for a bad argument.
///
/// # Safety
/// As for [`heap_malloc`].
#[cfg(feature = "check")]
pub unsafe fn heap_malloc_huge_at(h: *mut Heap, size: usize, align: usize, prefix: usize) -> *mut u8 {
    if !align.is_power_of_two() || align > MAX_ALIGN {
        return ptr::null_mut();
    }
    let op = || {
        let h = ensure_heap(h);
        if h.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: h is a real heap owned by this thread, not borrowed elsewhere.
        unsafe { (*h).local().alloc_huge_at(size, align, prefix) }
    };
    if hooks::installed() || thread::is_empty(h) {
        // SAFETY: `op` returns null or a block of the calling thread's heap.
        return unsafe {
            if hooks::sampled() && !(*h).is_first_class() {
                sampled_once(op, size, |hooks, p| (hooks.alloc)(p, size))
            } else if hooks::sampled() {
                op()
            } else {
                reported_once(op, |hooks, p| (hooks.alloc)(p, size))
            }
        };
    }
    op()
}

/// Allocates with `align` only when it exceeds what plain allocation guarantees.
///
/// # Safety
/// As for [`heap_malloc`].
#[inline(always)]
pub unsafe fn heap_alloc(h: *mut Heap, size: usize, align: usize) -> *mut u8 {
    // SAFETY: forwarded precondition.
    unsafe {
        if align <= 8 || (align <= MIN_ALIGN && size > 8) {
            heap_malloc(h, size)
        } else {
            heap_malloc_aligned(h, size, align)
        }
    }
}

/// Allocates zeroed memory, skipping the clearing when the block is known to be fresh.
///
/// # Safety
/// As for [`heap_malloc`].
pub unsafe fn heap_alloc_zeroed(h: *mut Heap, size: usize, align: usize) -> *mut u8 {
    // SAFETY: forwarded precondition; p is a block of at least `size` bytes just handed out
    // by this thread, so its page is ours to read.
    unsafe {
        let p = heap_alloc(h, size, align);
        if p.is_null() {
            return p;
        }
        // A block of a hooked page may be an interposer's, which wrote into it.
        let page = &*(*Segment::of(p)).page_of(p);
        if page.bin() == 0 {
            if !page.is_zero() || page.flags() & FLAG_HOOKED != 0 {
                ptr::write_bytes(p, 0, size);
            }
        } else if page.free_is_zero()
            && page.flags() & (FLAG_HAS_ALIGNED | FLAG_HOOKED) == 0
            && page.block_size() >= 8
        {
            // Only the free-list link was ever written to a fresh block.
            (p as *mut usize).write(0);
        } else {
            ptr::write_bytes(p, 0, size);
        }
        p
    }
}

/// Frees a block from any thread.
///
/// # Safety
/// `p` is null or a live memward pointer.
#[inline(always)]
pub unsafe fn free(p: *mut u8) {
    if !p.is_null() {
        // SAFETY: forwarded precondition.
        unsafe { free_any(p) }
    }
}

/// Bytes usable at `p`, asked of the interposer when it handed the block out (the
/// program's query; [`usable_size`] is the engine's own).
///
/// # Safety
/// `p` is a live memward pointer (or a live interposer block).
pub unsafe fn usable_size_of_program_block(p: *const u8) -> usize {
    // SAFETY: p is live engine memory (interposer blocks lie inside engine blocks).
    if hooks::installed() && unsafe { interposed_page((*Segment::of(p)).page_of(p)) } {
        // SAFETY: the interposer's contract.
        if let Some(n) = through_interposer(|i| unsafe { (i.usable_size)(p) }) {
            return n;
        }
    }
    // SAFETY: forwarded precondition.
    unsafe { usable_size(p) }
}

/// Bytes usable at `p`.
///
/// # Safety
/// `p` is a live memward pointer.
pub unsafe fn usable_size(p: *const u8) -> usize {
    // SAFETY: a live pointer's page fields (start, block size, aligned flag) are fixed
    // while the block lives.
    unsafe {
        let page = &*(*Segment::of(p)).page_of(p);
        if page.flags() & FLAG_HAS_ALIGNED != 0 {
            let start = page.block_start(p);
            page.block_size() - (p as usize - start as usize)
        } else {
            page.block_size()
        }
    }
}

/// Resizes, in place when the size class or the segment allows, by `mremap` for huge
/// blocks, else by moving. On failure returns null and leaves the old block valid.
///
/// # Safety
/// `h` as for [`heap_malloc`]; `p` is null or a live memward pointer with alignment `align`.
pub unsafe fn heap_realloc(h: *mut Heap, p: *mut u8, new_size: usize, align: usize) -> *mut u8 {
    if p.is_null() {
        // SAFETY: forwarded precondition.
        return unsafe { heap_alloc(h, new_size, align) };
    }
    if hooks::installed() || thread::is_empty(h) {
        // SAFETY: h is the thread's heap (possibly the empty one) or a first-class heap.
        let thread_heap = !thread::is_empty(h) && !unsafe { (*h).is_first_class() };
        if thread_heap && hooks::sampled() {
            // SAFETY: forwarded preconditions; h is the calling thread's own heap.
            return unsafe { realloc_sampled(h, p, new_size, align) };
        }
        // SAFETY: h is the thread's heap (possibly the empty one) or a first-class heap.
        if !unsafe { (*h).is_first_class() } {
            // SAFETY: the interposer's contract; p is not null.
            if let Some(q) = through_interposer(|i| unsafe { (i.realloc)(p, new_size, align) }) {
                return q;
            }
        }
        // SAFETY: forwarded preconditions.
        return unsafe {
            reported_once(
                || realloc(h, p, new_size, align),
                |hooks, q| (hooks.realloc)(p, q, new_size),
            )
        };
    }
    // SAFETY: forwarded preconditions.
    unsafe { realloc(h, p, new_size, align) }
}

/// [`heap_realloc`] in sampled mode: the old block was sampled or not, the new one is
/// sampled by its size as an allocation, and the report says what changed for the
/// profile: `realloc` (both sampled), `free` of the old (only it), `alloc` of the new
/// (only it), nothing (neither). The set of sampled blocks follows.
///
/// # Safety
/// As for [`heap_realloc`], and `p` is not null.
#[cold]
unsafe fn realloc_sampled(h: *mut Heap, p: *mut u8, new_size: usize, align: usize) -> *mut u8 {
    // Every resize of the program comes here, so the common case (neither block
    // sampled) costs a few loads and stores around the resize.
    // SAFETY: forwarded preconditions; h is the calling thread's own heap (its `Local` is
    // not borrowed here), and p's page lives while p does.
    unsafe {
        let heap = &*h;
        if heap.in_hook_now() {
            // Inside a hook or an operation that reports itself: nothing to report.
            return realloc(h, p, new_size, align);
        }
        let take_new = heap.local().count_sample(new_size);
        let page = (*Segment::of(p)).page_of(p);
        let had_old = (*page).flags() & FLAG_SAMPLED != 0 && sampling::contains(p);
        if had_old && !take_new {
            // Reported before the block is given up (its address may be reused at once);
            // if the resize fails the block lives on, unsampled.
            if sampling::forget(page, p) {
                report_free(p);
            }
        }
        // The resize's own allocation and free are not reported (nor sampled).
        heap.set_in_hook(true);
        let q = realloc(h, p, new_size, align);
        heap.set_in_hook(false);
        if q.is_null() || !take_new {
            return q;
        }
        if q == p && had_old {
            if let Some(hooks) = hooks::current() {
                heap.set_in_hook(true);
                (hooks.realloc)(p, q, new_size);
                heap.set_in_hook(false);
            }
        } else if had_old && sampling::moved(p, q) {
            // Moved without a free (a huge block's mapping moved): the entry followed it.
            if let Some(hooks) = hooks::current() {
                heap.set_in_hook(true);
                (hooks.realloc)(p, q, new_size);
                heap.set_in_hook(false);
            }
        } else if had_old {
            // Moved: the free inside `realloc` forgot the old block.
            report_sampled(q, |hooks| (hooks.realloc)(p, q, new_size));
        } else {
            report_sampled(q, |hooks| (hooks.alloc)(q, new_size));
        }
        q
    }
}

/// [`heap_realloc`] of a non-null `p`, without reporting.
///
/// # Safety
/// As for [`heap_realloc`], and `p` is not null.
unsafe fn realloc(h: *mut Heap, p: *mut u8, new_size: usize, align: usize) -> *mut u8 {
    // SAFETY: forwarded preconditions; the large-block resize runs on the owner thread only.
    unsafe {
        let seg = &*Segment::of(p);
        let page = seg.page_of(p);
        let usable = usable_size(p);
        if new_size <= usable && new_size >= usable / 2 {
            return p;
        }
        if (*page).bin() == 0
            && new_size > MEDIUM_MAX
            && seg.thread_id() == os::thread_id()
            && matches!(seg.kind(), SegmentKind::Large | SegmentKind::Huge)
        {
            let q = (*Heap::from_owner((*page).heap()))
                .local()
                .resize_large(page, new_size);
            if !q.is_null() {
                return q;
            }
        }
        let q = if new_size > usable && new_size > MEDIUM_MAX {
            // A growing block: a reused huge mapping keeps its resident excess for it.
            let h = ensure_heap(h);
            if h.is_null() {
                return ptr::null_mut();
            }
            (*h).local().alloc_large_for(new_size, align.max(MIN_ALIGN), true)
        } else {
            heap_alloc(h, new_size, align)
        };
        if q.is_null() {
            return q;
        }
        ptr::copy_nonoverlapping(p, q, usable.min(new_size));
        free_any(p);
        q
    }
}

#[cfg(all(test, feature = "check"))]
mod tests {
    use super::*;
    use crate::layout::SEGMENT_SIZE;
    use crate::{segment_map, thread};

    /// Blocks placed for an interposer's prefix: the aligned address is found to be the
    /// block's (owned, same segment, same page), and the block frees as any.
    #[test]
    fn huge_blocks_placed_for_a_prefix_are_found_from_the_aligned_address() {
        let ps = os::page_size();
        for align in [2 << 20, SEGMENT_SIZE, 16 << 20, 64 << 20] {
            for size in [100, 3 * align] {
                // SAFETY: the calling thread's heap.
                let p = unsafe { heap_malloc_huge_at(thread::current(), size, align, ps) };
                assert!(!p.is_null(), "{align} {size}");
                let user = p.wrapping_add(ps);
                assert_eq!(user as usize % align, 0, "{align} {size}");
                assert!(segment_map::contains(Segment::of(user) as usize));
                assert_eq!(Segment::of(user), Segment::of(p));
                // SAFETY: p is a live block of ours; its segment header is readable.
                unsafe {
                    let s = &*Segment::of(p);
                    assert_eq!(s.page_of(user), s.page_of(p));
                    assert!(usable_size(p) >= size);
                    p.write_bytes(1, size);
                    free(p);
                }
            }
        }
        // A prefix that is no multiple of the page, or too long, and an alignment that is
        // no power of two, are refused.
        let h = thread::current();
        // SAFETY: the calling thread's heap.
        unsafe {
            assert!(heap_malloc_huge_at(h, 100, SEGMENT_SIZE, 48).is_null());
            assert!(heap_malloc_huge_at(h, 100, SEGMENT_SIZE, SEGMENT_SIZE).is_null());
            assert!(heap_malloc_huge_at(h, 100, 3 << 20, ps).is_null());
        }
    }
}
