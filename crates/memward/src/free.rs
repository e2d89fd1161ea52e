//! The free operation every front end shares (beside `alloc.rs`, as mimalloc keeps
//! `free.c` beside `alloc.c`).
//!
//! Cost of the owner fast path, `free_any` + `free_owned` (x86_64, release): mask to the
//! segment header, load and compare its `thread_id` with the thread id (one `mov` from
//! `fs`), shift to the page index, load the page flags and test them, then push onto
//! `local_free` and decrement `used` (two loads, three stores), and one test of `used`: 3
//! conditional branches, about 20 instructions. The hardening checks (docs/engine-hardening.md)
//! add 11: the block-start test (a multiply), the looks-free test (a load, an xor, a
//! test) and the link encoding, for 5 conditional branches. The C `free` adds the
//! segment-map check for foreign pointers (`raw::owns`, about 8 instructions). Measured
//! (callgrind, `bench/c/pairs.c fixed`, 64-byte pairs): 69.8 instructions per
//! malloc+free pair before hardening, 84.8 after (with the 4 it adds to `malloc`). The C
//! `free` sends NULL and foreign pointers to an out-of-line function by a tail jump, so it
//! makes no call that returns and sets up no stack frame (two instructions fewer).
//!
//! Everything else is out of line: a page that empties or has flags set (full, aligned
//! pointers, a large block) goes to `free_owned_slow`; a block of another thread to
//! `free_remote`, which is `#[inline(never)]` but not `#[cold]`, since in producer/consumer
//! programs every free takes it.

use crate::heap::remote::{route_remote_free, RemoteRoute};
use crate::heap::Heap;
use crate::list::Block;
use crate::page::{Page, FLAG_HOOKED, FLAG_SAMPLED, FLAG_UNUSED};
use crate::segment::Segment;
use crate::hook_table::{self as hooks, Hooks, Interposer, Kind};
use crate::{os, sampling, thread};

/// Frees `p` from any thread: a push onto the page's local list when the calling thread owns
/// it, else a remote free.
///
/// # Safety
/// `p` was returned by memward and is not freed twice.
#[inline]
pub unsafe fn free_any(p: *mut u8) {
    // SAFETY: p is a live memward pointer, so its segment header is mapped; `&Segment` is
    // sound from any thread (its mutable parts are atomics and cells).
    unsafe {
        let seg = &*Segment::of(p);
        if seg.thread_id() == os::thread_id() {
            free_owned(seg.page_of(p), p);
        } else {
            free_remote(seg, p);
        }
    }
}

/// Owner-thread free into `page` (fast path inline, the rest out of line). The fast path
/// takes a block start (one multiply, `Page::is_block_start`) that does not look free
/// (three instructions, `Page::looks_free`) on a page with no flags; anything else,
/// including every error, goes to the slow path, which checks again and aborts
/// (`hardening.rs`). The fast path makes no call that returns, so it needs no stack frame.
///
/// # Safety
/// The calling thread owns `page`'s segment and `p` points into it.
#[inline(always)]
pub unsafe fn free_owned(page: *mut Page, p: *mut u8) {
    // SAFETY: the page belongs to this thread; with no flags set it is a page in use with
    // no aligned pointers, and p is one of its block starts (checked) that is live.
    unsafe {
        let b = p.cast::<Block>();
        if (*page).flags() == 0 && (*page).is_block_start(p) && !Page::looks_free(page, b) {
            let used = Page::push_local_live(page, b);
            // The first page of a class queue is kept when it empties, which is the
            // common case of a block allocated and freed in turn: no call.
            if used == 0 && !(*page).is_queue_head() {
                page_emptied(page);
            }
            return;
        }
        free_owned_slow(page, p)
    }
}

