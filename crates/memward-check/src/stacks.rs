//! Allocation and free stacks: walked with memward-profile's `.eh_frame` unwinder (its
//! rule table, read without a lock, takes a frame seen before in a slot load and one or
//! two stack reads) and stored once each in the stack depot (`depot`), so a block's
//! header names a stack with a 32-bit id.
//!
//! Threads walk and find their stacks at once. One spin lock guards the unwinder's
//! slow path (a return address seen for the first time is learned from framehop; a
//! frame the table cannot describe is unwound by framehop) and additions to the depot.
//! The module map is refreshed outside that lock, by one thread at a time, every 256
//! captures of a thread: `dl_iterate_phdr` takes the loader's lock, and a thread inside
//! `dlopen` (holding it) may be allocating. Whoever finds a refresh running skips it
//! rather than wait. Until a refresh sees a newly loaded module, stacks end at its first
//! frame.
//!
//! Stacks are captured whole (up to memward-profile's 64 frames) and cut to the report
//! depth when printed. Each thread keeps its last eight walks (memward-profile's
//! `WalkCache`): a capture that would repeat one, checked by rereading the stack words
//! that walk read, returns its id without walking or hashing. A module change starts a
//! new generation of kept walks.

use crate::depot::{self, Depot};
use crate::threads;
use memward_profile::shared::{
    generation_in, thread_cache, ModuleInfo, Scan, SpinLock, Stacks, Walked, Walker, MAX_FRAMES,
};
use std::sync::atomic::Ordering;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::OnceLock;

/// A module the unwinder knows.
#[derive(Clone)]
pub struct Module {
    key: (u64, u64),
    info: ModuleInfo,
}

/// The unwinder, for the steps its rule table cannot take and for module changes.
struct Unwinder {
    stacks: Stacks,
    modules: Vec<Module>,
}

/// What captures use without a lock: the walk's view of the unwinder, and the depot.
struct Shared {
    walker: Walker,
    depot: Depot,
}

static UNWINDER: SpinLock<Option<Unwinder>> = SpinLock::new(None);
static SHARED: OnceLock<Shared> = OnceLock::new();
static SCAN: SpinLock<Option<Scan>> = SpinLock::new(None);
static REFRESHING: AtomicBool = AtomicBool::new(false);
/// Counts changes of the module set: a thread's kept walks (`threads::for_capture`) are
/// valid for the rules of one generation.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Sets up the unwinder with the modules loaded now; false if memory cannot be mapped.
pub fn init() -> bool {
    let (Some(mut scan), Some(depot)) = (Scan::new(), Depot::new()) else {
        return false;
    };
    scan.refresh();
    let mut unwinder = Unwinder {
        stacks: Stacks::new(),
        modules: Vec::new(),
    };
    unwinder.apply(scan.modules());
    // Frames inside our own module are the allocator's, unless that module is the
    // executable itself (memward linked statically, or a test binary).
    let here = init as fn() -> bool as usize as u64;
    let mods = scan.modules();
    if let Some(i) = mods.iter().position(|m| m.contains(here)) {
        if i != 0 {
            unwinder.stacks.skip_frames_in(&mods[i]);
        }
    }
    let walker = unwinder.stacks.walker();
    *SCAN.lock() = Some(scan);
    *UNWINDER.lock() = Some(unwinder);
    SHARED.set(Shared { walker, depot }).is_ok()
}

impl Unwinder {
    fn apply(&mut self, scan: &[ModuleInfo]) {
        for m in scan {
            if self.modules.iter().any(|k| k.key == m.key()) {
                continue;
            }
            self.stacks.add(m);
            self.modules.push(Module {
                key: m.key(),
                info: *m,
            });
        }
        let stacks = &mut self.stacks;
        self.modules.retain(|k| {
            let alive = scan.iter().any(|m| m.key() == k.key);
            if !alive {
                stacks.remove(&k.info);
            }
            alive
        });
    }
}

/// Rescans the modules if the loader's set changed (one thread at a time; others skip);
/// true if it did change.
fn refresh_modules() -> bool {
    if REFRESHING
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return false;
    }
    let mut changed = false;
    let mut scan = SCAN.lock();
    if let Some(scan) = scan.as_mut() {
        if scan.refresh() {
            if let Some(u) = UNWINDER.lock().as_mut() {
                u.apply(scan.modules());
            }
            changed = true;
        }
    }
    drop(scan);
    REFRESHING.store(false, Ordering::Release);
    changed
}

/// Captures the calling thread's stack: its id (0: no frames, or the checker is not set
/// up) and the thread's number as a header stores it.
#[inline(never)]
pub fn capture() -> (u32, u16) {
    let t = threads::for_capture();
    if t.count % 256 == 255 && refresh_modules() {
        GENERATION.fetch_add(1, Ordering::AcqRel);
    }
    let Some(shared) = SHARED.get() else {
        return (0, t.thread);
    };
    // The cache is the thread's own: a capture is not re-entered on its thread (the
    // checker runs inside the engine's hook section), the signal handler's capture does
    // not use it, and the profiler, which shares it, records through the same hooks.
    // SAFETY: so this is the only borrow of it, and it lives as long as the thread.
    let cache = unsafe { &mut *thread_cache() };
    let mut frames = [0u64; MAX_FRAMES];
    let generation = generation_in(1, GENERATION.load(Ordering::Acquire));
    let walked = shared.walker.walk_cached(
        &mut frames,
        t.stack_top,
        &mut |ra, sp, bp, lo, hi| {
            UNWINDER
                .lock()
                .as_mut()
                .and_then(|u| u.stacks.step_slow(ra, sp, bp, lo, hi))
        },
        cache,
        generation,
    );
    let n = match walked {
        Walked::Known(id) => return (id, t.thread),
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
    cache.remember(id);
    (id, t.thread)
}

/// The stack of code interrupted at `ip` (a signal context), not interned.
pub fn capture_from(ip: u64, sp: u64, bp: u64, stack_top: u64) -> Vec<u64> {
    let mut out = [0u64; MAX_FRAMES];
    let mut unwinder = UNWINDER.lock();
    let Some(u) = unwinder.as_mut() else {
        return vec![ip];
    };
    let n = u.stacks.capture_from(ip, sp, bp, stack_top, &mut out);
    out[..n].to_vec()
}

/// The frames of stack `id`, innermost first (return addresses).
pub fn frames(id: u32) -> Vec<u64> {
    SHARED.get().map(|s| s.depot.frames(id)).unwrap_or_default()
}

/// The depot's own mappings (start, end): not roots for the leak scan.
pub fn own_mappings() -> Vec<(usize, usize)> {
    SHARED
        .get()
        .map(|s| s.depot.mappings().to_vec())
        .unwrap_or_default()
}

/// Takes the locks before `fork`.
pub fn lock_all() {
    SCAN.lock_forever();
    UNWINDER.lock_forever();
}

/// Releases the locks `lock_all` took.
///
/// # Safety
/// The caller took them with `lock_all` on this thread and holds no guard.
pub unsafe fn unlock_all() {
    // SAFETY: per the contract.
    unsafe {
        UNWINDER.force_unlock();
        SCAN.force_unlock();
    }
}
