//! The thread's heap state: the candidate buffer, allocation pacing, and the collector.
//!
//! Reference counting frees everything that is not part of a cycle. A cycle can only
//! become garbage when a strong count drops to a value above zero, so such drops put the
//! object in the candidate buffer (once: the `BUFFERED` flag). A collection examines the
//! subgraph reachable from the candidates, trial-deletion style:
//!
//! 1. *count*: each object in the set gets `refs = strong`; every edge between two
//!    set members, as reported by `Trace`, subtracts one from its target. An object left
//!    with `refs > 0` is referenced from outside the set.
//! 2. *rescue*: everything reachable (over the recorded edges) from such an object, or
//!    from an object whose contents could not be traced right now, is live.
//! 3. *kill*: the rest is garbage. All of it is marked `DEAD` before any destructor runs,
//!    so a destructor that reaches another member finds it dead (`Gc::try_deref` says
//!    `None`, deref panics) instead of finding freed memory.
//! 4. *drop*: each garbage value is dropped once; memory is kept (`IN_SET`).
//! 5. *free*: only now is memory freed, and only where no handle is left (a destructor
//!    may have stored a clone somewhere: that object stays allocated, dead, until the
//!    clone goes).
//!
//! The collector never changes a count itself: counts only change when real handles are
//! dropped by real destructors. That is why a `Trace` that reports too few edges can only
//! leak. Pacing: every `Gc::new` counts an allocation; when the count reaches the
//! threshold a collection runs, and the next threshold is the number of objects the
//! collection found live (at least [`MIN_THRESHOLD`]), so the work of examining live
//! objects is paid for by as many allocations: amortised O(1) per allocation.
use super::gc_box::{header, try_free, BUFFERED, DEAD, IN_SET, SHIFT};
use crate::trace::{Edge, Tracer};
use core::cell::{Cell, RefCell};

/// Allocations between automatic collections, at least.
pub(crate) const MIN_THRESHOLD: usize = 8192;

/// Per-thread state.
pub(crate) struct Heap {
    candidates: RefCell<Vec<Edge>>,
    /// Buffers kept between collections (their capacity), so that a collection does not
    /// allocate and fault in fresh memory each time.
    spare: RefCell<(Vec<Edge>, Graph)>,
    collecting: Cell<bool>,
    threshold: Cell<usize>,
}

thread_local! {
    /// Allocations left before the next automatic collection. Kept apart from `HEAP`
    /// because it has no destructor, so reaching it costs no lazy-registration check.
    static COUNTDOWN: Cell<usize> = const { Cell::new(MIN_THRESHOLD) };
    static HEAP: Heap = const {
        Heap {
            candidates: RefCell::new(Vec::new()),
            spare: RefCell::new((Vec::new(), Graph::new())),
            collecting: Cell::new(false),
            threshold: Cell::new(MIN_THRESHOLD),
        }
    };
}

