//! The graph one thread-safe collection examines: counting, rescue, validation, release.
//!
//! Split from `collector` (buffers, pacing, the collection's outline) because this is the
//! part the soundness argument is about; the argument is in `collector`'s docs and in
//! `docs/gc-design.md`. Every member holds a pin (one strong reference) from `add` until
//! `release`, so its value stays alive however mutators behave; the count is only a
//! hypothesis; `validate` decides what dies.
use super::gc_box::{count, header, release_strong_quiet, release_weak, DEAD, DEC, PENDING};
use crate::trace::{Edge, Tracer};
use core::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Longest pin-to-validation window accepted.
const MAX_WINDOW: Duration = Duration::from_secs(1);

/// The subgraph a collection examines. Each member holds one pin (strong reference).
#[derive(Default)]
pub(crate) struct Graph {
    nodes: Vec<Edge>,
    /// State word right after pinning.
    seen: Vec<u64>,
    /// Strong references (without the pin) minus edges from members.
    refs: Vec<u64>,
    targets: Vec<usize>,
    starts: Vec<usize>,
    live: Vec<bool>,
    /// Validated garbage (indices); filled by `validate`.
    garbage: Vec<usize>,
    /// Set by `release`; until then dropping the graph means a `trace` panicked.
    released: bool,
}

impl Drop for Graph {
    /// A `trace` panicked (count or re-trace): nothing dies. Members leave the graph
    /// (`slot` cleared, so a later collection does not take them for its own), lose
    /// `PENDING` (upgrades would wait for ever), and give their pin back as a drop that
    /// makes them candidates again; a member whose pin is its last reference keeps it
    /// (leaks) rather than have its value dropped while unwinding.
    fn drop(&mut self) {
        if self.released {
            return;
        }
        for &edge in &self.nodes {
            // SAFETY: pinned until the end of this iteration.
            let h = unsafe { header(edge.ptr) };
            h.slot.store(0, Ordering::Relaxed);
            h.word.fetch_and(!PENDING, Ordering::AcqRel);
            if count(h.word.load(Ordering::Acquire)) > 1 {
                // SAFETY: we own the pin (a strong reference) and give it up here.
                unsafe { super::collector::drop_as_candidate(edge) };
            }
        }
    }
}

impl Graph {
    pub(crate) fn add(&mut self, edge: Edge, seen: u64, refs: u64) -> usize {
        self.nodes.push(edge);
        self.seen.push(seen);
        self.refs.push(refs);
        // SAFETY: pinned (the caller just added a strong reference).
        let h = unsafe { header(edge.ptr) };
        h.slot.store(self.nodes.len(), Ordering::Relaxed);
        self.nodes.len() - 1
    }

    pub(crate) fn count(&mut self, tracer: &mut Tracer) {
        let mut i = 0;
        while i < self.nodes.len() {
            self.starts.push(self.targets.len());
            // A pin was taken only if the object was not DEAD, and only a collection drops a
            // value with strong references (collections do not overlap).
            // SAFETY: pinned, so alive and its value not dropped (above). Only reports
            // through structural impls count (`Tracer::trusted`); anything else a
            // `trace` does shows in the state words, which `validate` checks.
            unsafe { self.nodes[i].trace(tracer) };
            if tracer.take_opaque() {
                self.refs[i] = u64::MAX;
            }
            for edge in core::mem::take(&mut tracer.sync_edges) {
                // SAFETY: reported by a pinned value that owns this handle: live.
                let h = unsafe { header(edge.ptr) };
                let slot = h.slot.load(Ordering::Relaxed);
                let j = if slot != 0 {
                    // More edges than counted references happens legitimately when a
                    // mutator cloned a handle after the pin: validation then fails.
                    let j = slot - 1;
                    self.refs[j] = self.refs[j].saturating_sub(1);
                    j
                } else {
                    match h.try_inc_strong() {
                        // minus our pin and minus this edge
                        Some(word) => self.add(edge, word, (count(word) - 1).saturating_sub(1)),
                        None => continue, // dead: a handle stored by a destructor
                    }
                };
                self.targets.push(j);
            }
            tracer.unsync_edges.clear();
            i += 1;
        }
        self.starts.push(self.targets.len());
    }

