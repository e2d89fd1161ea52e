//! Allocation and free stacks: captured with memward-profile's unwinder (the heap
//! profiler's `.eh_frame` unwinder with its rule cache and reuse of the outer frames two
//! consecutive captures share) and stored once each in its stack trie, so a block's header
//! names a stack with a 32-bit id. This is the stack depot: a million blocks allocated
//! from one place share one stack.
//!
//! One spin lock guards the unwinder and the trie (the unwinder's rule cache is shared, as
//! in the profiler). The module map is refreshed outside that lock, by one thread at a
//! time, every 256 captures: `dl_iterate_phdr` takes the loader's lock, and a thread
//! inside `dlopen` (holding it) may be allocating. Whoever finds a refresh running skips
//! it rather than wait. Until a refresh sees a newly loaded module, stacks end at its
//! first frame.
//!
//! Stacks are captured whole (up to memward-profile's 64 frames) and cut to the report
//! depth when printed: cutting at capture would make the trie's shared outer frames
//! useless, which is where the capture saves its time.

use crate::threads;
use memward_profile::shared::{ModuleInfo, Scan, SpinLock, Stacks, Trie, MAX_FRAMES};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A module the unwinder knows.
#[derive(Clone)]
pub struct Module {
    key: (u64, u64),
    info: ModuleInfo,
}

struct Depot {
    stacks: Stacks,
    trie: Trie,
    modules: Vec<Module>,
}

static DEPOT: SpinLock<Option<Depot>> = SpinLock::new(None);
static SCAN: SpinLock<Option<Scan>> = SpinLock::new(None);
static REFRESHING: AtomicBool = AtomicBool::new(false);
static CAPTURES: AtomicU64 = AtomicU64::new(0);

/// Sets up the unwinder with the modules loaded now; false if memory cannot be mapped.
pub fn init() -> bool {
    let (Some(mut scan), Some(trie)) = (Scan::new(), Trie::new()) else {
        return false;
    };
    scan.refresh();
    let mut depot = Depot {
        stacks: Stacks::new(),
        trie,
        modules: Vec::new(),
    };
    depot.apply(scan.modules());
    // Frames inside our own module are the allocator's, unless that module is the
    // executable itself (memward linked statically, or a test binary).
    let here = init as fn() -> bool as usize as u64;
    let mods = scan.modules();
    if let Some(i) = mods.iter().position(|m| m.contains(here)) {
        if i != 0 {
            depot.stacks.skip_frames_in(&mods[i]);
        }
    }
    *SCAN.lock() = Some(scan);
    *DEPOT.lock() = Some(depot);
    true
}

impl Depot {
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

/// Rescans the modules if the loader's set changed (one thread at a time; others skip).
fn refresh_modules() {
    if REFRESHING
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    let mut scan = SCAN.lock();
    if let Some(scan) = scan.as_mut() {
        if scan.refresh() {
            if let Some(d) = DEPOT.lock().as_mut() {
                d.apply(scan.modules());
            }
        }
    }
    drop(scan);
    REFRESHING.store(false, Ordering::Release);
}

/// Captures the calling thread's stack and returns its id (0: no frames, or the
/// checker is not set up).
#[inline(never)]
pub fn capture() -> u32 {
    if CAPTURES.fetch_add(1, Ordering::Relaxed) % 256 == 255 {
        refresh_modules();
    }
    let top = threads::stack_top();
    let mut frames = [0u64; MAX_FRAMES];
    let mut ids = [0u32; MAX_FRAMES];
    let mut depot = DEPOT.lock();
    let Some(d) = depot.as_mut() else { return 0 };
    let (n, known) = d.stacks.capture(&mut frames, &mut ids, top);
    let outer = if known < n { ids[known] } else { 0 };
    match d
        .trie
        .intern_from(&frames[..known], outer, &mut ids[..known], |_, _, _| {})
    {
        Some(id) => {
            d.stacks.remember(&ids[..n]);
            id
        }
        None => outer,
    }
}

/// The stack of code interrupted at `ip` (a signal context), not interned.
pub fn capture_from(ip: u64, sp: u64, bp: u64, stack_top: u64) -> Vec<u64> {
    let mut out = [0u64; MAX_FRAMES];
    let mut depot = DEPOT.lock();
    let Some(d) = depot.as_mut() else {
        return vec![ip];
    };
    let n = d.stacks.capture_from(ip, sp, bp, stack_top, &mut out);
    out[..n].to_vec()
}

/// The frames of stack `id`, innermost first (return addresses).
pub fn frames(id: u32) -> Vec<u64> {
    let mut out = Vec::new();
    let mut depot = DEPOT.lock();
    let Some(d) = depot.as_mut() else { return out };
    let mut id = id;
    while let Some((address, parent)) = d.trie.node(id) {
        out.push(address);
        id = parent;
    }
    out
}

/// The depot's own mappings (start, end): not roots for the leak scan.
pub fn own_mappings() -> Vec<(usize, usize)> {
    DEPOT
        .lock()
        .as_ref()
        .map(|d| d.trie.mappings().collect())
        .unwrap_or_default()
}

/// Takes the locks before `fork`.
pub fn lock_all() {
    SCAN.lock_forever();
    DEPOT.lock_forever();
}

/// Releases the locks `lock_all` took.
///
/// # Safety
/// The caller took them with `lock_all` on this thread and holds no guard.
pub unsafe fn unlock_all() {
    // SAFETY: per the contract.
    unsafe {
        DEPOT.force_unlock();
        SCAN.force_unlock();
    }
}
