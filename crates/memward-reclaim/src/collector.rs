//! The collector: the list of records, how a guard claims one, and the reclamation scan.
//!
//! Records form a push-only list (a CAS on the head), so a scan walks them without locks and a
//! record's address never changes. A guard claims a record in one of two ways. The fast path is
//! the calling thread's *home* record, found through a small per-thread index: only that thread
//! ever sets the record's `in_use` flag, so claiming it is a load and a store, no read-modify-write
//! (a guard moved to another thread clears the flag there with release ordering, and the home
//! thread's acquire load sees that). The slow path, for nested guards, threads past the home table
//! and loom builds, claims any free non-home record with a CAS or pushes a new one.
//!
//! A scan (see `docs/reclaim-algorithm.md`) issues the heavy barrier, collects every published
//! hazard from every record, sorts them, and frees each retired object of the scanning record
//! whose address is not among them. The next scan is due after `max(batch, hazards seen)` more
//! retirements, which keeps the scan cost per retired object constant and the number of objects
//! a record can hold back bounded.

use crate::barrier;
use crate::guard::Guard;
use crate::record::{untag, OwnerState, Record};
use crate::sync::{AtomicPtr, Ordering};
use core::ptr::{self, NonNull};

/// Entries in the per-collector table of home records; threads with a larger index use the
/// shared slow path.
#[cfg(not(loom))]
const HOME_SLOTS: usize = 64;

/// The default number of retirements between scans of one record.
pub const DEFAULT_BATCH_SIZE: usize = 256;

/// A reclamation domain: one per data structure (or group of structures that share nodes).
///
/// ```
/// use memward_reclaim::Collector;
/// use std::sync::atomic::{AtomicPtr, Ordering};
///
/// let collector = Collector::new();
/// let shared = AtomicPtr::new(Box::into_raw(Box::new(7u64)));
///
/// let guard = collector.enter();
/// let p = guard.protect(&shared);
/// // SAFETY: `p` is protected by `guard`, so it stays valid while the guard lives.
/// assert_eq!(unsafe { *p }, 7);
///
/// // Unlink, then retire: the value is freed once no guard protects it.
/// let old = shared.swap(Box::into_raw(Box::new(8u64)), Ordering::AcqRel);
/// // SAFETY: `old` came from `Box::into_raw`, is unlinked and is retired once.
/// unsafe { guard.retire(old) };
/// drop(guard);
/// # // SAFETY: the last value is no longer shared.
/// # drop(unsafe { Box::from_raw(shared.load(Ordering::Relaxed)) });
/// ```
pub struct Collector {
    /// Head of the push-only list of records.
    records: AtomicPtr<Record>,
    /// Home record of each thread index (null until the thread first enters).
    #[cfg(not(loom))]
    homes: Box<[AtomicPtr<Record>]>,
    batch: usize,
}

// SAFETY: the collector owns its records and the retired objects in them; retired objects are
// `Send` (required by `retire`, promised by `retire_with`'s contract), and all shared state is
// atomic or guarded by the `in_use` ownership protocol.
unsafe impl Send for Collector {}
// SAFETY: as above; `&Collector` only gives access to atomics and to records claimed through
// `in_use`.
unsafe impl Sync for Collector {}

/// Counters of a collector, summed over its records.
///
/// ```
/// let collector = memward_reclaim::Collector::new();
/// let stats = collector.stats();
/// assert_eq!((stats.retired, stats.reclaimed), (0, 0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Objects retired so far.
    pub retired: usize,
    /// Objects reclaimed so far (by scans; `Collector`'s drop is not counted).
    pub reclaimed: usize,
    /// Records (one per concurrently live guard, high-water mark).
    pub records: usize,
}

impl Stats {
    /// Retired objects not reclaimed yet.
    ///
    /// ```
    /// let stats = memward_reclaim::Stats { retired: 10, reclaimed: 7, records: 1 };
    /// assert_eq!(stats.unreclaimed(), 3);
    /// ```
    pub fn unreclaimed(&self) -> usize {
        self.retired.saturating_sub(self.reclaimed)
    }
}

