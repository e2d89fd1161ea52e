//! Guards: protected loads and retirement.
//!
//! A guard owns one record for its whole life. [`Guard::protect`] publishes the loaded address in
//! the next free hazard slot and re-reads the source until the two agree (the hazard-pointer
//! protocol, with the reader-side barrier reduced to a compiler fence where `membarrier` exists);
//! every address a guard protects stays protected until the guard drops or [`Guard::reset`] runs.
//! Retiring appends to the record's list without allocating (once the list has grown) and scans
//! when the record's threshold is reached. Because the record, not the thread, holds the state,
//! a guard is `Send`: it can cross an `.await` or be handed to a worker thread.

use crate::collector::Collector;
use crate::record::{OwnerState, Record, Retired};
use crate::sync::{AtomicPtr, Ordering};
use core::marker::PhantomData;
use core::ptr::NonNull;

/// A critical section of a [`Collector`]; see [`Collector::enter`].
///
/// `Guard` is `Send` (it can move to another thread, for example across an `.await`) but not
/// `Sync`: one thread at a time uses it.
///
/// ```
/// fn assert_send<T: Send>(_: &T) {}
/// let collector = memward_reclaim::Collector::new();
/// let guard = collector.enter();
/// assert_send(&guard);
/// std::thread::scope(|s| {
///     s.spawn(move || drop(guard));
/// });
/// ```
pub struct Guard<'c> {
    collector: &'c Collector,
    record: NonNull<Record>,
    /// Not `Sync`: protect and retire mutate the record's owner state through `&self`.
    _not_sync: PhantomData<core::cell::Cell<()>>,
}

// SAFETY: the guard exclusively owns its record (the `in_use` flag), and the record's owner state
// holds only `Send` data (raw addresses of `Send` retired objects); moving the guard moves that
// ownership, with the happens-before edge the move itself provides.
unsafe impl Send for Guard<'_> {}

impl<'c> Guard<'c> {
    pub(crate) fn new(collector: &'c Collector, record: NonNull<Record>) -> Self {
        Self {
            collector,
            record,
            _not_sync: PhantomData,
        }
    }

    #[inline(always)]
    fn record(&self) -> &Record {
        // SAFETY: records live as long as the collector, which outlives the guard.
        unsafe { self.record.as_ref() }
    }

    /// Runs `f` on the owner state of this guard's record.
    #[inline(always)]
    fn with_state<R>(&self, f: impl FnOnce(&Record, &mut OwnerState) -> R) -> R {
        let record = self.record();
        record.owner.with_mut(|st| {
            // SAFETY: the guard owns the record (`in_use`), the guard is `!Sync`, and no method
            // calls back into the guard while this borrow lives (scans take the retired list out
            // before running user code), so this is the only reference to the owner state.
            f(record, unsafe { &mut *st })
        })
    }

