//! Exact heap counters for assertions in tests (`memward::HeapStats`, as dhat-rs offers):
//! blocks and requested bytes allocated in all, live now, and live at the moment of the
//! largest live byte count.
//!
//! The hooks feed them when they are switched on ([`enable`]); frees report only a
//! pointer, so a table from live block to requested size (in the recorder's own mapping,
//! like the sampled-block set) gives the bytes each free takes away. Blocks allocated
//! before the counters were switched on are unknown to the table: their frees count for
//! nothing. One spin lock guards counters and table: a lookup and a few adds per event.

use crate::lock::SpinLock;
use crate::sys::{Region, ZeroValid};
use core::sync::atomic::{AtomicBool, Ordering};

/// Heap figures since the counters were switched on (requested sizes, not block sizes).
///
/// ```
/// let s = memward_profile::HeapCounts::default();
/// assert_eq!(s.curr_bytes, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeapCounts {
    /// Blocks allocated (a resize counts as one).
    pub total_blocks: u64,
    /// Bytes requested by those allocations.
    pub total_bytes: u64,
    /// Blocks live now.
    pub curr_blocks: u64,
    /// Requested bytes live now.
    pub curr_bytes: u64,
    /// Blocks live when `curr_bytes` was largest.
    pub max_blocks: u64,
    /// The largest `curr_bytes` so far.
    pub max_bytes: u64,
}

#[derive(Clone, Copy)]
#[repr(C)]
struct Slot {
    ptr: u64,
    size: u64,
}

// SAFETY: integers; ptr 0 is empty.
unsafe impl ZeroValid for Slot {}

const GONE: u64 = 1;

struct Tracker {
    counts: HeapCounts,
    table: Region,
    mask: usize,
    used: usize,
}

static ON: AtomicBool = AtomicBool::new(false);
static TRACKER: SpinLock<Option<Tracker>> = SpinLock::new(None);

fn hash(p: u64) -> usize {
    (p.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20) as usize
}

impl Tracker {
    fn insert(&mut self, ptr: u64, size: u64) {
        if (self.used + 1) * 2 > self.mask && !self.rebuild() {
            return;
        }
        let mask = self.mask;
        let t = self.table.slice_of::<Slot>();
        let mut i = hash(ptr) & mask;
        while t[i].ptr > GONE && t[i].ptr != ptr {
            i = (i + 1) & mask;
        }
        if t[i].ptr == 0 {
            self.used += 1;
        }
        t[i] = Slot { ptr, size };
    }

    fn remove(&mut self, ptr: u64) -> Option<u64> {
        let mask = self.mask;
        let t = self.table.slice_of::<Slot>();
        let mut i = hash(ptr) & mask;
        loop {
            match t[i].ptr {
                0 => return None,
                p if p == ptr => {
                    let size = t[i].size;
                    t[i].ptr = GONE;
                    return Some(size);
                }
                _ => i = (i + 1) & mask,
            }
        }
    }

    fn rebuild(&mut self) -> bool {
        let live = self.counts.curr_blocks as usize;
        let cap = ((live + 1) * 4).next_power_of_two().max(1024);
        let Some(mut table) = Region::map(cap * core::mem::size_of::<Slot>()) else {
            return false;
        };
        let mask = cap - 1;
        {
            let new = table.slice_of::<Slot>();
            for s in self
                .table
                .slice_of::<Slot>()
                .iter()
                .filter(|s| s.ptr > GONE)
            {
                let mut i = hash(s.ptr) & mask;
                while new[i].ptr != 0 {
                    i = (i + 1) & mask;
                }
                new[i] = *s;
            }
        }
        self.table = table;
        self.mask = mask;
        self.used = live;
        true
    }

    fn alloc(&mut self, ptr: u64, size: u64) {
        let c = &mut self.counts;
        c.total_blocks += 1;
        c.total_bytes += size;
        c.curr_blocks += 1;
        c.curr_bytes += size;
        if c.curr_bytes > c.max_bytes {
            c.max_bytes = c.curr_bytes;
            c.max_blocks = c.curr_blocks;
        }
        self.insert(ptr, size);
    }

    fn free(&mut self, ptr: u64) {
        if let Some(size) = self.remove(ptr) {
            self.counts.curr_blocks -= 1;
            self.counts.curr_bytes -= size;
        }
    }
}

/// Switches the counters on (from zero) and returns whether they are on; the allocator
/// must also send its events to the hooks (`memward::HeapStats::start` does both).
///
/// ```
/// assert!(memward_profile::enable_heap_counts());
/// assert_eq!(memward_profile::heap_counts().total_blocks, 0);
/// ```
pub fn enable() -> bool {
    let Some(table) = Region::map(1024 * core::mem::size_of::<Slot>()) else {
        return false;
    };
    *TRACKER.lock() = Some(Tracker {
        counts: HeapCounts::default(),
        table,
        mask: 1023,
        used: 0,
    });
    ON.store(true, Ordering::Release);
    true
}

/// The counters now (all zero if they were never switched on).
///
/// ```
/// let c = memward_profile::heap_counts();
/// assert!(c.max_bytes >= c.curr_bytes);
/// ```
pub fn counts() -> HeapCounts {
    TRACKER
        .lock()
        .as_ref()
        .map_or_else(HeapCounts::default, |t| t.counts)
}

#[inline]
pub(crate) fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

pub(crate) fn alloc(p: u64, size: u64) {
    if let Some(t) = TRACKER.lock().as_mut() {
        t.alloc(p, size);
    }
}

pub(crate) fn free(p: u64) {
    if let Some(t) = TRACKER.lock().as_mut() {
        t.free(p);
    }
}

pub(crate) fn realloc(old: u64, new: u64, size: u64) {
    if let Some(t) = TRACKER.lock().as_mut() {
        t.free(old);
        t.alloc(new, size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_like_dhat() {
        let mut t = Tracker {
            counts: HeapCounts::default(),
            table: Region::map(1024 * 16).unwrap(),
            mask: 1023,
            used: 0,
        };
        t.alloc(0x1000, 100);
        t.alloc(0x2000, 50);
        t.free(0x1000);
        t.free(0x9999); // unknown: ignored
        t.alloc(0x3000, 10);
        assert_eq!(
            t.counts,
            HeapCounts {
                total_blocks: 3,
                total_bytes: 160,
                curr_blocks: 2,
                curr_bytes: 60,
                max_blocks: 2,
                max_bytes: 150
            }
        );
        for i in 0..10_000u64 {
            t.alloc(0x10_0000 + i * 16, 1);
        }
        for i in 0..10_000u64 {
            t.free(0x10_0000 + i * 16);
        }
        assert_eq!(t.counts.curr_blocks, 2);
        assert_eq!(t.counts.total_blocks, 10_003);
    }
}
