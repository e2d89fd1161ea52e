//! Statistics that cost (almost) nothing on the fast paths.
//!
//! The only fast-path counter is `requested` (one add in `malloc`). Everything else is
//! derived on slow paths: a page's free list is refilled only when it ran dry, so every
//! block of the previous refill (`Page::batch`) has been allocated by then; and a page's
//! `used` count is exact, so live blocks are reconciled (`Page::used_synced`) whenever the
//! slow path touches a page. The calling thread's heap is reconciled exactly by
//! [`crate::stats()`]; other live threads lag by at most the blocks of the pages they are
//! currently allocating from. Peak in-use bytes are tracked at those same points.
//!
//! Counters are atomics written only by their heap's owner (relaxed load + store, plain
//! moves on x86_64), so any thread may read them without a data race. Heap structures are
//! never unmapped, so the sum over all heaps ever created includes exited threads.

use crate::size_class::{bin_size, BIN_COUNT};
use core::fmt;
use core::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

static MAPPED: AtomicUsize = AtomicUsize::new(0);
static PEAK_MAPPED: AtomicUsize = AtomicUsize::new(0);
static RESIDENT: AtomicI64 = AtomicI64::new(0);
static LIVE: AtomicI64 = AtomicI64::new(0);
static PEAK_LIVE: AtomicI64 = AtomicI64::new(0);
static PURGE_CALLS: AtomicU64 = AtomicU64::new(0);

pub fn mapped(bytes: usize) {
    let now = MAPPED.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK_MAPPED.fetch_max(now, Ordering::Relaxed);
}

/// Bytes in use process-wide (as published by the heaps, in batches): the heap profiler's
/// timeline reads it.
#[cfg(feature = "profile")]
pub fn live_bytes() -> i64 {
    LIVE.load(Ordering::Relaxed)
}

pub fn unmapped(bytes: usize) {
    MAPPED.fetch_sub(bytes, Ordering::Relaxed);
}

/// One call that returned memory to the OS.
pub fn purge_call() {
    PURGE_CALLS.fetch_add(1, Ordering::Relaxed);
}

/// A change of the resident estimate: bytes touched since they were mapped or purged.
pub fn resident(delta: i64) {
    RESIDENT.fetch_add(delta, Ordering::Relaxed);
}

/// Adds a change of in-use bytes to the process-wide total and tracks its peak.
pub fn live_delta(bytes: i64) {
    let now = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    if bytes > 0 {
        PEAK_LIVE.fetch_max(now, Ordering::Relaxed);
    }
}

/// Owner-only increment of a counter that other threads may read.
#[inline(always)]
pub fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

#[inline(always)]
pub fn bump_i(c: &AtomicI64, n: i64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// Per-heap counters. Index 0 of the per-bin arrays stands for large and huge objects.
/// `repr(C)` keeps `requested`, the one counter of the malloc fast path, first, where the
/// heap layout puts it on the line after the remote queue's.
#[repr(C)]
pub struct HeapCounters {
    pub requested: AtomicU64,
    pub allocs: [AtomicU64; BIN_COUNT],
    pub live_blocks: [AtomicI64; BIN_COUNT],
    pub alloc_bytes: AtomicU64,
    pub live_bytes: AtomicI64,
}

impl HeapCounters {
    pub const fn new() -> Self {
        HeapCounters {
            requested: AtomicU64::new(0),
            allocs: [const { AtomicU64::new(0) }; BIN_COUNT],
            live_blocks: [const { AtomicI64::new(0) }; BIN_COUNT],
            alloc_bytes: AtomicU64::new(0),
            live_bytes: AtomicI64::new(0),
        }
    }
}

/// One size class in [`Stats`].
///
/// ```
/// let s = memward::stats();
/// let used: u64 = s.size_classes.iter().map(|c| c.in_use).sum();
/// # let _ = used;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SizeClassStats {
    /// Block size of the class in bytes; 0 for the "large and huge" row.
    pub block_size: usize,
    /// Blocks handed out so far.
    pub allocations: u64,
    /// Blocks currently in use.
    pub in_use: u64,
}

/// A snapshot of memward's statistics, returned by [`crate::stats()`]; `Display` prints a
/// short report.
///
/// ```
/// let s = memward::stats();
/// assert!(s.peak_in_use_bytes >= s.in_use_bytes);
/// println!("{s}");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Bytes asked for by all allocations so far.
    pub requested_bytes: u64,
    /// Bytes of blocks handed out so far (requests rounded up to their size class).
    pub allocated_bytes: u64,
    /// Bytes of blocks in use now.
    pub in_use_bytes: u64,
    /// Highest `in_use_bytes` seen.
    pub peak_in_use_bytes: u64,
    /// Allocations so far.
    pub allocations: u64,
    /// Frees so far.
    pub frees: u64,
    /// Bytes of address space mapped from the OS.
    pub mapped_bytes: u64,
    /// Highest `mapped_bytes` seen.
    pub peak_mapped_bytes: u64,
    /// Estimate of resident memory: segment headers, plus the parts of pages that blocks
    /// were carved from and of large blocks, since they were mapped or last purged.
    pub resident_bytes: u64,
    /// Calls that returned memory to the OS.
    pub purges: u64,
    /// Segments whose thread exited while they held live blocks, awaiting adoption.
    pub abandoned_segments: u64,
    /// Heaps ever created (thread heaps and first-class heaps; reused after threads exit).
    pub heaps: u64,
    /// Per size class; index 0 is large and huge objects.
    pub size_classes: [SizeClassStats; BIN_COUNT],
}

