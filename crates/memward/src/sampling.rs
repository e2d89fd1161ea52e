//! Sampled hook mode (`hooks::install_sampled`): Poisson sampling by bytes done inside the
//! engine, so that unsampled allocations keep the fast path and unsampled frees never
//! reach the hooks.
//!
//! The rule is tcmalloc's and jemalloc's: bytes allocated form a Poisson process of rate
//! `1 / rate` per byte, and an allocation is sampled when a point of the process falls in
//! its bytes, with probability `1 - exp(-size / rate)`, independently of the others; the
//! report weighs it by the inverse. A Poisson process split into disjoint parts is an
//! independent Poisson process of the same rate on each part, and it is memoryless, so
//! each part may be run separately and restarted at any point:
//!
//! - **Direct sizes** (up to 1 KiB, the fast path): each time the slow path hands a page's
//!   `free` list to the direct table, it draws how many whole blocks come before the next
//!   point (a geometric count: `floor(Exp(rate) / block_size)`) and cuts the list there
//!   (`Page::cut_free`: the rest goes to the front of `local_free`). The fast path runs
//!   dry exactly before the block the point falls in; that allocation takes the slow
//!   path, which recognises the cut page (`Local::cut`), samples it, and cuts again for
//!   the rest. The block-level process counts block sizes; the sampled allocation asked
//!   for `size <= block_size` bytes, so it is kept with probability
//!   `(1 - exp(-size / rate)) / (1 - exp(-block_size / rate))` ([`keep_probability`]),
//!   which makes its overall probability `1 - exp(-size / rate)`, as for any other.
//! - **Everything else** (medium, large and huge blocks, aligned allocation, `realloc`)
//!   already takes a slow path, which counts requested bytes down directly on the
//!   heap's own countdown.
//!
//! A point that falls on an allocation made inside a hook or inside an operation that
//! reports itself (`realloc`'s inner allocation) is dropped: those bytes are not the
//! program's, and dropping points on some blocks leaves every other block's probability
//! as it was.
//!
//! Frees: a sampled block's page carries `FLAG_SAMPLED` and counts its live sampled
//! blocks, so frees of other pages keep the fast path; frees of a flagged page go out of
//! line and look the block up in [`SampledBlocks`], a set of the live sampled pointers
//! (open addressing in its own mapping, under a spin lock). Only blocks found there are
//! reported. The owner clears the flag when the count is back to zero.

use crate::lock::SpinLock;
use crate::os;
use crate::page::{Page, FLAG_SAMPLED};
use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering};

/// The next uniform value in (0, 1] from a xorshift64* state (never zero).
fn uniform(state: &mut u64) -> f64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    let bits = x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
    (bits as f64 + 1.0) / (1u64 << 53) as f64
}

/// Bytes to the next point of a Poisson process of rate `1 / rate`: exponential with mean
/// `rate`, at least 1.
pub fn interval(state: &mut u64, rate: u64) -> i64 {
    let v = -uniform(state).ln() * rate as f64;
    (v as i64).clamp(1, i64::MAX / 2)
}

/// Whole blocks of `block_size` bytes before the one the next point falls in: geometric,
/// `P(n >= k) = exp(-k * block_size / rate)`. Capped at `u32::MAX`.
pub fn blocks_before_point(state: &mut u64, rate: u64, block_size: usize) -> u32 {
    let v = -uniform(state).ln() * rate as f64 / block_size as f64;
    if v >= u32::MAX as f64 {
        u32::MAX
    } else {
        v as u32
    }
}

/// Probability of keeping a point that fell on a block of `block_size` bytes handed out
/// for `size` requested bytes (`size <= block_size`): the ratio of the two sampling
/// probabilities, so that the allocation is sampled with `1 - exp(-size / rate)`.
pub fn keep_probability(size: usize, block_size: usize, rate: u64) -> f64 {
    let p = |n: usize| -(-(n.max(1) as f64) / rate as f64).exp_m1();
    (p(size) / p(block_size)).min(1.0)
}

/// Draws whether to keep a point (see [`keep_probability`]).
pub fn keep(state: &mut u64, size: usize, block_size: usize, rate: u64) -> bool {
    size >= block_size || uniform(state) <= keep_probability(size, block_size, rate)
}

/// A fixed seed for the generators of heaps that start sampling from now on (0: none).
static FIXED_SEED: AtomicU64 = AtomicU64::new(0);