/// Frees a block the installed interposer took for its own use (`interposer_malloc`, or
/// another engine call inside its section): straight into its page when the calling
/// thread owns it. The ordinary free finds the page hooked and asks whether the
/// interposer or the hooks want the block, which inside the section they never do: about
/// 90 instructions of every checked free.
///
/// # Safety
/// `p` is null or a live engine block that the interposer owns, not freed twice.
pub unsafe fn interposer_free(p: *mut u8) {
    if p.is_null() {
        return;
    }
    // SAFETY: p is a live engine block, so its segment header is mapped; a page of a
    // segment this thread owns is this thread's to free into (sampled pages, which must
    // leave the sample set too, take the ordinary path).
    unsafe {
        let seg = &*Segment::of(p);
        if seg.thread_id() == os::thread_id() {
            let page = seg.page_of(p);
            if (*page).flags() & FLAG_SAMPLED == 0 {
                owner_local(page).free_in_page(page, p);
                return;
            }
        }
        free_any(p)
    }
}

/// The heap that owns `page`.
///
/// # Safety
/// `page` is a live page of a segment the calling thread owns.
#[inline]
unsafe fn owner_local<'a>(page: *mut Page) -> &'a mut crate::heap::Local {
    // SAFETY: the owner is one of this thread's heaps, and no `Local` is borrowed on the
    // free path (frees are not called from inside the allocator's heap methods).
    unsafe { (*Heap::from_owner((*page).heap())).local() }
}

#[cold]
#[inline(never)]
unsafe fn page_emptied(page: *mut Page) {
    // SAFETY: the page belongs to this thread and has no live block.
    unsafe { owner_local(page).page_emptied(page) }
}

#[cold]
#[inline(never)]
unsafe fn free_owned_slow(page: *mut Page, p: *mut u8) {
    // SAFETY: as for free_owned; the heap's Local handles queue changes.
    unsafe {
        let flags = (*page).flags();
        if flags & (FLAG_HOOKED | FLAG_UNUSED | FLAG_SAMPLED) != 0 {
            if flags & (FLAG_HOOKED | FLAG_UNUSED) != 0
                && interposed_page(page)
                && through_interposer(|i| (i.free)(p, Kind::Malloc, 0)).is_some()
            {
                return;
            }
            // A sampled block leaves the set even when its free is not reported (inside
            // an operation that reports itself).
            let sampled = flags & FLAG_SAMPLED != 0 && sampling::forget(page, p);
            if flags & FLAG_HOOKED != 0 || sampled {
                report_free(p);
            }
        }
        owner_local(page).free_in_page(page, p)
    }
}

/// The calling thread's own heap, created if needed (null when out of memory).
#[inline]
pub(crate) fn reporting_heap() -> *mut Heap {
    let me = thread::current();
    if thread::is_empty(me) {
        thread::init_thread_heap()
    } else {
        me
    }
}

