//! Poisson sampling by bytes (`--sample-rate BYTES`), as tcmalloc and jemalloc do it: each
//! thread counts down the bytes to its next sample, drawn from an exponential
//! distribution with mean `rate`; the allocation that crosses zero is sampled. An
//! allocation of `size` bytes is then sampled with probability `1 - exp(-size / rate)`,
//! independently of the others, and the report weighs it by the inverse
//! (`memward_profile_format::sample_weight`), which makes totals unbiased.
//!
//! Normally the engine samples (`memward::hooks::install_sampled`, which
//! `MEMWARD_PROFILE_SAMPLE_RATE` selects): it reports only sampled allocations, and only
//! the frees and resizes of sampled blocks, so the hooks record every event they get and
//! unsampled allocations never leave the allocator's fast path. The decision below is
//! the fallback for when the engine reports every event while a sample rate is set
//! (`memward::HeapStats` switched the hooks to report everything): then the hooks decide,
//! and the set of sampled blocks that are still live (so their frees, and only theirs,
//! are recorded) is an open-addressing table in the recorder's own mapping, guarded by
//! the recorder's lock.

use crate::sys::{Region, ZeroValid};
use core::sync::atomic::{AtomicBool, Ordering};

static ENGINE_SAMPLES: AtomicBool = AtomicBool::new(false);

/// Tells the recorder whether the engine samples (reports only sampled blocks, with a
/// sample rate set) or reports every event (the hooks then sample themselves when a
/// rate is set).
///
/// ```
/// memward_profile::set_engine_sampling(false);
/// ```
pub fn set_engine_sampling(on: bool) {
    ENGINE_SAMPLES.store(on, Ordering::Relaxed);
}

/// Does the engine sample (see [`set_engine_sampling`])?
#[inline]
pub fn engine_samples() -> bool {
    ENGINE_SAMPLES.load(Ordering::Relaxed)
}

/// A per-thread generator (xorshift64*): fast, no allocation, good enough for drawing
/// sampling intervals.
#[derive(Clone, Copy)]
pub struct Rng(pub u64);

impl Rng {
    /// The next uniform value in (0, 1].
    pub fn uniform(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        let bits = x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        (bits as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Bytes until the next sample: exponential with mean `rate`, at least 1.
    pub fn interval(&mut self, rate: u64) -> i64 {
        let v = -self.uniform().ln() * rate as f64;
        (v as i64).clamp(1, i64::MAX / 2)
    }
}

#[derive(Clone, Copy)]
#[repr(C)]
struct Slot(u64);

// SAFETY: an integer.
unsafe impl ZeroValid for Slot {}

const EMPTY: u64 = 0;
const GONE: u64 = 1;

/// The addresses of live sampled blocks.
pub struct SampledSet {
    table: Region,
    mask: usize,
    /// Live entries plus tombstones.
    used: usize,
}

fn hash(p: u64) -> usize {
    (p.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20) as usize
}

impl SampledSet {
    /// Empty; `None` if memory cannot be mapped.
    pub fn new() -> Option<SampledSet> {
        Some(SampledSet {
            table: Region::map(1024 * 8)?,
            mask: 1023,
            used: 0,
        })
    }

    /// Adds `p` (a new sampled block).
    pub fn insert(&mut self, p: u64) {
        if p <= GONE {
            return;
        }
        if (self.used + 1) * 2 > self.mask {
            self.rebuild();
        }
        let mask = self.mask;
        let t = self.table.slice_of::<Slot>();
        let mut i = hash(p) & mask;
        while t[i].0 > GONE && t[i].0 != p {
            i = (i + 1) & mask;
        }
        if t[i].0 == EMPTY {
            self.used += 1;
        }
        t[i] = Slot(p);
    }

    /// Removes `p`; whether it was there.
    pub fn remove(&mut self, p: u64) -> bool {
        if p <= GONE {
            return false;
        }
        let mask = self.mask;
        let t = self.table.slice_of::<Slot>();
        let mut i = hash(p) & mask;
        loop {
            match t[i].0 {
                EMPTY => return false,
                v if v == p => {
                    t[i] = Slot(GONE);
                    return true;
                }
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Rehashes into a table twice the live count (dropping tombstones).
    fn rebuild(&mut self) {
        let live = self
            .table
            .slice_of::<Slot>()
            .iter()
            .filter(|s| s.0 > GONE)
            .count();
        let cap = ((live + 1) * 4).next_power_of_two().max(1024);
        let Some(mut table) = Region::map(cap * 8) else {
            return;
        };
        let mask = cap - 1;
        {
            let new = table.slice_of::<Slot>();
            for s in self.table.slice_of::<Slot>().iter().filter(|s| s.0 > GONE) {
                let mut i = hash(s.0) & mask;
                while new[i].0 != EMPTY {
                    i = (i + 1) & mask;
                }
                new[i] = *s;
            }
        }
        self.table = table;
        self.mask = mask;
        self.used = live;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_tracks_membership_through_rebuilds() {
        let mut s = SampledSet::new().unwrap();
        for p in (16..200_000u64).step_by(16) {
            s.insert(p);
        }
        for p in (16..200_000u64).step_by(32) {
            assert!(s.remove(p));
            assert!(!s.remove(p));
        }
        for p in (16..200_000u64).step_by(16) {
            s.insert(p + 8);
            assert!(s.remove(p + 8));
        }
        let left = (16..200_000u64)
            .step_by(16)
            .filter(|p| s.remove(*p))
            .count();
        assert_eq!(left, (16..200_000u64).step_by(16).count() / 2);
    }

    #[test]
    fn intervals_have_the_requested_mean() {
        let mut r = Rng(0x1234_5678_9abc_def1);
        let n = 200_000;
        let sum: f64 = (0..n).map(|_| r.interval(4096) as f64).sum();
        let mean = sum / n as f64;
        assert!((mean - 4096.0).abs() < 4096.0 * 0.02, "{mean}");
    }
}