    pub(crate) fn rescue(&mut self) -> usize {
        let n = self.nodes.len();
        self.live = vec![false; n];
        let mut stack: Vec<usize> = (0..n).filter(|&i| self.refs[i] > 0).collect();
        for &i in &stack {
            self.live[i] = true;
        }
        let mut live = stack.len();
        while let Some(i) = stack.pop() {
            for &j in &self.targets[self.starts[i]..self.starts[i + 1]] {
                if !self.live[j] {
                    self.live[j] = true;
                    live += 1;
                    stack.push(j);
                }
            }
        }
        live
    }

    /// Phase 4 (see the module docs). Candidates that fail a check, and everything they
    /// reach, are moved to the live side; the rest is marked DEAD and recorded as
    /// garbage. Returns false (nothing dies) only when the window was too long.
    pub(crate) fn validate(&mut self, started: Instant) -> bool {
        let n = self.nodes.len();
        let mut in_g: Vec<bool> = self.live.iter().map(|&l| !l).collect();
        let mut pending = vec![false; n];
        // Pass 1: no count changed since the pin; from here on upgrades wait.
        let mut suspects = Vec::new();
        for i in (0..n).filter(|&i| in_g[i]) {
            // SAFETY: pinned.
            let h = unsafe { header(self.nodes[i].ptr) };
            let seen = self.seen[i];
            match h
                .word
                .compare_exchange(seen, seen | PENDING, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => pending[i] = true,
                Err(_) => suspects.push(i),
            }
        }
        let counted = Adjacency {
            targets: core::mem::take(&mut self.targets),
            starts: core::mem::take(&mut self.starts),
        };
        counted.remove_reachable(&suspects, &mut in_g);
        // Re-trace under held guards until the remaining set is closed (a few rounds at
        // most: each round only removes candidates).
        let mut tracer;
        let mut round = 0;
        loop {
            tracer = Tracer::new(true);
            let (retraced, failed) = self.retrace(&in_g, &mut tracer);
            if failed.is_empty() {
                // Pass 2: still no count changed, so the handles found are all there
                // are. Removing a changed candidate with everything its handles reach
                // keeps the rest closed (no removed member points into it).
                let changed: Vec<usize> = (0..n)
                    .filter(|&i| in_g[i])
                    .filter(|&i| {
                        // SAFETY: pinned.
                        let h = unsafe { header(self.nodes[i].ptr) };
                        h.word.load(Ordering::Acquire) != self.seen[i] | PENDING
                    })
                    .collect();
                retraced.remove_reachable(&changed, &mut in_g);
                break;
            }
            drop(tracer); // the next round takes the same locks again
            retraced.remove_reachable(&failed, &mut in_g);
            round += 1;
            if round == 4 {
                in_g.iter_mut().for_each(|g| *g = false);
                tracer = Tracer::new(false);
                break;
            }
        }
        let in_time = started.elapsed() < MAX_WINDOW;
        drop(tracer);
        for i in 0..n {
            // SAFETY: pinned.
            let h = unsafe { header(self.nodes[i].ptr) };
            if in_g[i] && in_time {
                // Garbage: nothing outside can touch this word now, but keep it atomic.
                h.word.fetch_xor(PENDING | DEAD, Ordering::AcqRel);
                self.garbage.push(i);
            } else {
                if pending[i] {
                    h.word.fetch_and(!PENDING, Ordering::AcqRel);
                }
                self.live[i] = true;
            }
        }
        in_time
    }