/// Runs `op` with the installed interposer in a section where the calling thread's own
/// allocations and frees are served by the engine (and not reported to hooks). `None`
/// when no interposer is installed or the thread is inside such a section (or a hook)
/// already: then the engine serves the operation itself.
#[cold]
pub(crate) fn through_interposer<R>(op: impl FnOnce(&'static Interposer) -> R) -> Option<R> {
    // The heap first: creating it runs the process setup that installs the interposer,
    // which a program whose first call is a `free` of a foreign pointer has not run yet.
    let me = reporting_heap();
    let i = hooks::interposer()?;
    if me.is_null() {
        return None;
    }
    // SAFETY: the calling thread's heap; heaps are never unmapped. The section is left
    // only if this call entered it.
    unsafe {
        if (*me).enter_hook() {
            return None;
        }
        let r = op(i);
        (*me).leave_hook(false);
        Some(r)
    }
}

/// May a block of `page` have come from the interposer? Blocks handed out while heaps
/// run in hooked mode flag their page; first-class heaps are never interposed.
///
/// # Safety
/// `page` is a live page.
#[cold]
pub(crate) unsafe fn interposed_page(page: *const Page) -> bool {
    // SAFETY: a live page's flags and owner are readable from any thread (atomics and
    // fields fixed while it has blocks); heaps are never unmapped.
    unsafe {
        let flags = (*page).flags();
        // A slot that is no page's start: an interposer's pointer may lie there, inside
        // a large block whose run began in an earlier slot (the interposer puts its
        // header before the pointer it hands out).
        if flags & FLAG_UNUSED != 0 {
            return hooks::interposer().is_some();
        }
        if flags & FLAG_HOOKED == 0 {
            return false;
        }
        let owner = (*page).heap();
        owner.is_null() || !(*Heap::from_owner(owner)).is_first_class()
    }
}

/// Runs `report` with the installed hooks inside the calling thread's hook section,
/// unless no hooks are installed, the thread has no heap, or it is inside a hook or an
/// operation that reports itself already. Every report of the engine goes through here.
#[cold]
pub(crate) fn report_to_hooks(report: impl FnOnce(&Hooks)) {
    let Some(hooks) = hooks::current() else {
        return;
    };
    let me = reporting_heap();
    if me.is_null() {
        return;
    }
    // SAFETY: the calling thread's heap; heaps are never unmapped.
    unsafe {
        if !(*me).enter_hook() {
            report(hooks);
            (*me).leave_hook(false);
        }
    }
}

/// Tells the hooks that `p` is about to be freed, unless the thread is inside a hook or
/// an operation that reports itself.
#[cold]
pub(crate) fn report_free(p: *mut u8) {
    // SAFETY: the hook's contract is the installer's (`hooks::Hooks`).
    report_to_hooks(|hooks| unsafe { (hooks.free)(p) });
}

/// The hooks' part of a free from another thread: the interposer's block goes to it
/// (true: nothing left to do); a block of a hooked heap is reported, a sampled one
/// forgotten and reported.
///
/// # Safety
/// `p` is a live block of `seg`, being freed by the caller.
#[cold]
unsafe fn watched_remote_free(seg: &Segment, p: *mut u8) -> bool {
    let page = seg.page_of(p);
    let installed = hooks::installed();
    // SAFETY: p is live, so its page is; the interposer's contract.
    unsafe {
        if installed
            && interposed_page(page)
            && through_interposer(|i| (i.free)(p, Kind::Malloc, 0)).is_some()
        {
            return true;
        }
        let sampled = (*page).flags() & FLAG_SAMPLED != 0 && sampling::forget(page, p);
        if sampled || (installed && !hooks::sampled()) {
            report_free(p);
        }
    }
    false
}

/// A free from a thread that does not own the segment: to the abandoned segment, the
/// owner's queue, or this thread's outbox (`heap/remote.rs`).
///
/// # Safety
/// `p` is a live block of `seg`, being freed by the caller.
#[inline(never)]
pub unsafe fn free_remote(seg: &Segment, p: *mut u8) {
    // SAFETY: forwarded contract.
    if hooks::watching_frees() && unsafe { watched_remote_free(seg, p) } {
        return;
    }
    let me = thread::current();
    if !thread::is_empty(me) {
        // SAFETY: the calling thread's heap; no `Local` is borrowed on the free path.
        unsafe { (*me).local().free_remote(seg, p) };
        return;
    }
    // SAFETY: forwarded contract; heaps are never unmapped.
    unsafe {
        match route_remote_free(seg, p, false) {
            RemoteRoute::Abandoned { visit } => {
                if visit {
                    let me = thread::init_thread_heap();
                    if !me.is_null() {
                        (*me).local().visit_abandoned(core::ptr::from_ref(seg).cast_mut());
                    }
                }
            }
            RemoteRoute::Direct(owner) => (*owner).push_remote(p),
            RemoteRoute::Outbox(owner) => {
                // A thread that only frees gets a heap too, for its outbox and exit hook.
                let me = thread::init_thread_heap();
                if me.is_null() {
                    (*owner).push_remote(p);
                } else {
                    (*me).local().push_outbox(owner, p);
                }
            }
        }
    }
}