impl Default for Collector {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector {
    /// A collector that scans after every [`DEFAULT_BATCH_SIZE`] retirements per guard record.
    ///
    /// ```
    /// let collector = memward_reclaim::Collector::new();
    /// drop(collector.enter());
    /// ```
    pub fn new() -> Self {
        Self::with_batch_size(DEFAULT_BATCH_SIZE)
    }

    /// A collector that scans a record after `batch` retirements (at least 1).
    ///
    /// Smaller batches hold back fewer objects and scan more often.
    ///
    /// ```
    /// let collector = memward_reclaim::Collector::with_batch_size(16);
    /// assert_eq!(collector.batch_size(), 16);
    /// ```
    pub fn with_batch_size(batch: usize) -> Self {
        barrier::init();
        Self {
            records: AtomicPtr::new(ptr::null_mut()),
            #[cfg(not(loom))]
            homes: (0..HOME_SLOTS)
                .map(|_| AtomicPtr::new(ptr::null_mut()))
                .collect(),
            batch: batch.max(1),
        }
    }

    /// The number of retirements between scans of one record.
    ///
    /// ```
    /// assert_eq!(memward_reclaim::Collector::new().batch_size(), memward_reclaim::DEFAULT_BATCH_SIZE);
    /// ```
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// Starts a critical section: pointers loaded with [`Guard::protect`] stay valid until the
    /// guard drops.
    ///
    /// Costs a thread-local read, a load and a store when the thread has no other guard of this
    /// collector; nested guards take a slower path. The guard may be sent to another thread.
    ///
    /// ```
    /// let collector = memward_reclaim::Collector::new();
    /// let outer = collector.enter();
    /// let inner = collector.enter(); // nesting is allowed
    /// drop((outer, inner));
    /// ```
    #[inline]
    pub fn enter(&self) -> Guard<'_> {
        #[cfg(not(loom))]
        if let Some(record) = self.claim_home() {
            return Guard::new(self, record);
        }
        self.enter_slow()
    }

    #[cfg(not(loom))]
    #[inline(always)]
    fn claim_home(&self) -> Option<NonNull<Record>> {
        let index = crate::thread_index::current()?;
        let home = self.homes.get(index)?;
        // Only this thread stores into its home entry; acquire pairs with an earlier owner of
        // the same index (which published it before handing the index back).
        let record = NonNull::new(home.load(Ordering::Acquire));
        let Some(record) = record else {
            return Some(self.create_home(home));
        };
        // SAFETY: records live as long as the collector.
        let r = unsafe { record.as_ref() };
        // Acquire pairs with the release in `Guard::drop` of a guard that was moved away: its
        // writes to the owner state happen before ours.
        if r.in_use.load(Ordering::Acquire) {
            return None;
        }
        // Only this thread sets a home record's flag, so nobody can claim it between the load
        // and the store.
        r.in_use.store(true, Ordering::Relaxed);
        Some(record)
    }

    #[cfg(not(loom))]
    #[cold]
    #[inline(never)]
    fn create_home(&self, home: &AtomicPtr<Record>) -> NonNull<Record> {
        let record = self.push_record(true);
        home.store(record.as_ptr(), Ordering::Release);
        record
    }