/// Makes the heaps that start sampling from now on draw from `seed` (0: from the heap's
/// address and the time), for reproducible tests.
pub fn set_seed(seed: u64) {
    FIXED_SEED.store(seed, Ordering::Relaxed);
}

/// A seed for a heap's generator: distinct per heap and run unless fixed, never zero.
pub fn seed(heap: usize) -> u64 {
    match FIXED_SEED.load(Ordering::Relaxed) {
        0 => (heap as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ os::now_ms().rotate_left(32) | 1,
        s => s | 1,
    }
}

const EMPTY: usize = 0;
const GONE: usize = 1;
/// Slots of the first table (64 KiB).
const FIRST_SLOTS: usize = 8192;

/// The set of live sampled block pointers (the pointer the program holds).
pub struct SampledBlocks {
    slots: *mut usize,
    mask: usize,
    /// Live entries plus tombstones.
    used: usize,
    live: usize,
}

// SAFETY: the table is plain memory of its own mapping, reached only under the lock.
unsafe impl Send for SampledBlocks {}

static SET: SpinLock<SampledBlocks> = SpinLock::new(SampledBlocks {
    slots: ptr::null_mut(),
    mask: 0,
    used: 0,
    live: 0,
});

fn hash(p: usize) -> usize {
    (p as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) as usize >> 20
}

impl SampledBlocks {
    fn table(&mut self) -> &mut [usize] {
        if self.slots.is_null() {
            return &mut [];
        }
        // SAFETY: `slots` is a mapping of `mask + 1` words owned by this set.
        unsafe { core::slice::from_raw_parts_mut(self.slots, self.mask + 1) }
    }

    /// Adds `p`; false when the table cannot grow (out of memory).
    fn insert(&mut self, p: usize) -> bool {
        if (self.used + 1) * 2 > self.mask && !self.grow() {
            return false;
        }
        let mask = self.mask;
        let t = self.table();
        let mut i = hash(p) & mask;
        while t[i] > GONE && t[i] != p {
            i = (i + 1) & mask;
        }
        let fresh = t[i] == EMPTY;
        let new = t[i] != p;
        t[i] = p;
        self.used += usize::from(fresh);
        self.live += usize::from(new);
        true
    }

    fn find(&mut self, p: usize) -> Option<usize> {
        let mask = self.mask;
        let t = self.table();
        if t.is_empty() {
            return None;
        }
        let mut i = hash(p) & mask;
        loop {
            match t[i] {
                EMPTY => return None,
                v if v == p => return Some(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    fn remove(&mut self, p: usize) -> bool {
        let Some(i) = self.find(p) else { return false };
        self.table()[i] = GONE;
        self.live -= 1;
        true
    }

    /// Rehashes into a table of at least four times the live count, dropping tombstones.
    fn grow(&mut self) -> bool {
        let cap = ((self.live + 1) * 4).next_power_of_two().max(FIRST_SLOTS);
        let slots = os::map(cap * size_of::<usize>()).cast::<usize>();
        if slots.is_null() {
            return false;
        }
        // SAFETY: a fresh zeroed mapping of `cap` words.
        let new = unsafe { core::slice::from_raw_parts_mut(slots, cap) };
        let (old, old_cap) = (self.slots, self.mask + 1);
        for &p in self.table().iter().filter(|&&p| p > GONE) {
            let mut i = hash(p) & (cap - 1);
            while new[i] != EMPTY {
                i = (i + 1) & (cap - 1);
            }
            new[i] = p;
        }
        self.slots = slots;
        self.mask = cap - 1;
        self.used = self.live;
        if !old.is_null() {
            // SAFETY: the old table, no longer referenced.
            unsafe { os::unmap(old.cast(), old_cap * size_of::<usize>()) };
        }
        true
    }
}

/// Records `p` (the pointer handed to the program, in `page`) as a live sampled block:
/// into the set, the page's count and flag. False if the set cannot grow; the block is
/// then not sampled.
///
/// # Safety
/// `page` is the live page, owned by the calling thread, of the live block `p`.
pub unsafe fn note(page: *mut Page, p: *mut u8) -> bool {
    if !SET.lock().insert(p as usize) {
        return false;
    }
    // SAFETY: the owner alone raises the count and writes the flags.
    unsafe {
        (*page).sampled_add();
        (*page).set_flag(FLAG_SAMPLED, true);
    }
    true
}

/// A block of a page flagged `FLAG_SAMPLED` is being freed (or given up by `realloc`):
/// if it was sampled, forgets it (the set and the page's count) and returns true. Any
/// thread; the flag itself is cleared by the owner ([`clear_flag_if_done`]).
///
/// # Safety
/// `page` is the live page of the live block `p`.
pub unsafe fn forget(page: *mut Page, p: *mut u8) -> bool {
    if !SET.lock().remove(p as usize) {
        return false;
    }
    // SAFETY: the page lives while its block does; the count is atomic.
    unsafe { (*page).sampled_sub() };
    true
}

/// The sampled block `old` moved to `new` without being freed (a huge block whose mapping
/// `realloc` moved): its entry follows it. Its page descriptor moved with the mapping and
/// keeps its count. False if `old` was not sampled.
pub fn moved(old: *mut u8, new: *mut u8) -> bool {
    let mut set = SET.lock();
    // The entry just removed leaves room for the new one.
    set.remove(old as usize) && set.insert(new as usize)
}

/// Is `p` a live sampled block? (`realloc`, which decides before it frees.)
pub fn contains(p: *mut u8) -> bool {
    SET.lock().find(p as usize).is_some()
}

/// Clears `FLAG_SAMPLED` once the page has no live sampled block (owner only).
///
/// # Safety
/// `page` is a live page owned by the calling thread.
#[inline]
pub unsafe fn clear_flag_if_done(page: *mut Page) {
    // SAFETY: per the contract; only the owner raises the count, so zero stays zero.
    unsafe {
        if (*page).sampled_live() == 0 {
            (*page).set_flag(FLAG_SAMPLED, false);
        }
    }
}

/// Live sampled blocks (tests).
pub fn live_count() -> usize {
    SET.lock().live
}

/// Takes the set's lock (fork prepare handler).
pub fn lock() {
    SET.acquire();
}

/// Releases the lock [`lock`] took.
///
/// # Safety
/// Only after [`lock`] on this thread (fork parent and child handlers).
pub unsafe fn unlock() {
    // SAFETY: forwarded contract.
    unsafe { SET.release() };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_set_keeps_membership_through_growth() {
        let mut s = SampledBlocks {
            slots: ptr::null_mut(),
            mask: 0,
            used: 0,
            live: 0,
        };
        assert!(!s.remove(64), "empty set");
        let ptrs: Vec<usize> = (1..60_000).map(|i| i * 48).collect();
        for &p in &ptrs {
            assert!(s.insert(p));
        }
        assert_eq!(s.live, ptrs.len());
        for &p in ptrs.iter().step_by(2) {
            assert!(s.remove(p));
            assert!(!s.remove(p), "removed twice");
        }
        // Tombstones are dropped as the table is rebuilt; membership survives it.
        for &p in &ptrs {
            assert!(s.insert(p + 8));
            assert!(s.remove(p + 8));
        }
        for (i, &p) in ptrs.iter().enumerate() {
            assert_eq!(s.find(p).is_some(), i % 2 == 1, "{p}");
        }
        assert_eq!(s.live, ptrs.len() / 2);
    }

    #[test]
    fn geometric_counts_have_the_mean_of_whole_blocks() {
        let mut s = 0x1234_5678_9abc_def1u64;
        let (rate, bs, n) = (4096u64, 48usize, 200_000);
        let sum: f64 = (0..n)
            .map(|_| f64::from(blocks_before_point(&mut s, rate, bs)))
            .sum();
        // E[floor(X / b)] for X ~ Exp(rate): q / (1 - q), q = exp(-b / rate).
        let q = (-(bs as f64) / rate as f64).exp();
        let want = q / (1.0 - q);
        let mean = sum / f64::from(n);
        assert!((mean - want).abs() < want * 0.02, "{mean} vs {want}");
    }

    #[test]
    fn intervals_have_the_requested_mean() {
        let mut s = 99u64;
        let n = 200_000;
        let sum: f64 = (0..n).map(|_| interval(&mut s, 4096) as f64).sum();
        let mean = sum / f64::from(n);
        assert!((mean - 4096.0).abs() < 4096.0 * 0.02, "{mean}");
    }

    #[test]
    fn keeping_makes_the_probability_that_of_the_requested_size() {
        let rate = 1000;
        let p = |n: f64| 1.0 - (-n / rate as f64).exp();
        let k = keep_probability(10, 64, rate);
        assert!((p(64.0) * k - p(10.0)).abs() < 1e-12);
        assert_eq!(keep_probability(64, 64, rate), 1.0);
    }
}