    /// Traces the candidates still in `in_g` again, holding their locks; returns their
    /// edges to each other and the candidates that are not closed: whose references
    /// found inside other candidates differ from their count (minus our pin), or whose
    /// contents were in use.
    fn retrace(&self, in_g: &[bool], tracer: &mut Tracer) -> (Adjacency, Vec<usize>) {
        let n = self.nodes.len();
        let mut inbound = vec![0u64; n];
        let mut adjacency = Adjacency {
            targets: Vec::new(),
            starts: Vec::with_capacity(n + 1),
        };
        let mut failed = Vec::new();
        for i in 0..n {
            adjacency.starts.push(adjacency.targets.len());
            if !in_g[i] {
                continue;
            }
            // SAFETY: pinned and not DEAD; guards stay in `tracer`, dropped before any
            // value is.
            unsafe { self.nodes[i].trace(tracer) };
            if tracer.take_opaque() {
                failed.push(i);
            }
            tracer.unsync_edges.clear();
            for edge in tracer.sync_edges.drain(..) {
                // SAFETY: reported by a pinned value that owns the handle: live.
                let slot = unsafe { header(edge.ptr) }.slot.load(Ordering::Relaxed);
                if slot != 0 && in_g[slot - 1] {
                    inbound[slot - 1] += 1;
                    adjacency.targets.push(slot - 1);
                }
            }
        }
        adjacency.starts.push(adjacency.targets.len());
        failed.extend((0..n).filter(|&i| in_g[i] && inbound[i] != count(self.seen[i]) - 1));
        (adjacency, failed)
    }

    /// Phase 5: unpin live members; drop garbage values, then unpin them.
    pub(crate) fn release(mut self, kill: bool) {
        self.released = true;
        for &edge in &self.nodes {
            // SAFETY: pinned.
            unsafe { header(edge.ptr) }.slot.store(0, Ordering::Relaxed);
        }
        let garbage: Vec<Edge> = if kill {
            self.garbage.iter().map(|&i| self.nodes[i]).collect()
        } else {
            Vec::new()
        };
        for (i, &edge) in self.nodes.iter().enumerate() {
            if !kill || self.live[i] {
                // SAFETY: we own this pin. Not re-buffered: a live object's count only
                // went back to what it was.
                unsafe { release_strong_quiet(edge) };
            }
        }
        let mut dropping = Unpin {
            garbage: &garbage,
            next: 0,
        };
        while dropping.next < garbage.len() {
            let edge = garbage[dropping.next];
            dropping.next += 1;
            // Validated garbage, DEAD: no handle outside garbage values exists or can be
            // made; destructors run one at a time and find their fellows DEAD.
            // SAFETY: so nothing references this initialised (pinned while alive) value.
            unsafe { (edge.vtable.drop_value)(edge.ptr) }
        }
    }
}

/// Edges between members, by index: member `i`'s are `targets[starts[i]..starts[i + 1]]`.
struct Adjacency {
    targets: Vec<usize>,
    starts: Vec<usize>,
}

impl Adjacency {
    /// Clears `in_g` for `from` and everything reachable from it.
    fn remove_reachable(&self, from: &[usize], in_g: &mut [bool]) {
        let mut stack: Vec<usize> = from.iter().copied().filter(|&i| in_g[i]).collect();
        for &i in &stack {
            in_g[i] = false;
        }
        while let Some(i) = stack.pop() {
            if i + 1 >= self.starts.len() {
                continue;
            }
            for &j in &self.targets[self.starts[i]..self.starts[i + 1]] {
                if in_g[j] {
                    in_g[j] = false;
                    stack.push(j);
                }
            }
        }
    }
}

/// Releases the garbage's pins after the destructors, also when one panics (the values
/// not yet dropped are then leaked).
struct Unpin<'g> {
    garbage: &'g [Edge],
    next: usize,
}

impl Drop for Unpin<'_> {
    fn drop(&mut self) {
        for &edge in self.garbage {
            // SAFETY: we own the pin; the word is DEAD so a zero count only releases the
            // implicit weak reference (the value is dropped or leaked, never again).
            let h = unsafe { header(edge.ptr) };
            let old = h.word.fetch_add(DEC, Ordering::AcqRel);
            if count(old) == 1 {
                // SAFETY: the strong side is empty and the value gone.
                unsafe { release_weak(edge) };
            }
        }
    }
}