    #[cold]
    #[inline(never)]
    fn enter_slow(&self) -> Guard<'_> {
        let mut cur = self.records.load(Ordering::Acquire);
        while let Some(r) = NonNull::new(cur) {
            // SAFETY: records live as long as the collector.
            let rec = unsafe { r.as_ref() };
            if !rec.home
                && !rec.in_use.load(Ordering::Relaxed)
                && rec
                    .in_use
                    .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return Guard::new(self, r);
            }
            cur = rec.next as *mut Record;
        }
        Guard::new(self, self.push_record(false))
    }

    /// Allocates a claimed record and pushes it onto the list.
    fn push_record(&self, home: bool) -> NonNull<Record> {
        let record = Box::into_raw(Box::new(Record::new(home, self.batch)));
        let mut head = self.records.load(Ordering::Relaxed);
        loop {
            // SAFETY: the record is not published yet, so this is its only reference.
            unsafe { (*record).next = head };
            // Release publishes the initialised record (and its `next`) to list walkers.
            match self.records.compare_exchange_weak(
                head,
                record,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => head = actual,
            }
        }
        // SAFETY: `Box::into_raw` never returns null.
        unsafe { NonNull::new_unchecked(record) }
    }

    /// Frees every retired object of `record` that no hazard protects.
    ///
    /// The caller owns `record` (holds the guard) and passes its owner state.
    #[cold]
    #[inline(never)]
    pub(crate) fn scan(&self, record: &Record, st: &mut OwnerState) {
        // Every retired object was unlinked before it was retired; after this barrier, a reader
        // that had not yet published a hazard for it will see the unlink when it re-reads its
        // source, and a reader that had published one is visible to the loads below.
        barrier::heavy();
        let mut hazards = core::mem::take(&mut st.hazards);
        hazards.clear();
        let mut cur = self.records.load(Ordering::Acquire);
        while let Some(r) = NonNull::new(cur) {
            // SAFETY: records live as long as the collector.
            let rec = unsafe { r.as_ref() };
            rec.collect_hazards(&mut hazards);
            cur = rec.next as *mut Record;
        }
        hazards.sort_unstable();

        // Take the list out while user reclaim functions run: they may enter this collector.
        let mut retired = core::mem::take(&mut st.retired);
        let before = retired.len();
        retired.retain(|r| {
            if hazards.binary_search(&untag(r.ptr)).is_ok() {
                return true;
            }
            // SAFETY: `retire`'s contract: the object is unlinked, retired once, and `reclaim`
            // frees it; no hazard protects it and no new hazard can (it is unreachable).
            unsafe { (r.reclaim)(r.ptr) };
            false
        });
        let freed = before - retired.len();
        st.threshold = retired.len() + self.batch.max(hazards.len());
        st.retired = retired;
        st.hazards = hazards;
        let reclaimed = record.reclaimed_count.load(Ordering::Relaxed) + freed;
        record.reclaimed_count.store(reclaimed, Ordering::Relaxed);
    }

    /// Counters summed over all records (a racy but monotone snapshot).
    ///
    /// ```
    /// let collector = memward_reclaim::Collector::with_batch_size(1);
    /// let guard = collector.enter();
    /// // SAFETY: a fresh box, never shared, retired once.
    /// unsafe { guard.retire(Box::into_raw(Box::new(1u8))) };
    /// assert_eq!(collector.stats().retired, 1);
    /// assert_eq!(collector.stats().unreclaimed(), 0);
    /// ```
    pub fn stats(&self) -> Stats {
        let mut stats = Stats::default();
        let mut cur = self.records.load(Ordering::Acquire);
        while let Some(r) = NonNull::new(cur) {
            // SAFETY: records live as long as the collector.
            let rec = unsafe { r.as_ref() };
            // Reclaimed first: a record's reclaimed count never passes its retired count, and
            // reading it first keeps the snapshot's difference non-negative.
            stats.reclaimed += rec.reclaimed_count.load(Ordering::Acquire);
            stats.retired += rec.retired_count.load(Ordering::Acquire);
            stats.records += 1;
            cur = rec.next as *mut Record;
        }
        stats
    }
}

impl Drop for Collector {
    /// Reclaims every object still retired and frees the records.
    fn drop(&mut self) {
        let mut cur = self.records.load(Ordering::Acquire);
        while !cur.is_null() {
            // SAFETY: `&mut self` means no guard borrows the collector any more, so every record
            // and retired object is ours; each record came from `Box::into_raw` and is on the list
            // once.
            let mut record = unsafe { Box::from_raw(cur) };
            cur = record.next as *mut Record;
            let retired = record.owner.with_mut(|st| {
                // SAFETY: exclusive access through `&mut self`.
                core::mem::take(unsafe { &mut (*st).retired })
            });
            for r in retired {
                // SAFETY: retired objects are unreachable and no guard is alive.
                unsafe { (r.reclaim)(r.ptr) };
            }
            // SAFETY: nobody else can reach the record.
            unsafe { record.free_blocks() };
        }
    }
}

impl core::fmt::Debug for Collector {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Collector")
            .field("batch", &self.batch)
            .field("stats", &self.stats())
            .finish()
    }
}
