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

mod fifo;

use crate::threads;
use fifo::ChunkedFifo;
use memward_profile::shared::SpinLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// FIFOs of freed blocks, one per group of threads (a thread uses the one its number
/// picks), sharing one byte budget. One FIFO behind one lock made every free of a
/// program's threads wait for that lock. A thread evicts its own FIFO's oldest blocks
/// first, and another FIFO's only when its own is empty, so a single-threaded program
/// keeps the whole budget in one FIFO, in order.
const SHARDS: usize = 8;

struct Fifo {
    /// (user, header, bytes).
    blocks: ChunkedFifo,
    /// Bytes of `blocks`.
    bytes: usize,
}

static Q: [SpinLock<Fifo>; SHARDS] = [const {
    SpinLock::new(Fifo {
        blocks: ChunkedFifo::new(),
        bytes: 0,
    })
}; SHARDS];

/// Each FIFO's bytes, published for the others after every change (written under the
/// FIFO's lock, read without it), one cache line each: a single shared total was a line
/// every free of every thread wrote.
#[repr(align(64))]
struct Published(AtomicUsize);

static BYTES: [Published; SHARDS] = [const { Published(AtomicUsize::new(0)) }; SHARDS];

/// Bytes held in all FIFOs together (a sum of their latest published counts).
fn total() -> usize {
    BYTES.iter().map(|b| b.0.load(Ordering::Relaxed)).sum()
}

/// The quarantine's bound for a program with `live` bytes in live blocks and the
/// user's cap `cap`.
pub fn bound(live: usize, cap: usize) -> usize {
    live.saturating_mul(2).max(16 << 20).min(cap)
}

/// Blocks taken out of the quarantine under its lock, released after it: a fixed
/// batch, so that pushing allocates nothing. Eight: a push in a full quarantine evicts one
/// or two, and zeroing a larger batch on every push cost a `memset` call each.
struct Batch {
    blocks: [(usize, usize); 8],
    len: usize,
}

impl Batch {
    fn full(&self) -> bool {
        self.len == self.blocks.len()
    }
}

/// Puts the block at `user` (header at `header`, costing `bytes`) in quarantine with
/// bound `limit`, and calls `release(user, header)` for each block that leaves it
/// (possibly this one, if it alone exceeds the bound), outside the locks.
pub fn push(
    user: usize,
    header: usize,
    bytes: usize,
    limit: usize,
    mut release: impl FnMut(usize, usize),
) {
    if bytes > limit {
        release(user, header);
        return;
    }
    let own = threads::shard(SHARDS);
    let mut pushed = false;
    loop {
        let mut out = Batch {
            blocks: [(0, 0); 8],
            len: 0,
        };
        let over = {
            let mut q = Q[own].lock();
            if !pushed {
                q.blocks.push_back((user, header, bytes));
                q.bytes += bytes;
                pushed = true;
            }
            evict(&mut q, own, limit, &mut out)
        };
        // Over the budget with an empty FIFO of our own: the bytes are in other threads'.
        for other in (1..SHARDS).map(|i| (own + i) % SHARDS) {
            if over == 0 || out.full() || total() <= limit {
                break;
            }
            if let Some(mut q) = Q[other].try_lock() {
                evict(&mut q, other, limit, &mut out);
            }
        }
        for &(u, h) in &out.blocks[..out.len] {
            release(u, h);
        }
        if !out.full() {
            return;
        }
    }
}

/// Asks the processor to bring the cache line at `addr` in ahead of use. Never faults,
/// whatever the address.
#[inline(always)]
fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it reads nothing the program sees and does not fault
    // on unmapped or protected addresses.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

/// Starts loading what the release of the next two blocks at the FIFO's front will read:
/// their headers, the user's first bytes (the header's line also holds the left red zone)
/// and the right red zones, and a FIFO entry a few blocks on. A block leaves the quarantine after megabytes of
/// other blocks, so all of it is out of the cache by then: those misses were the better
/// part of `release`'s time.
fn prefetch_next(q: &Fifo) {
    for i in 0..2 {
        if let Some(&(user, header, bytes)) = q.blocks.get(i) {
            prefetch(header);
            prefetch(user);
            // The right red zone (`bytes` counts from the backing block's start, which
            // is at most a line before the header for ordinary blocks).
            prefetch(header.wrapping_add(bytes).wrapping_sub(16));
        }
    }
    if let Some(e) = q.blocks.get(4) {
        prefetch(e as *const (usize, usize, usize) as usize);
    }
}

/// Takes blocks from the front of FIFO `shard` (`q`, locked) into `out` until the
/// quarantine holds at most `limit` bytes or `out` is full, and publishes the FIFO's
/// bytes. Returns how many bytes the quarantine still holds over `limit`, as far as the
/// other FIFOs' published counts tell.
fn evict(q: &mut Fifo, shard: usize, limit: usize, out: &mut Batch) -> usize {
    BYTES[shard].0.store(q.bytes, Ordering::Relaxed);
    let mut over = total().saturating_sub(limit);
    while over > 0 && !out.full() {
        let Some((u, h, b)) = q.blocks.pop_front() else {
            break;
        };
        q.bytes -= b;
        over = over.saturating_sub(b);
        out.blocks[out.len] = (u, h);
        out.len += 1;
    }
    BYTES[shard].0.store(q.bytes, Ordering::Relaxed);
    prefetch_next(q);
    over
}

/// Bytes held now.
#[cfg(test)]
pub fn bytes() -> usize {
    total()
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
        let push = |user, header, bytes, limit| {
            let mut out = Vec::new();
            super::push(user, header, bytes, limit, |u, h| out.push((u, h)));
            out
        };
        assert!(push(1, 11, 40, 100).is_empty());
        assert!(push(2, 12, 40, 100).is_empty());
        assert_eq!(push(3, 13, 40, 100), vec![(1, 11)]);
        assert_eq!(bytes(), 80);
        assert_eq!(push(4, 14, 500, 100), vec![(4, 14)]);
        assert_eq!(push(5, 15, 100, 100), vec![(2, 12), (3, 13)]);
        assert_eq!(bytes(), 100);
        // More than one batch leaves at once, oldest first.
        for i in 0..40 {
            assert!(push(100 + i, 0, 2, 180).is_empty());
        }
        let out = push(999, 9, 175, 180);
        let want: Vec<_> = std::iter::once((5, 15))
            .chain((100..138).map(|i| (i, 0)))
            .collect();
        assert_eq!(out, want);
        assert_eq!(bytes(), 179);
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
