//! Allocation and free stacks: walked with memward-profile's `.eh_frame` unwinder (its
//! rule table, read without a lock, takes a frame seen before in a slot load and one or
//! two stack reads) and stored once each in the stack depot (`depot`), so a block's
//! header names a stack with a 32-bit id.
//!
//! Threads walk and find their stacks at once. One spin lock guards the unwinder's
//! slow path (a return address seen for the first time is learned from framehop; a
//! frame the table cannot describe is unwound by framehop) and additions to the depot.
//! The modules are scanned once, at the start; a module loaded later is learned by the
//! first walk that meets one of its frames (memward-profile's `unwind`, with glibc's
//! lock-free `_dl_find_object`), so no capture takes the loader's lock, which a thread
//! inside `dlopen` holds while it allocates.
//!
//! Stacks are captured as deep as reports print them (`MEMWARD_CHECK_STACK_DEPTH`, 30
//! by default, AddressSanitizer's `malloc_context_size`; 16 frames more where the
//! allocator's own leading frames are not dropped by the walk, as in a program linked with
//! memward): CPython calls `malloc` from 64 frames deep and more, and walking all 64 was
//! a sixth of its checked run. Each thread keeps its last eight walks (memward-profile's
//! `WalkCache`): a capture that would repeat one, checked by rereading the stack words
//! that walk read, returns its id without walking or hashing. A module change starts a
//! new generation of kept walks (`module_generation`).

use crate::depot::{self, Depot};
use crate::threads;
use memward_profile::shared::{
    generation_in, module_generation, Scan, SpinLock, Stacks, WalkCache, Walked, Walker, MAX_FRAMES,
};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// What captures use without a lock: the walk's view of the unwinder, and the depot.
struct Shared {
    walker: Walker,
    depot: Depot,
}

/// The unwinder, for the steps its rule table cannot take (and the modules they find).
static UNWINDER: SpinLock<Option<Stacks>> = SpinLock::new(None);
static SHARED: OnceLock<Shared> = OnceLock::new();
/// How many frames a capture walks at most (`set_depth`).
static CAPTURE_FRAMES: AtomicUsize = AtomicUsize::new(MAX_FRAMES);
/// Whether the walk drops the allocator's own leading frames (it is a shared library).
static SKIPS_OWN: AtomicBool = AtomicBool::new(false);
/// The writable segments (data and bss) of the library the checker is in, when that is
/// a shared library (`libmemward.so`): the allocator's and the checker's statics.
static OWN_DATA: OnceLock<Vec<(usize, usize)>> = OnceLock::new();

/// Sets up the unwinder with the modules loaded now; false if memory cannot be mapped.
pub fn init() -> bool {
    let (Some(mut scan), Some(depot)) = (Scan::new(), Depot::new()) else {
        return false;
    };
    scan.refresh();
    let mut stacks = Stacks::new();
    for m in scan.modules() {
        stacks.add(m);
    }
    // Frames inside our own module are the allocator's, unless that module is the
    // executable itself (memward linked statically, or a test binary).
    let here = init as fn() -> bool as usize as u64;
    let mods = scan.modules();
    if let Some(i) = mods.iter().position(|m| m.contains(here)) {
        if i != 0 {
            stacks.skip_frames_in(&mods[i]);
            SKIPS_OWN.store(true, Ordering::Relaxed);
            let page = 4096;
            let data = mods[i]
                .segments()
                .iter()
                .filter(|s| s.3 & libc::PF_W != 0)
                .map(|s| {
                    let (start, end) = (s.0 as usize, (s.0 + s.1) as usize);
                    (start & !(page - 1), end.next_multiple_of(page))
                })
                .collect();
            let _ = OWN_DATA.set(data);
        }
    }
    let walker = stacks.walker();
    *UNWINDER.lock() = Some(stacks);
    SHARED.set(Shared { walker, depot }).is_ok()
}

/// Sets how deep captures walk: `depth` frames of the program's, the report depth.
pub fn set_depth(depth: usize) {
    let slack = if SKIPS_OWN.load(Ordering::Relaxed) {
        0
    } else {
        16
    };
    CAPTURE_FRAMES.store((depth.max(1) + slack).min(MAX_FRAMES), Ordering::Relaxed);
}