impl Drop for Heap {
    /// Thread exit: release the buffer's hold on dead objects so their memory comes back.
    /// Cycles still alive leak (running destructors during thread teardown, when other
    /// thread-locals may be gone, is worse); call `collect()` before a thread ends.
    fn drop(&mut self) {
        for edge in self.candidates.get_mut().drain(..) {
            // SAFETY: BUFFERED kept the allocation alive until now.
            let h = unsafe { header(edge.ptr) };
            h.meta.set(h.meta.get() & !BUFFERED);
            // SAFETY: live (see above); a zero strong count implies a dropped value.
            unsafe { try_free(edge) }
        }
    }
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
    // During thread teardown the buffer may be gone: then the object is simply not a
    // candidate (a possible leak, never a dangling entry).
    let _ = HEAP.try_with(|heap| {
        // SAFETY: possible_root's caller guarantees the allocation is live.
        let h = unsafe { header(edge.ptr) };
        h.meta.set(h.meta.get() | BUFFERED);
        heap.candidates.borrow_mut().push(edge);
    });
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
        if !heap.candidates.borrow().is_empty() {
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
            *heap.spare.borrow_mut() = (Vec::new(), Graph::new());
            heap.candidates.borrow_mut().shrink_to_fit();
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
    let (spare_buffer, mut graph) = core::mem::take(&mut *heap.spare.borrow_mut());
    let mut roots = core::mem::replace(&mut *heap.candidates.borrow_mut(), spare_buffer);
    for &edge in &roots {
        // SAFETY: BUFFERED kept the allocation alive until now.
        let h = unsafe { header(edge.ptr) };
        let meta = h.meta.get() & !BUFFERED;
        h.meta.set(meta);
        if meta & DEAD != 0 {
            // SAFETY: live until now; dead means the value is gone (or the collector that
            // killed it still holds IN_SET, which try_free respects).
            unsafe { try_free(edge) };
        } else if meta & IN_SET == 0 {
            graph.add(edge, h.strong.get());
        }
    }
    roots.clear();
    if !graph.nodes.is_empty() {
        graph.count();
        let live = graph.rescue();
        heap.threshold.set(live.max(MIN_THRESHOLD));
        let _ = COUNTDOWN.try_with(|c| c.set(heap.threshold.get()));
        graph.kill_drop_free();
    }
    // Keep the (now empty) buffers for the next collection, unless a destructor run by
    // this one already put a fresh pair there.
    let mut spare = heap.spare.borrow_mut();
    if spare.0.capacity() == 0 && spare.1.nodes.capacity() == 0 {
        *spare = (roots, graph);
    }
}

/// The subgraph a collection examines.
pub(crate) struct Graph {
    /// Objects in the set, by index (stored in each header's meta while IN_SET).
    nodes: Vec<Edge>,
    /// `strong` minus the edges from inside the set; > 0 means referenced from outside.
    refs: Vec<usize>,
    /// Edge targets by index; member `i`'s are `targets[starts[i]..starts[i + 1]]`.
    targets: Vec<usize>,
    starts: Vec<usize>,
    /// Set by `rescue`.
    live: Vec<bool>,
    /// Garbage found by `kill_drop_free`.
    garbage: Vec<Edge>,
    tracer: Tracer,
}

impl Graph {
    const fn new() -> Self {
        Graph {
            nodes: Vec::new(),
            refs: Vec::new(),
            targets: Vec::new(),
            starts: Vec::new(),
            live: Vec::new(),
            garbage: Vec::new(),
            tracer: Tracer::new(false),
        }
    }

    fn add(&mut self, edge: Edge, refs: usize) -> usize {
        let index = self.nodes.len();
        // SAFETY: edges are only added while their allocation is live (buffer entry or an
        // edge reported by a live value), and IN_SET keeps it so until `kill_drop_free`.
        let h = unsafe { header(edge.ptr) };
        h.meta
            .set((h.meta.get() & ((1 << SHIFT) - 1)) | IN_SET | (index << SHIFT));
        self.nodes.push(edge);
        self.refs.push(refs);
        index
    }

    /// Traces member `i` and hands each edge to a member not yet dead to `f`.
    fn edges_of(&mut self, i: usize, mut f: impl FnMut(&mut Self, Edge, &super::gc_box::Header)) {
        // SAFETY: members are live (IN_SET) and not DEAD (checked when added), and no
        // code that could drop a value runs during a collection's analysis (Trace's
        // contract).
        unsafe { self.nodes[i].trace(&mut self.tracer) };
        if self.tracer.take_opaque() {
            self.refs[i] = usize::MAX; // in use right now: treat as referenced
        }
        self.tracer.sync_edges.clear(); // sync objects are the sync collector's business
        let mut edges = core::mem::take(&mut self.tracer.unsync_edges);
        for &edge in &edges {
            // SAFETY: a live value reported an edge it owns: its target is live.
            let h = unsafe { header(edge.ptr) };
            if h.meta.get() & DEAD == 0 {
                f(self, edge, h);
            } // else: already collected; its memory is kept by this very handle
        }
        edges.clear();
        self.tracer.unsync_edges = edges;
    }

