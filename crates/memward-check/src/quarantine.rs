//! The quarantine: freed blocks wait here, poisoned (or protected, for guard-page
//! blocks), before their memory goes back to the backing, so that a use after free hits
//! memory that is still the freed block's and a double free finds the block still known.
//!
//! It is bounded by bytes, counting each block's whole backing size (red zones and guard
//! pages included), and first in, first out per group of threads (below). Pushing a block
//! returns the oldest blocks that no longer fit; the caller checks and releases them
//! outside the lock. A block bigger than the whole bound is not kept at all.
//!
//! The bound is `MEMWARD_CHECK_QUARANTINE_MIB` (256 MiB by default, as in
//! AddressSanitizer) at most, and twice the bytes the program has live at least 16 MiB
//! ([`bound`]). A quarantine is memory that is not reused, so every byte of it is a
//! fresh page the kernel zeroes: a fixed 256 MiB made `git log -p` (8 MiB of heap) cost
//! 5x its time under `memward run` and 268 MiB of memory, while one proportional to the
//! heap costs about what the program's own memory does (figures in the crate README).
//! Small programs keep at least 16 MiB of freed blocks (valgrind keeps 20 MB).

use crate::threads;
use memward_profile::shared::SpinLock;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

/// FIFOs of freed blocks, one per group of threads (a thread uses the one its number
/// picks), sharing one byte budget. One FIFO behind one lock made every free of a
/// program's threads wait for that lock. A thread evicts its own FIFO's oldest blocks
/// first, and another FIFO's only when its own is empty, so a single-threaded program
/// keeps the whole budget in one FIFO, in order.
const SHARDS: usize = 8;

struct Fifo {
    /// (user, header, bytes).
    blocks: VecDeque<(usize, usize, usize)>,
}

static Q: [SpinLock<Fifo>; SHARDS] = [const {
    SpinLock::new(Fifo {
        blocks: VecDeque::new(),
    })
}; SHARDS];
/// Bytes held in all FIFOs together.
static BYTES: AtomicUsize = AtomicUsize::new(0);

/// The quarantine's bound for a program with `live` bytes in live blocks and the
/// user's cap `cap`.
pub fn bound(live: usize, cap: usize) -> usize {
    live.saturating_mul(2).max(16 << 20).min(cap)
}

/// Puts the block at `user` (header at `header`, costing `bytes`) in quarantine with
/// bound `limit`; returns the blocks (user, header) to release now (possibly this one, if
/// it alone exceeds the bound).
pub fn push(user: usize, header: usize, bytes: usize, limit: usize) -> Vec<(usize, usize)> {
    if bytes > limit {
        return vec![(user, header)];
    }
    let own = threads::current() as usize % SHARDS;
    BYTES.fetch_add(bytes, Ordering::Relaxed);
    let mut out = Vec::new();
    {
        let mut q = Q[own].lock();
        q.blocks.push_back((user, header, bytes));
        evict(&mut q, limit, &mut out);
    }
    // Over the budget with an empty FIFO of our own: the bytes are in other threads'.
    for other in (1..SHARDS).map(|i| (own + i) % SHARDS) {
        if BYTES.load(Ordering::Relaxed) <= limit {
            break;
        }
        if let Some(mut q) = Q[other].try_lock() {
            evict(&mut q, limit, &mut out);
        }
    }
    out
}

/// Takes blocks from the front of `q` into `out` while the quarantine holds more than
/// `limit` bytes.
fn evict(q: &mut Fifo, limit: usize, out: &mut Vec<(usize, usize)>) {
    while BYTES.load(Ordering::Relaxed) > limit {
        let Some((u, h, b)) = q.blocks.pop_front() else {
            break;
        };
        BYTES.fetch_sub(b, Ordering::Relaxed);
        out.push((u, h));
    }
}

/// Bytes held now.
#[cfg(test)]
pub fn bytes() -> usize {
    BYTES.load(Ordering::Relaxed)
}

/// Takes the locks before `fork`.
pub fn lock() {
    for q in &Q {
        q.lock_forever();
    }
}

/// Releases the locks `lock` took.
///
/// # Safety
/// The caller took them with `lock` on this thread and holds no guard.
pub unsafe fn unlock() {
    for q in Q.iter().rev() {
        // SAFETY: per the contract.
        unsafe { q.force_unlock() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_oldest_first_within_the_bound() {
        // One test owns the global queue (the others in this crate do not use it).
        assert!(push(1, 11, 40, 100).is_empty());
        assert!(push(2, 12, 40, 100).is_empty());
        assert_eq!(push(3, 13, 40, 100), vec![(1, 11)]);
        assert_eq!(bytes(), 80);
        assert_eq!(push(4, 14, 500, 100), vec![(4, 14)]);
        assert_eq!(push(5, 15, 100, 100), vec![(2, 12), (3, 13)]);
        assert_eq!(bytes(), 100);
        assert_eq!(push(6, 16, 1, 0), vec![(6, 16)]);
    }

    #[test]
    fn the_bound_follows_the_live_heap_within_the_cap() {
        assert_eq!(bound(0, 256 << 20), 16 << 20);
        assert_eq!(bound(50 << 20, 256 << 20), 100 << 20);
        assert_eq!(bound(500 << 20, 256 << 20), 256 << 20);
        assert_eq!(bound(0, 1 << 20), 1 << 20);
        assert_eq!(bound(0, 0), 0);
    }
}