/// Captures the calling thread's stack: its id (0: no frames, or the checker is not set
/// up) and the thread's number as a header stores it.
#[inline(never)]
pub fn capture() -> (u32, u16) {
    let (stack, thread, _) = capture_with(false);
    (stack, thread)
}

/// [`capture`] for an allocation: also whether the guard mode picked it (its countdown
/// is kept with what the capture reads of the thread).
#[inline(never)]
pub fn capture_alloc() -> (u32, u16, bool) {
    capture_with(true)
}

#[inline(always)]
fn capture_with(alloc: bool) -> (u32, u16, bool) {
    let t = threads::for_capture(alloc);
    let (thread, guard) = (t.thread, t.guard);
    let Some(shared) = SHARED.get() else {
        return (0, thread, guard);
    };
    // The cache is the thread's while it owns it (`mine` checks): a capture is not
    // re-entered on its thread (the checker runs inside the engine's hook section), the
    // signal handler's capture does not use it, and the profiler, which shares it,
    // records through the same hooks.
    // SAFETY: so this is the only borrow of it; the pointer came from `thread_cache`.
    let mut cache = unsafe { WalkCache::mine(t.walk_cache) };
    // SAFETY: the thread's scratch frames, used by this capture alone (see `ForCapture`).
    let frames = unsafe { &mut *t.frames };
    let generation = generation_in(1, module_generation());
    let walked = shared.walker.walk_cached(
        frames,
        CAPTURE_FRAMES.load(Ordering::Relaxed),
        t.stack_top,
        &mut |ra, sp, bp, lo, hi| {
            UNWINDER
                .lock()
                .as_mut()
                .and_then(|u| u.step_slow(ra, sp, bp, lo, hi))
        },
        cache.as_deref_mut(),
        generation,
    );
    let n = match walked {
        Walked::Known(id) => return (id, thread, guard),
        Walked::Frames(n) => n,
    };
    let frames = &frames[..n];
    let h = depot::hash(frames);
    let id = match shared.depot.find(frames, h) {
        Some(id) => id,
        None => {
            let _adding = UNWINDER.lock();
            shared.depot.add(frames, h)
        }
    };
    if let Some(c) = cache {
        c.remember(id);
    }
    (id, thread, guard)
}

/// The stack of code interrupted at `ip` (a signal context), not interned.
pub fn capture_from(ip: u64, sp: u64, bp: u64, stack_top: u64) -> Vec<u64> {
    let mut out = [0u64; MAX_FRAMES];
    let mut unwinder = UNWINDER.lock();
    let Some(u) = unwinder.as_mut() else {
        return vec![ip];
    };
    let n = u.capture_from(ip, sp, bp, stack_top, &mut out);
    out[..n].to_vec()
}

/// The frames of stack `id`, innermost first (return addresses).
pub fn frames(id: u32) -> Vec<u64> {
    SHARED.get().map(|s| s.depot.frames(id)).unwrap_or_default()
}

/// The checker's own memory outside the backing (start, end): the depot's mappings, the
/// unwinder's, and the writable segments of the library it is in (when that is not the
/// executable, whose statics are the program's). Not roots for the leak scan: nothing of
/// the program's is kept there, and reading it cost sqlite3's checked run a fifth of its
/// instructions (8.7 MiB of the library's bss, 1.7 MiB of the unwinder's module list).
pub fn own_mappings() -> Vec<(usize, usize)> {
    let mut own: Vec<(usize, usize)> = SHARED
        .get()
        .map(|s| s.depot.mappings().to_vec())
        .unwrap_or_default();
    if let Some(u) = UNWINDER.lock().as_ref() {
        own.extend(u.own_mappings());
    }
    own.extend(OWN_DATA.get().into_iter().flatten().copied());
    own
}

/// Takes the locks before `fork`.
pub fn lock_all() {
    UNWINDER.lock_forever();
}

/// Releases the locks `lock_all` took.
///
/// # Safety
/// The caller took them with `lock_all` on this thread and holds no guard.
pub unsafe fn unlock_all() {
    // SAFETY: per the contract.
    unsafe { UNWINDER.force_unlock() };
}
