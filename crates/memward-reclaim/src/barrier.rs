//! Asymmetric barriers: a nearly free one for readers, an expensive one for the reclaimer.
//!
//! Hazard-slot protocols are a Dekker pattern: the reader stores its hazard and then reloads the
//! source; the reclaimer unlinks a node and then reads every hazard. Each side needs a store-load
//! barrier between its two steps, and an `mfence` on every protected load is exactly what makes
//! classic hazard pointers slow. On Linux the reclaimer can instead issue
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, which runs a full barrier on every CPU that is
//! running a thread of this process; the reader then only needs a compiler fence (the kernel's
//! barrier stands in for its hardware one). This runs once per reclamation scan, that is once
//! per batch of retired nodes, not once per load. Where `membarrier` is missing (old kernels,
//! seccomp, other systems, Miri, loom) both sides fall back to `fence(SeqCst)`, which is the
//! textbook protocol and the one the loom tests check.
//!
//! The choice is made once, when the first `Collector` is created, and never changes afterwards,
//! so a reader and a reclaimer always agree on which pair of barriers is in force.

use crate::sync::{fence, Ordering};

#[cfg(all(target_os = "linux", not(loom), not(miri)))]
mod expedited {
    use std::sync::atomic::{AtomicU8, Ordering};

    // From <linux/membarrier.h>.
    const CMD_QUERY: libc::c_long = 0;
    const CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    const CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

    const UNKNOWN: u8 = 0;
    const AVAILABLE: u8 = 1;
    const MISSING: u8 = 2;

    static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);

    fn membarrier(cmd: libc::c_long) -> libc::c_long {
        // SAFETY: membarrier takes two integer arguments and touches no memory of ours; an
        // unsupported command just returns -1.
        unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_long) }
    }

    /// Registers this process for expedited barriers if the kernel offers them.
    pub(super) fn init() {
        if STATE.load(Ordering::Acquire) != UNKNOWN {
            return;
        }
        let query = membarrier(CMD_QUERY);
        let ok = query >= 0
            && query & CMD_PRIVATE_EXPEDITED != 0
            && membarrier(CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
        // Racing initialisers compute the same answer; the first store wins and the rest agree.
        let _ = STATE.compare_exchange(
            UNKNOWN,
            if ok { AVAILABLE } else { MISSING },
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    #[inline(always)]
    pub(super) fn available() -> bool {
        STATE.load(Ordering::Relaxed) == AVAILABLE
    }

    pub(super) fn heavy() {
        // Registration succeeded, so the command cannot fail with EPERM; any other failure would
        // make the protocol unsound, so treat it as a bug.
        let r = membarrier(CMD_PRIVATE_EXPEDITED);
        assert_eq!(
            r, 0,
            "membarrier(PRIVATE_EXPEDITED) failed after registration"
        );
    }
}

/// Chooses the barrier pair; called from `Collector::new` before any guard can exist.
pub(crate) fn init() {
    #[cfg(all(target_os = "linux", not(loom), not(miri)))]
    expedited::init();
}

/// Whether the cheap reader barrier (a compiler fence, paired with `membarrier` in scans) is in
/// force. Decided when the first [`Collector`](crate::Collector) is created; `false` before that
/// and wherever `membarrier` is unavailable (then both sides use `fence(SeqCst)`).
///
/// ```
/// let _collector = memward_reclaim::Collector::new();
/// println!("expedited barriers: {}", memward_reclaim::is_expedited());
/// ```
pub fn is_expedited() -> bool {
    #[cfg(all(target_os = "linux", not(loom), not(miri)))]
    {
        expedited::available()
    }
    #[cfg(not(all(target_os = "linux", not(loom), not(miri))))]
    {
        false
    }
}

/// The reader's store-load barrier between publishing a hazard and re-reading the source.
#[inline(always)]
pub(crate) fn light() {
    #[cfg(all(target_os = "linux", not(loom), not(miri)))]
    if expedited::available() {
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
        return;
    }
    fence(Ordering::SeqCst);
}

/// The reclaimer's barrier between retiring (after unlinking) and reading the hazards.
pub(crate) fn heavy() {
    #[cfg(all(target_os = "linux", not(loom), not(miri)))]
    if expedited::available() {
        expedited::heavy();
        return;
    }
    fence(Ordering::SeqCst);
}
