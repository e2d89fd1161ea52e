//! The live-block registry: every block the checker handed out and has not yet released
//! (live, being freed, or in quarantine), keyed by its user address.
//!
//! A free, a `realloc` or a size query starts here: only an address found in the
//! registry has its header read, so a wild pointer never makes the checker read memory
//! that is not a header (or that is protected). The registry is 64 hash maps, each
//! behind its own spin lock and chosen by address bits, so threads freeing different
//! blocks rarely meet; the maps' memory comes from the backing (the checker allocates
//! freely inside its entry points).
//!
//! Two rarer questions scan every shard: which block contains an address (an interior
//! pointer, for invalid-free and fault reports), and the list of live blocks that the leak
//! scan (`src/leaks/`) starts from: [`live_blocks`].

use crate::block::{Header, Kind, LIVE};
use memward_profile::shared::SpinLock;
use rustc_hash::FxBuildHasher;
use std::collections::HashMap;

const SHARDS: usize = 64;

type Map = HashMap<usize, usize, FxBuildHasher>;

#[allow(clippy::declare_interior_mutable_const)] // the array initialiser, copied per shard
const EMPTY: SpinLock<Map> = SpinLock::new(HashMap::with_hasher(FxBuildHasher));
static SHARD: [SpinLock<Map>; SHARDS] = [EMPTY; SHARDS];

fn shard(user: usize) -> &'static SpinLock<Map> {
    &SHARD[((user >> 4) ^ (user >> 10) ^ (user >> 16)) % SHARDS]
}

/// Records the block at `user`, whose header is at `header`.
pub fn insert(user: usize, header: usize) {
    shard(user).lock().insert(user, header);
}

/// Forgets the block at `user`.
pub fn remove(user: usize) {
    shard(user).lock().remove(&user);
}

/// Runs `f` with the header of the block at exactly `user` (if registered) while the
/// block's shard is locked: state changes made in `f` are atomic with respect to other
/// frees of the same address.
pub fn with_block<R>(user: usize, f: impl FnOnce(Option<&Header>) -> R) -> R {
    let map = shard(user).lock();
    match map.get(&user) {
        // SAFETY: registered headers stay mapped and readable until `remove` (the block
        // is released only after it), and the shard lock keeps `remove` out.
        Some(&h) => f(Some(unsafe { &*(h as *const Header) })),
        None => f(None),
    }
}

/// The header address of the block at exactly `user`.
pub fn header_of(user: usize) -> Option<usize> {
    shard(user).lock().get(&user).copied()
}

/// The block whose bytes (or red zones) contain `addr`: its user address and header.
/// Scans every block; for error reports only. `extent(user, header)` gives the range of
/// addresses that count as the block's.
pub fn containing(
    addr: usize,
    extent: impl Fn(usize, &Header) -> (usize, usize),
) -> Option<(usize, usize)> {
    let mut best: Option<(usize, usize)> = None;
    for s in &SHARD {
        let map = s.lock();
        for (&user, &h) in map.iter() {
            // SAFETY: as in `with_block`.
            let header = unsafe { &*(h as *const Header) };
            let (lo, hi) = extent(user, header);
            if addr >= lo && addr < hi {
                // Prefer the block whose user bytes hold `addr` over a neighbour's red zone.
                let inside = addr >= user && addr < user + header.len().max(1);
                if inside || best.is_none() {
                    best = Some((user, h));
                }
            }
        }
    }
    best
}

/// A live block, as the leak scan sees it.
#[allow(dead_code)] // the leak scan's input (src/leaks/, written beside this crate's core)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveBlock {
    /// The user's start address.
    pub start: usize,
    /// The requested size.
    pub size: usize,
    /// The allocation stack's id (see `stacks::frames`).
    pub alloc_stack: u32,
    /// How it was allocated.
    pub kind: Kind,
}

/// Every live block (not freed, not in quarantine), in no particular order. Each shard
/// is copied under its lock; blocks allocated or freed meanwhile by other threads may or
/// may not be in the list.
#[allow(dead_code)] // the leak scan's input
pub fn live_blocks() -> Vec<LiveBlock> {
    let mut out = Vec::new();
    for s in &SHARD {
        let map = s.lock();
        out.reserve(map.len());
        for (&user, &h) in map.iter() {
            // SAFETY: as in `with_block`.
            let header = unsafe { &*(h as *const Header) };
            if header.valid_for(user) && header.state() == LIVE {
                out.push(LiveBlock {
                    start: user,
                    size: header.len(),
                    alloc_stack: header.alloc_stack,
                    kind: header.kind(),
                });
            }
        }
    }
    out
}

/// Every registered block (user address, header address).
pub fn all_blocks() -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for s in &SHARD {
        out.extend(s.lock().iter().map(|(&u, &h)| (u, h)));
    }
    out
}

/// Takes every shard's lock and keeps it (before `fork`).
pub fn lock_all() {
    for s in &SHARD {
        s.lock_forever();
    }
}

/// Releases the locks `lock_all` took (after `fork`, in parent and child).
///
/// # Safety
/// The caller took them with `lock_all` on this thread and holds no guard.
pub unsafe fn unlock_all() {
    for s in &SHARD {
        // SAFETY: per the contract.
        unsafe { s.force_unlock() };
    }
}
