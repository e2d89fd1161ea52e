//! Records: the unit a guard owns while it lives.
//!
//! A record holds two things. Its *hazard slots* are shared: the owner writes the addresses it
//! protects, every reclaimer reads them all. They live in a chain of fixed blocks (the first one
//! inline) that only grows, so a reclaimer can walk the chain without locks while the owner
//! appends, and a guard may protect any number of pointers. Its *owner state* (the next free
//! slot, the retired list, the scan threshold) is touched only by the guard that holds the
//! record; exclusivity comes from the `in_use` flag, set when a guard claims the record and
//! cleared (with release ordering) when it drops. Records are never freed before their
//! collector, which is what lets readers and reclaimers dereference them without further care.

use crate::sync::{AtomicBool, AtomicPtr, AtomicUsize, Ordering, UnsafeCell};
use core::ptr;

/// Hazard slots per block; a guard that protects more than this appends a block.
pub(crate) const SLOTS_PER_BLOCK: usize = 8;

/// One block of hazard slots.
pub(crate) struct SlotBlock {
    pub(crate) slots: [AtomicPtr<()>; SLOTS_PER_BLOCK],
    pub(crate) next: AtomicPtr<SlotBlock>,
}

impl SlotBlock {
    fn new() -> Self {
        Self {
            slots: core::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            next: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

/// A retired object and the function that frees it.
pub(crate) struct Retired {
    pub(crate) ptr: *mut (),
    pub(crate) reclaim: unsafe fn(*mut ()),
}

/// State only the record's current owner touches.
pub(crate) struct OwnerState {
    /// The block that holds the next free slot; null means the record's inline block.
    pub(crate) cur: *const SlotBlock,
    /// Slots used in `cur`.
    pub(crate) cur_used: usize,
    /// Retired objects waiting for a scan.
    pub(crate) retired: Vec<Retired>,
    /// Scan when `retired.len()` reaches this.
    pub(crate) threshold: usize,
    /// Scratch buffer for the hazards a scan collects (kept to avoid reallocating).
    pub(crate) hazards: Vec<usize>,
}

/// A record: hazard slots plus the state of the guard that owns it.
pub(crate) struct Record {
    /// The next record in the collector's list; written before the record is published.
    pub(crate) next: *const Record,
    /// Set while a guard owns this record.
    pub(crate) in_use: AtomicBool,
    /// Home records are claimed only by the thread whose index they belong to.
    pub(crate) home: bool,
    pub(crate) first: SlotBlock,
    pub(crate) owner: UnsafeCell<OwnerState>,
    /// Objects retired through this record (statistics; written only by the owner).
    pub(crate) retired_count: AtomicUsize,
    /// Objects reclaimed by scans of this record (statistics; written only by the owner).
    pub(crate) reclaimed_count: AtomicUsize,
}

impl Record {
    /// A new record, already claimed by its creator.
    pub(crate) fn new(home: bool, batch: usize) -> Self {
        Self {
            next: ptr::null(),
            in_use: AtomicBool::new(true),
            home,
            first: SlotBlock::new(),
            owner: UnsafeCell::new(OwnerState {
                cur: ptr::null(),
                cur_used: 0,
                retired: Vec::new(),
                threshold: batch,
                hazards: Vec::new(),
            }),
            retired_count: AtomicUsize::new(0),
            reclaimed_count: AtomicUsize::new(0),
        }
    }

    /// The next free hazard slot, appending a block when the current one is full.
    #[inline(always)]
    pub(crate) fn next_slot<'r>(&'r self, st: &mut OwnerState) -> &'r AtomicPtr<()> {
        let block = if st.cur.is_null() {
            &self.first
        } else {
            // SAFETY: `cur` points at a block of this record's chain; blocks live as long as the
            // record.
            unsafe { &*st.cur }
        };
        if st.cur_used < SLOTS_PER_BLOCK {
            let slot = &block.slots[st.cur_used];
            st.cur_used += 1;
            return slot;
        }
        self.next_slot_slow(block, st)
    }

    #[cold]
    #[inline(never)]
    fn next_slot_slow<'r>(&'r self, full: &'r SlotBlock, st: &mut OwnerState) -> &'r AtomicPtr<()> {
        let mut next = full.next.load(Ordering::Acquire);
        if next.is_null() {
            next = Box::into_raw(Box::new(SlotBlock::new()));
            // Release: a reclaimer that sees the link sees initialised (null) slots.
            full.next.store(next, Ordering::Release);
        }
        st.cur = next;
        st.cur_used = 1;
        // SAFETY: `next` is a block of this record's chain, alive as long as the record.
        unsafe { &(*next).slots[0] }
    }

    /// Clears every slot the owner used; called when a guard drops or resets.
    ///
    /// Release stores: the reader's accesses to a node happen before a reclaimer that sees the
    /// cleared slot (with acquire) frees it.
    #[inline]
    pub(crate) fn clear_slots(&self, st: &mut OwnerState) {
        if st.cur.is_null() {
            // `take` rather than a slice index: no bounds-check branch on the guard-drop path.
            for slot in self.first.slots.iter().take(st.cur_used) {
                slot.store(ptr::null_mut(), Ordering::Release);
            }
        } else {
            self.clear_slots_chain(st);
            st.cur = ptr::null();
        }
        st.cur_used = 0;
    }

    #[cold]
    fn clear_slots_chain(&self, st: &mut OwnerState) {
        let mut block: *const SlotBlock = &self.first;
        loop {
            // SAFETY: every block on the chain up to `cur` is alive as long as the record.
            let b = unsafe { &*block };
            let used = if block == st.cur {
                st.cur_used
            } else {
                SLOTS_PER_BLOCK
            };
            for slot in &b.slots[..used] {
                slot.store(ptr::null_mut(), Ordering::Release);
            }
            if block == st.cur {
                break;
            }
            block = b.next.load(Ordering::Relaxed);
        }
    }

    /// Appends every non-null hazard of this record to `out` (addresses with the low three tag
    /// bits cleared).
    pub(crate) fn collect_hazards(&self, out: &mut Vec<usize>) {
        let mut block: &SlotBlock = &self.first;
        loop {
            for slot in &block.slots {
                let p = slot.load(Ordering::Acquire);
                if !p.is_null() {
                    out.push(untag(p));
                }
            }
            let next = block.next.load(Ordering::Acquire);
            if next.is_null() {
                return;
            }
            // SAFETY: linked blocks live as long as the record.
            block = unsafe { &*next };
        }
    }

    /// Frees the overflow blocks; the record must be about to be dropped.
    ///
    /// # Safety
    ///
    /// No other thread may access the record any more.
    pub(crate) unsafe fn free_blocks(&mut self) {
        let mut next = self.first.next.load(Ordering::Relaxed);
        while !next.is_null() {
            // SAFETY: each block came from `Box::into_raw` in `next_slot_slow` and is linked once;
            // the caller guarantees nobody else reads the chain.
            let block = unsafe { Box::from_raw(next) };
            next = block.next.load(Ordering::Relaxed);
        }
    }
}

/// An address with its low three bits (where lock-free structures keep tags) cleared.
///
/// Comparing untagged addresses is conservative: a hazard may keep up to eight neighbouring byte
/// addresses alive, never fewer than the one it names.
#[inline(always)]
pub(crate) fn untag(p: *mut ()) -> usize {
    (p as usize) & !0b111
}