impl Stats {
    pub(crate) fn empty() -> Self {
        let mut size_classes = [SizeClassStats::default(); BIN_COUNT];
        for (bin, row) in size_classes.iter_mut().enumerate().skip(1) {
            row.block_size = bin_size(bin);
        }
        Stats {
            requested_bytes: 0,
            allocated_bytes: 0,
            in_use_bytes: 0,
            peak_in_use_bytes: 0,
            allocations: 0,
            frees: 0,
            mapped_bytes: 0,
            peak_mapped_bytes: 0,
            resident_bytes: 0,
            purges: 0,
            abandoned_segments: 0,
            heaps: 0,
            size_classes,
        }
    }

    /// Adds one heap's counters; returns its live block count.
    pub(crate) fn add_heap(&mut self, c: &HeapCounters) -> i64 {
        self.heaps += 1;
        self.requested_bytes += c.requested.load(Ordering::Relaxed);
        self.allocated_bytes += c.alloc_bytes.load(Ordering::Relaxed);
        let mut live_bytes = c.live_bytes.load(Ordering::Relaxed);
        let mut live_blocks = 0i64;
        for (row, (allocs, live)) in self
            .size_classes
            .iter_mut()
            .zip(c.allocs.iter().zip(c.live_blocks.iter()))
        {
            let a = allocs.load(Ordering::Relaxed);
            let l = live.load(Ordering::Relaxed);
            row.allocations += a;
            row.in_use = (row.in_use as i64 + l).max(0) as u64;
            self.allocations += a;
            live_blocks += l;
        }
        live_bytes = live_bytes.max(0);
        self.in_use_bytes += live_bytes as u64;
        live_blocks
    }

    /// Completes the snapshot: frees are allocations minus live blocks.
    pub(crate) fn finish(&mut self, live_blocks: i64, abandoned: usize) {
        self.frees = (self.allocations as i64 - live_blocks).max(0) as u64;
        self.mapped_bytes = MAPPED.load(Ordering::Relaxed) as u64;
        self.peak_mapped_bytes = PEAK_MAPPED.load(Ordering::Relaxed) as u64;
        self.resident_bytes = RESIDENT.load(Ordering::Relaxed).max(0) as u64;
        self.purges = PURGE_CALLS.load(Ordering::Relaxed);
        self.peak_in_use_bytes =
            (PEAK_LIVE.load(Ordering::Relaxed).max(0) as u64).max(self.in_use_bytes);
        self.abandoned_segments = abandoned as u64;
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

impl fmt::Display for Stats {
    /// A short report: totals, then the size classes that saw any use.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "memward statistics")?;
        writeln!(
            f,
            "  requested      {:>14} bytes ({:.1} MiB)",
            self.requested_bytes,
            mib(self.requested_bytes)
        )?;
        writeln!(
            f,
            "  in use         {:>14} bytes ({:.1} MiB)",
            self.in_use_bytes,
            mib(self.in_use_bytes)
        )?;
        writeln!(
            f,
            "  peak in use    {:>14} bytes ({:.1} MiB)",
            self.peak_in_use_bytes,
            mib(self.peak_in_use_bytes)
        )?;
        writeln!(
            f,
            "  mapped         {:>14} bytes ({:.1} MiB, peak {:.1} MiB)",
            self.mapped_bytes,
            mib(self.mapped_bytes),
            mib(self.peak_mapped_bytes)
        )?;
        writeln!(
            f,
            "  resident (est) {:>14} bytes ({:.1} MiB)",
            self.resident_bytes,
            mib(self.resident_bytes)
        )?;
        writeln!(f, "  allocations    {:>14}", self.allocations)?;
        writeln!(f, "  frees          {:>14}", self.frees)?;
        writeln!(f, "  purges         {:>14}", self.purges)?;
        writeln!(
            f,
            "  heaps          {:>14}   abandoned segments {}",
            self.heaps, self.abandoned_segments
        )?;
        writeln!(f, "  size class      allocations        in use")?;
        for row in self
            .size_classes
            .iter()
            .skip(1)
            .chain(self.size_classes.iter().take(1))
        {
            if row.allocations == 0 && row.in_use == 0 {
                continue;
            }
            if row.block_size == 0 {
                writeln!(
                    f,
                    "  {:>10}  {:>13} {:>13}",
                    "large", row.allocations, row.in_use
                )?;
            } else {
                writeln!(
                    f,
                    "  {:>10}  {:>13} {:>13}",
                    row.block_size, row.allocations, row.in_use
                )?;
            }
        }
        Ok(())
    }
}