    /// Phase 1: trace every member once, recording the edges between members and
    /// subtracting them from their targets' counts.
    fn count(&mut self) {
        let mut i = 0;
        while i < self.nodes.len() {
            self.starts.push(self.targets.len());
            self.edges_of(i, |g, edge, h| {
                let meta = h.meta.get();
                let j = if meta & IN_SET != 0 {
                    let j = meta >> SHIFT;
                    debug_assert!(g.refs[j] > 0, "Trace reported more edges than exist");
                    g.refs[j] = g.refs[j].saturating_sub(1);
                    j
                } else {
                    g.add(edge, h.strong.get().saturating_sub(1))
                };
                g.targets.push(j);
            });
            i += 1;
        }
        self.starts.push(self.targets.len());
    }

    /// Phase 2: mark live everything reachable (over the recorded edges) from a member
    /// referenced from outside. Returns the number of live members.
    fn rescue(&mut self) -> usize {
        let n = self.nodes.len();
        self.live.clear();
        self.live.resize(n, false);
        let mut stack: Vec<usize> = (0..n).filter(|&i| self.refs[i] > 0).collect();
        for &i in &stack {
            self.live[i] = true;
        }
        let mut count = stack.len();
        while let Some(i) = stack.pop() {
            for &j in &self.targets[self.starts[i]..self.starts[i + 1]] {
                if !self.live[j] {
                    self.live[j] = true;
                    count += 1;
                    stack.push(j);
                }
            }
        }
        count
    }

    /// Phases 3 to 5: release live members; mark garbage DEAD, drop it, free it. Leaves
    /// the graph empty (capacity kept).
    fn kill_drop_free(&mut self) {
        let mut garbage = core::mem::take(&mut self.garbage);
        for (i, &edge) in self.nodes.iter().enumerate() {
            // SAFETY: IN_SET kept every member live.
            let h = unsafe { header(edge.ptr) };
            let flags = h.meta.get() & ((1 << SHIFT) - 1);
            if self.live[i] {
                h.meta.set(flags & !IN_SET);
            } else {
                h.meta.set(flags | DEAD); // keeps IN_SET: memory stays until freed below
                garbage.push(edge);
            }
        }
        self.nodes.clear();
        self.refs.clear();
        self.targets.clear();
        self.starts.clear();
        self.live.clear();
        {
            let mut dropping = DropPhase {
                garbage: &garbage,
                next: 0,
            };
            while dropping.next < garbage.len() {
                let edge = garbage[dropping.next];
                dropping.next += 1;
                // Every member was DEAD before this loop, so no new reference to their
                // values can be made; none existed from outside (all strong counts were
                // accounted for by garbage values); destructors run one at a time and
                // cannot deref a dead Gc. The value is initialised: not DEAD before.
                // SAFETY: so nothing references this value (see above and the module docs).
                unsafe { (edge.vtable.drop_value)(edge.ptr) }
            }
        }
        garbage.clear();
        self.garbage = garbage;
    }
}

impl Default for Graph {
    fn default() -> Self {
        Graph::new()
    }
}

/// Frees the garbage once destructors are done, also when one of them panics (then the
/// values not yet dropped are leaked, never dropped twice or freed under a handle).
struct DropPhase<'g> {
    garbage: &'g [Edge],
    next: usize,
}

impl Drop for DropPhase<'_> {
    fn drop(&mut self) {
        for &edge in self.garbage {
            // SAFETY: IN_SET kept it live until now.
            let h = unsafe { header(edge.ptr) };
            h.meta.set(h.meta.get() & ((1 << SHIFT) - 1) & !IN_SET);
            // SAFETY: live; DEAD and the value dropped (or leaked after a panic).
            unsafe { try_free(edge) };
        }
    }
}
