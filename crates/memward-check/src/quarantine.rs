//! The quarantine: freed blocks wait here, poisoned (or protected, for guard-page
//! blocks), before their memory goes back to the backing, so that a use after free hits
//! memory that is still the freed block's and a double free finds the block still known.
//!
//! It is a FIFO bounded by bytes, counting each block's whole backing size (red zones and
//! guard pages included). Pushing a block returns the oldest blocks that no longer fit;
//! the caller checks and releases them outside the lock. A block bigger than the whole
//! bound is not kept at all.
//!
//! The bound is `MEMWARD_CHECK_QUARANTINE_MIB` (256 MiB by default, as in
//! AddressSanitizer) at most, and twice the bytes the program has live at least 16 MiB
//! ([`bound`]). A quarantine is memory that is not reused, so every byte of it is a
//! fresh page the kernel zeroes: a fixed 256 MiB made `git log -p` (8 MiB of heap) cost
//! 5x its time under `memward run` and 268 MiB of memory, while one proportional to the
//! heap costs about what the program's own memory does (figures in the crate README).
//! Small programs keep at least 16 MiB of freed blocks (valgrind keeps 20 MB).

use memward_profile::shared::SpinLock;
use std::collections::VecDeque;

struct Fifo {
    /// (user, header, bytes).
    blocks: VecDeque<(usize, usize, usize)>,
    bytes: usize,
}

static Q: SpinLock<Fifo> = SpinLock::new(Fifo {
    blocks: VecDeque::new(),
    bytes: 0,
});

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
    let mut q = Q.lock();
    q.blocks.push_back((user, header, bytes));
    q.bytes += bytes;
    let mut out = Vec::new();
    while q.bytes > limit {
        let Some((u, h, b)) = q.blocks.pop_front() else {
            break;
        };
        q.bytes -= b;
        out.push((u, h));
    }
    out
}

/// Bytes held now.
#[cfg(test)]
pub fn bytes() -> usize {
    Q.lock().bytes
}

/// Takes the lock before `fork`.
pub fn lock() {
    Q.lock_forever();
}

/// Releases the lock `lock` took.
///
/// # Safety
/// The caller took it with `lock` on this thread and holds no guard.
pub unsafe fn unlock() {
    // SAFETY: per the contract.
    unsafe { Q.force_unlock() };
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
