//! The thread's heap state: the candidate buffer, allocation pacing, and the entry to
//! the collector.
//!
//! Reference counting frees everything that is not part of a cycle. A cycle can only
//! become garbage when a strong count drops to a value above zero, so such drops put the
//! object in the candidate buffer (once: the `BUFFERED` flag). A collection examines the
//! subgraph reachable from the candidates, trial-deletion style: count the references
//! each member gets from other members, keep what is referenced from outside and what it
//! reaches, mark the rest `DEAD`, then run each destructor once and free (the phases and
//! their costs are in `collector`).
//!
//! The collector never changes a count itself: counts only change when real handles are
//! dropped by real destructors. That is why a `Trace` that reports too few edges can only
//! leak. Pacing: every `Gc::new` counts an allocation; when the count reaches the
//! threshold a collection runs, and the next threshold is the number of objects the
//! collection found live (at least [`MIN_THRESHOLD`]), so the work of examining live
//! objects is paid for by as many allocations: amortised O(1) per allocation. An explicit
//! `collect()` restarts the count, so a program that collects after building and dropping
//! each structure (a list of N nodes, a tree) gets one collection per structure.
use super::box_cache;
use super::collector;
use super::gc_box::{header, try_free, BUFFERED, DEAD};
use crate::trace::{Edge, Tracer};
use core::cell::{Cell, RefCell};
use core::mem::ManuallyDrop;

/// Allocations between automatic collections, at least.
pub(crate) const MIN_THRESHOLD: usize = 8192;

/// Per-thread collector state (what a collection needs, not what a drop needs).
pub(crate) struct Heap {
    /// The tracer and its scan, kept between collections (their capacity), so that a
    /// collection does not allocate and fault in fresh memory each time.
    spare: RefCell<Tracer>,
    collecting: Cell<bool>,
    threshold: Cell<usize>,
    /// Whether collections hold the `RefCell`/lock guards they trace through until they
    /// decide. Only needed once a hand-written (non-structural) `Trace` runs during a
    /// collection: structural impls run no other code, so nothing can move a reported
    /// handle. Set (for good) by the first collection that meets one; that collection
    /// decides nothing (see `collector::collect`).
    hold: Cell<bool>,
}

thread_local! {
    /// Allocations left before the next automatic collection. Kept apart from `HEAP`
    /// because it has no destructor, so reaching it costs no lazy-registration check.
    static COUNTDOWN: Cell<usize> = const { Cell::new(MIN_THRESHOLD) };
    /// The candidate buffer. Without a destructor for the same reason (it is on the path
    /// of every drop that leaves a count above zero); `HEAP`'s destructor releases it at
    /// thread exit, and a push that must grow it first makes sure `HEAP` is still there
    /// (registering that destructor the first time).
    static CANDIDATES: RefCell<ManuallyDrop<Vec<Edge>>> =
        const { RefCell::new(ManuallyDrop::new(Vec::new())) };
    static HEAP: Heap = const {
        Heap {
            spare: RefCell::new(Tracer::counting()),
            collecting: Cell::new(false),
            threshold: Cell::new(MIN_THRESHOLD),
            hold: Cell::new(false),
        }
    };
}

impl Drop for Heap {
    /// Thread exit: release the buffer's hold on dead objects so their memory comes back.
    /// Cycles still alive leak (running destructors during thread teardown, when other
    /// thread-locals may be gone, is worse); call `collect()` before a thread ends. The
    /// buffer is left without capacity, so a later push takes the slow path, finds `HEAP`
    /// gone and does not buffer.
    fn drop(&mut self) {
        let entries = CANDIDATES.with(|c| match c.try_borrow_mut() {
            Ok(mut c) => core::mem::take(&mut **c),
            Err(_) => Vec::new(),
        });
        for edge in entries {
            // SAFETY: BUFFERED kept the allocation alive until now.
            let h = unsafe { header(edge.ptr) };
            h.meta.set(h.meta.get() & !BUFFERED);
            // SAFETY: live (see above); a zero strong count implies a dropped value.
            unsafe { try_free(edge) }
        }
        box_cache::release(true);
    }
}

/// Makes sure the heap's destructor (which empties the box cache) will run at thread
/// exit; `false` if it already has.
pub(crate) fn register_exit() -> bool {
    HEAP.try_with(|_| ()).is_ok()
}

/// Puts an object whose strong count dropped (not to zero) into the candidate buffer.
///
/// # Safety
/// `edge` points to a live allocation with a non-zero strong count.
#[inline]
pub(crate) unsafe fn possible_root(edge: Edge) {
    // SAFETY: live per the caller.
    let h = unsafe { header(edge.ptr) };
    if h.meta.get() & (BUFFERED | DEAD) == 0 {
        push_candidate(edge);
    }
}