    /// The collector this guard belongs to.
    ///
    /// ```
    /// let collector = memward_reclaim::Collector::new();
    /// let guard = collector.enter();
    /// assert!(std::ptr::eq(guard.collector(), &collector));
    /// ```
    pub fn collector(&self) -> &'c Collector {
        self.collector
    }

    /// Loads `src` and protects the result: it will not be reclaimed while this guard lives.
    ///
    /// The protection is only as good as `src`: the returned pointer is safe to dereference if
    /// `src` was itself reachable (not inside a retired node) at some moment during the call, so
    /// that the object it points to had not been retired yet. When `src` is a field of a node you
    /// protected earlier, check afterwards that that node is still linked (the usual hazard
    /// pointer rule, as in the Michael-Scott queue's dequeue). Up to three low tag bits on the
    /// pointer are allowed.
    ///
    /// ```
    /// use std::sync::atomic::AtomicPtr;
    /// let collector = memward_reclaim::Collector::new();
    /// let src = AtomicPtr::new(Box::into_raw(Box::new(5i32)));
    /// let guard = collector.enter();
    /// let p = guard.protect(&src);
    /// // SAFETY: protected by `guard`, and `src` is a root.
    /// assert_eq!(unsafe { *p }, 5);
    /// drop(guard);
    /// // SAFETY: never retired, no longer shared.
    /// drop(unsafe { Box::from_raw(p) });
    /// ```
    #[inline]
    pub fn protect<T>(&self, src: &AtomicPtr<T>) -> *mut T {
        self.with_state(|record, st| {
            let slot = record.next_slot(st);
            let mut p = src.load(Ordering::Relaxed);
            loop {
                slot.store(p.cast(), Ordering::Relaxed);
                // Store-load barrier (paired with the reclaimer's heavy barrier): either a scan
                // sees this hazard, or our re-read below sees the unlink that preceded it.
                crate::barrier::light();
                let q = src.load(Ordering::Acquire);
                if q == p {
                    return p;
                }
                p = q;
            }
        })
    }

    /// Drops every protection this guard holds, as if it were dropped and entered again, but
    /// keeps the record. Use it in long-lived guards that protect many pointers over time.
    ///
    /// Taking `&mut self` does not stop earlier pointers from being used; after `reset` they may
    /// be freed, and dereferencing them is the caller's bug.
    ///
    /// ```
    /// use std::sync::atomic::AtomicPtr;
    /// let collector = memward_reclaim::Collector::new();
    /// let src = AtomicPtr::new(std::ptr::null_mut::<u8>());
    /// let mut guard = collector.enter();
    /// for _ in 0..1000 {
    ///     let _ = guard.protect(&src);
    ///     guard.reset();
    /// }
    /// ```
    pub fn reset(&mut self) {
        self.with_state(|record, st| record.clear_slots(st));
    }

    /// Retires `ptr`: it is dropped as a `Box<T>` once no guard protects it.
    ///
    /// # Safety
    ///
    /// 1. `ptr` came from `Box::into_raw` (a `Box<T>` of the global allocator).
    /// 2. It has been unlinked: no shared location a later [`Guard::protect`] could load still
    ///    points to it.
    /// 3. It is retired once, and nothing frees it otherwise.
    /// 4. It is retired through the collector that protects it (the one this guard belongs to).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicPtr, Ordering};
    /// let collector = memward_reclaim::Collector::new();
    /// let head = AtomicPtr::new(Box::into_raw(Box::new(String::from("old"))));
    /// let guard = collector.enter();
    /// let old = head.swap(Box::into_raw(Box::new(String::from("new"))), Ordering::AcqRel);
    /// // SAFETY: from `Box::into_raw`, unlinked by the swap, retired once.
    /// unsafe { guard.retire(old) };
    /// // Retiring it a second time, or a pointer still reachable from `head`, would be a bug:
    /// // the string would be freed twice, or while a reader still uses it.
    /// # drop(guard);
    /// # // SAFETY: the last value is no longer shared.
    /// # drop(unsafe { Box::from_raw(head.load(Ordering::Relaxed)) });
    /// ```
    #[inline]
    pub unsafe fn retire<T: Send + 'static>(&self, ptr: *mut T) {
        // SAFETY: forwarded from this function's contract (clause 1 makes `drop_box` the right
        // reclaim function).
        unsafe { self.retire_with(ptr, drop_box::<T>) }
    }

    /// Retires `ptr`, to be freed by `reclaim(ptr)` once no guard protects it.
    ///
    /// # Safety
    ///
    /// 1. `reclaim(ptr)` is sound to call once, from any thread, at any later time before the
    ///    collector finishes dropping (so the pointee must be `Send`-like), and it must not panic.
    /// 2. `ptr` has been unlinked: no shared location a later [`Guard::protect`] could load still
    ///    points to it.
    /// 3. It is retired once, and nothing frees it otherwise.
    ///
    /// ```
    /// use std::sync::atomic::AtomicUsize;
    /// static FREED: AtomicUsize = AtomicUsize::new(0);
    ///
    /// /// # Safety
    /// /// `p` came from `Box::into_raw`.
    /// unsafe fn free_counted(p: *mut u32) {
    ///     // SAFETY: the caller passes a pointer from `Box::into_raw`.
    ///     drop(unsafe { Box::from_raw(p) });
    ///     FREED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    /// }
    ///
    /// let collector = memward_reclaim::Collector::with_batch_size(1);
    /// let guard = collector.enter();
    /// // SAFETY: a fresh box that was never shared; `free_counted` frees it once.
    /// unsafe { guard.retire_with(Box::into_raw(Box::new(3u32)), free_counted) };
    /// assert_eq!(FREED.load(std::sync::atomic::Ordering::Relaxed), 1);
    /// ```
    #[inline]
    pub unsafe fn retire_with<T>(&self, ptr: *mut T, reclaim: unsafe fn(*mut T)) {
        type Erased = unsafe fn(*mut ());
        // SAFETY: `unsafe fn(*mut T)` and `unsafe fn(*mut ())` have the same ABI (raw pointers to
        // sized types are ABI-compatible, per the `fn` pointer documentation), and the function is
        // only ever called with `ptr` itself.
        let reclaim = unsafe { core::mem::transmute::<unsafe fn(*mut T), Erased>(reclaim) };
        let collector = self.collector;
        self.with_state(|record, st| {
            st.retired.push(Retired {
                ptr: ptr.cast(),
                reclaim,
            });
            let count = record.retired_count.load(Ordering::Relaxed) + 1;
            record.retired_count.store(count, Ordering::Release);
            if st.retired.len() >= st.threshold {
                collector.scan(record, st);
            }
        });
    }

    /// Scans now, freeing whatever this guard's record holds that no hazard protects.
    ///
    /// ```
    /// let collector = memward_reclaim::Collector::new();
    /// let guard = collector.enter();
    /// // SAFETY: a fresh box, never shared, retired once.
    /// unsafe { guard.retire(Box::into_raw(Box::new(0u64))) };
    /// assert_eq!(collector.stats().unreclaimed(), 1);
    /// guard.flush();
    /// assert_eq!(collector.stats().unreclaimed(), 0);
    /// ```
    pub fn flush(&self) {
        let collector = self.collector;
        self.with_state(|record, st| collector.scan(record, st));
    }
}

impl Drop for Guard<'_> {
    #[inline]
    fn drop(&mut self) {
        let record = self.record();
        self.with_state(|record, st| record.clear_slots(st));
        // Release: our accesses to protected objects and to the owner state happen before the
        // next owner's claim (and, through the cleared slots, before any reclamation).
        record.in_use.store(false, Ordering::Release);
    }
}

impl core::fmt::Debug for Guard<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Guard").finish_non_exhaustive()
    }
}

/// Reclaims a retired `Box<T>`.
///
/// # Safety
///
/// `ptr` came from `Box::into_raw` and is dropped once.
unsafe fn drop_box<T>(ptr: *mut T) {
    // SAFETY: the caller's contract.
    drop(unsafe { Box::from_raw(ptr) });
}