#[inline(never)]
fn push_candidate(edge: Edge) {
    CANDIDATES.with(|c| {
        // Busy only if the global allocator, growing the buffer, dropped a Gc: then this
        // one is simply not a candidate (a possible leak, never a dangling entry).
        if let Ok(mut buffer) = c.try_borrow_mut() {
            if buffer.len() < buffer.capacity() {
                // SAFETY: possible_root's caller guarantees the allocation is live.
                let h = unsafe { header(edge.ptr) };
                h.meta.set(h.meta.get() | BUFFERED);
                buffer.push(edge);
            } else {
                grow_and_push(&mut buffer, edge);
            }
        }
    });
}

/// The buffer is full: grow it, unless the thread is exiting.
#[cold]
#[inline(never)]
fn grow_and_push(buffer: &mut Vec<Edge>, edge: Edge) {
    // During thread teardown `HEAP` may be gone (and has emptied the buffer): then the
    // object is not a candidate either. Otherwise this registers HEAP's destructor.
    if HEAP.try_with(|_| ()).is_ok() {
        buffer.reserve(buffer.len().max(64));
        // SAFETY: possible_root's caller guarantees the allocation is live.
        let h = unsafe { header(edge.ptr) };
        h.meta.set(h.meta.get() | BUFFERED);
        buffer.push(edge);
    }
}

/// Counts one allocation and collects when the threshold is reached.
#[inline]
pub(crate) fn note_allocation() {
    let left = COUNTDOWN.get();
    if left > 1 {
        COUNTDOWN.set(left - 1);
    } else {
        collect_paced();
    }
}

#[cold]
#[inline(never)]
fn collect_paced() {
    let _ = HEAP.try_with(|heap| {
        COUNTDOWN.set(heap.threshold.get());
        if CANDIDATES.with(|c| c.try_borrow().is_ok_and(|c| !c.is_empty())) {
            collect_in(heap);
        }
    });
}

/// Collects the current thread's garbage cycles now.
///
/// Objects kept only by cycles (of thread-local [`Gc`](crate::Gc)s) are dropped, each
/// destructor once, and their memory returned. Does nothing when called from inside a
/// destructor that a collection is running.
///
/// ```
/// use memward_gc::{collect, Gc, Trace};
/// use std::cell::RefCell;
///
/// #[derive(Trace)]
/// struct Node(RefCell<Option<Gc<Node>>>);
/// let a = Gc::new(Node(RefCell::new(None)));
/// *a.0.borrow_mut() = Some(a.clone()); // a -> a
/// let weak = Gc::downgrade(&a);
/// drop(a);
/// assert!(weak.upgrade().is_some()); // the cycle keeps it
/// collect();
/// assert!(weak.upgrade().is_none());
/// ```
pub fn collect() {
    let _ = HEAP.try_with(collect_in);
}

/// Frees the buffers a heap keeps between collections (for tests that count bytes).
pub(crate) fn trim() {
    let _ = HEAP.try_with(|heap| {
        if !heap.collecting.get() {
            *heap.spare.borrow_mut() = Tracer::counting();
            box_cache::release(false);
            CANDIDATES.with(|c| {
                if let Ok(mut c) = c.try_borrow_mut() {
                    c.shrink_to_fit();
                }
            });
        }
    });
}

/// Resets the heap's `collecting` flag however the collection ends.
struct Running<'h>(&'h Heap);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.collecting.set(false);
    }
}

fn collect_in(heap: &Heap) {
    if heap.collecting.replace(true) {
        return;
    }
    let _running = Running(heap);
    let Ok(mut spare) = heap.spare.try_borrow_mut() else {
        return;
    };
    let mut tracer = core::mem::replace(&mut *spare, Tracer::counting());
    drop(spare);
    tracer.hold_guards = heap.hold.get();
    tracer.untrusted_ran = false;
    // The buffer and the scan's empty member list trade places: the candidates become
    // the first members, and the buffer refills into the capacity the last scan used.
    let taken = CANDIDATES.with(|c| match c.try_borrow_mut() {
        Ok(mut buffer) => {
            collector::take_candidates(&mut tracer, &mut buffer);
            true
        }
        Err(_) => false,
    });
    if !taken {
        return;
    }
    if !tracer.scan.is_empty() {
        let live = collector::collect(&mut tracer);
        if tracer.untrusted_ran {
            heap.hold.set(true);
        }
        heap.threshold.set(live.max(MIN_THRESHOLD));
        let _ = COUNTDOWN.try_with(|c| c.set(heap.threshold.get()));
    }
    // Keep the (now empty) buffers for the next collection, unless a destructor run by
    // this one already put a used tracer there.
    if let Ok(mut spare) = heap.spare.try_borrow_mut() {
        if spare.scan.capacity() == 0 {
            *spare = tracer;
        }
    }
}
