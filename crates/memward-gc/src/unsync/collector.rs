//! One thread-local collection: trial deletion over what the candidates reach.
//!
//! The phases, and why each is shaped the way it is (the soundness argument is in
//! `docs/gc-design.md`):
//!
//! 1. *count*: each member is traced exactly once. A reported handle goes straight from
//!    `Gc::trace` into [`Scan::count_edge`] (the tracer is in counting mode): a member's
//!    count of outside references lives in its own header (`meta` above the flag bits,
//!    starting at `strong`), so an edge between members is one decrement in the header
//!    the edge points to; a handle to an object not yet in the set adds it. The target of
//!    every such edge is also appended to one flat list (`targets`, cut per member by
//!    `ends`), so that the rescue works on exactly the edges that were counted, without
//!    tracing anything twice. `referenced` follows how many members still have outside
//!    references; a value that could not be traced now (a borrowed `RefCell`) is marked
//!    live at once.
//! 2. *rescue*, only if some member is referenced from outside or was marked: the headers
//!    switch from counts to member indices, and everything reachable over the recorded
//!    edges from those members is marked live. When every member's count reached zero
//!    (the usual case for a collection that finds a dropped cycle, tree or list) this
//!    phase does nothing at all.
//! 3. *kill*: live members leave the set; every other member is marked `DEAD` (and keeps
//!    `IN_SET`) before any destructor runs. Without a rescue that is every member, in
//!    place; after one the garbage is listed apart (it is usually the small part then).
//! 4. *drop and free*, one pass: each garbage value is dropped once; right after its own
//!    destructor the member leaves the set and its memory is freed if no handle is left.
//!    A member not yet reached by this pass keeps `IN_SET`, so a destructor that drops
//!    the last handle to it cannot free it before its own destructor ran; a member already
//!    passed is read by nothing but the handles still counted in its header, so freeing it
//!    when they are gone (in `release_last_strong`, by whoever drops the last one) is safe.
//!
//! No vector is allocated per collection: the scan keeps its capacity between collections
//! (the heap holds it while idle), and the candidate buffer and the member list trade
//! places, so a collection fills the buffer the previous one emptied.
use super::gc_box::{header, release_last_strong, try_free, Header, BUFFERED, DEAD, IN_SET, SHIFT};
use crate::trace::{Edge, Tracer};
use core::ptr::NonNull;

/// Set while a collection runs on members known to be live (rescued, or not traceable).
const MARK: usize = 8;
/// The flag bits of `meta`; above them a member's outside count (count phase) or its
/// index (rescue phase).
const FLAGS: usize = (1 << SHIFT) - 1;
/// One outside reference in `meta`'s count.
const ONE: usize = 1 << SHIFT;

/// The members of one collection and the edges between them.
pub(crate) struct Scan {
    /// The set, in the order found.
    members: Vec<Edge>,
    /// Each member's strong count when it joined: a member whose count differs after
    /// the count phase was touched by a `trace` and is kept (see `check_counts`).
    joined: Vec<usize>,
    /// Allocations the recorded edges point to (all members); member `i`'s edges are
    /// `targets[ends[i - 1]..ends[i]]` (from 0 for the first).
    targets: Vec<NonNull<()>>,
    ends: Vec<usize>,
    /// How many members have a non-zero outside count right now.
    referenced: usize,
    /// Some member is marked live already (it could not be traced).
    marked: bool,
    stack: Vec<usize>,
    /// The garbage, when a rescue found some members live.
    garbage: Vec<Edge>,
}

impl Scan {
    pub(crate) const fn new() -> Self {
        Scan {
            members: Vec::new(),
            joined: Vec::new(),
            targets: Vec::new(),
            ends: Vec::new(),
            referenced: 0,
            marked: false,
            stack: Vec::new(),
            garbage: Vec::new(),
        }
    }

    /// Counts one reported handle: `edge`, whose header is `h`. Inlined into every
    /// `trace` (it is the collector's innermost loop; a call per edge cost a third more).
    #[inline(always)]
    pub(crate) fn count_edge(&mut self, edge: Edge, h: &Header) {
        let meta = h.meta.get();
        if meta & (IN_SET | DEAD) == IN_SET {
            // Reported more often than counted would be a broken `Trace`: never below 0.
            if meta >= ONE {
                h.meta.set(meta - ONE);
                if meta < 2 * ONE {
                    self.referenced -= 1;
                }
            }
            self.targets.push(edge.ptr);
        } else if meta & DEAD == 0 {
            // This handle is one of the strong references: the others are outside so far.
            self.join(edge, h, h.strong.get().saturating_sub(1));
            self.targets.push(edge.ptr);
        } // else: a handle to an object a collection already destroyed; it keeps only memory
    }

    /// Adds a member with `outside` references not (yet) accounted for by members.
    #[inline]
    fn join(&mut self, edge: Edge, h: &Header, outside: usize) {
        // Counts never exceed `usize::MAX >> (SHIFT + 1)`, so the shift loses nothing.
        h.meta
            .set((h.meta.get() & FLAGS) | IN_SET | (outside << SHIFT));
        self.referenced += usize::from(outside > 0);
        self.members.push(edge);
        self.joined.push(h.strong.get());
    }

    /// Whether the set is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Capacity of the member list (zero for a fresh scan).
    pub(crate) fn capacity(&self) -> usize {
        self.members.capacity()
    }

    /// Empties the scan, keeping its capacity.
    fn clear(&mut self) {
        self.members.clear();
        self.joined.clear();
        self.targets.clear();
        self.ends.clear();
        self.stack.clear();
        self.garbage.clear();
        self.referenced = 0;
        self.marked = false;
    }
}

/// Moves the candidates out of `buffer` (which gets the scan's empty member list, and
/// its capacity, in exchange) and makes them the first members: each leaves the buffer
/// (`BUFFERED` cleared); dead ones are freed if nothing else holds them; the others join
/// the set with all their strong references counted as outside ones.
pub(crate) fn take_candidates(tracer: &mut Tracer, buffer: &mut Vec<Edge>) {
    let scan = &mut tracer.scan;
    debug_assert!(scan.members.is_empty());
    core::mem::swap(&mut scan.members, buffer);
    let mut referenced = 0;
    let joined = &mut scan.joined;
    scan.members.retain(|&edge| {
        // SAFETY: BUFFERED kept the allocation alive until now.
        let h = unsafe { header(edge.ptr) };
        let meta = h.meta.get() & !BUFFERED;
        h.meta.set(meta);
        if meta & DEAD != 0 {
            // SAFETY: live until now; a dead object's value is gone (try_free also checks
            // that no handle is left).
            unsafe { try_free(edge) };
            false
        } else {
            let outside = h.strong.get();
            // Entries are unique (BUFFERED), so none is in the set already; counts never
            // exceed `usize::MAX >> (SHIFT + 1)`, so the shift loses nothing.
            h.meta.set(meta | IN_SET | (outside << SHIFT));
            referenced += usize::from(outside > 0);
            joined.push(outside);
            true
        }
    });
    scan.referenced = referenced;
}

/// Runs phases 1 to 4 on a scan whose members were just added by `take_candidates`.
/// Returns the number of live members found. Leaves the scan empty.
pub(crate) fn collect(tracer: &mut Tracer) -> usize {
    // A panicking `trace` ends the collection: every member leaves the set untouched
    // (nothing dies), then the panic goes on.
    let counted = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| count(tracer)));
    if let Err(panic) = counted {
        abandon(tracer);
        std::panic::resume_unwind(panic);
    }
    check_counts(&mut tracer.scan);
    // A hand impl ran and the guards were not held (the thread had not met one
    // before): a reported handle may have been moved out of its cell, so nothing may
    // die this time. Every member is kept and goes back to the buffer; the heap holds
    // guards from now on.
    let retry = tracer.untrusted_ran && !tracer.hold_guards;
    if retry {
        keep_all(&mut tracer.scan);
    }
    let scan = &mut tracer.scan;
    let live = if scan.referenced > 0 || scan.marked {
        rescue(scan)
    } else {
        0
    };
    scan.targets.clear();
    scan.ends.clear();
    // (A rescue always finds its seeds live, so `live == 0` means it did not run.)
    if live == 0 {
        kill_all(&scan.members);
    } else {
        kill_unmarked(scan);
    }
    // Decided: the guards taken while tracing can go (before any value is dropped).
    tracer.release_held();
    let scan = &mut tracer.scan;
    drop_and_free(if live == 0 {
        &scan.members
    } else {
        &scan.garbage
    });
    if retry {
        rebuffer(&scan.members);
    }
    drop_orphans(scan);
    scan.clear();
    live
}

/// Marks every member live (a seed of the rescue).
fn keep_all(scan: &mut Scan) {
    for &member in &scan.members {
        // SAFETY: members are live (IN_SET).
        let h = unsafe { header(member.ptr) };
        h.meta.set(h.meta.get() | MARK);
    }
    scan.marked = true;
}

/// Puts former members (all kept) back into the candidate buffer.
fn rebuffer(members: &[Edge]) {
    for &member in members {
        // SAFETY: kept live by the collection: not freed (one with no handle left waits
        // for `drop_orphans`, which runs after this).
        let h = unsafe { header(member.ptr) };
        if h.strong.get() > 0 {
            // SAFETY: live, with a non-zero strong count.
            unsafe { super::heap::possible_root(member) };
        }
    }
}

/// After the count: a member whose strong count is not what it was when it joined had
/// handles made or dropped by a `trace` (a safe impl may do anything). Its count of
/// outside references may then be wrong, so it is kept (a seed of the rescue).
///
/// Why this suffices: a member is garbage only when its count at joining equals the
/// handles reported to it from members. Those reports come from structural impls only
/// (`Tracer::trusted`), so each is a distinct handle owned in place by a member's value,
/// which cannot be moved before the decision (inline in a value only reachable by `&`,
/// or behind a `RefCell`/lock guard the tracer holds; values of members are not dropped
/// while they are in the set, and `get_mut` refuses members). If the count is unchanged
/// now, those reported handles are all the handles there are: none is outside.
fn check_counts(scan: &mut Scan) {
    for (&member, &joined) in scan.members.iter().zip(&scan.joined) {
        // SAFETY: members are live (IN_SET).
        let h = unsafe { header(member.ptr) };
        if h.strong.get() != joined {
            h.meta.set(h.meta.get() | MARK);
            scan.marked = true;
        }
    }
}

/// A `trace` panicked during the count: releases the guards, then takes every member
/// out of the set as it was (flags other than `BUFFERED` and `DEAD` and the count
/// cleared) and back into the candidate buffer. A member whose last handle a `trace` dropped meanwhile (its value's drop was
/// left to the collection) is marked `DEAD` and its value leaked rather than dropped
/// while unwinding.
fn abandon(tracer: &mut Tracer) {
    tracer.release_held();
    let scan = &mut tracer.scan;
    for &member in &scan.members {
        // SAFETY: members are live (IN_SET).
        let h = unsafe { header(member.ptr) };
        let mut meta = h.meta.get() & (BUFFERED | DEAD);
        if h.strong.get() == 0 {
            meta |= DEAD;
        }
        h.meta.set(meta);
        if meta & DEAD == 0 {
            // Still a possible root: back into the buffer, for the next collection.
            // SAFETY: live, with a non-zero strong count.
            unsafe { super::heap::possible_root(member) };
        }
        // SAFETY: live until now; a zero strong count comes with DEAD (value gone or
        // leaked).
        unsafe { try_free(member) };
    }
    scan.clear();
}

/// Live members whose last handle a `trace` dropped during the count: their values'
/// drop was left to the collection (`release_last_strong` skips members); do it now
/// that they have left the set.
fn drop_orphans(scan: &mut Scan) {
    while let Some(i) = scan.stack.pop() {
        let member = scan.members[i];
        // SAFETY: a member until just now; with no strong handle it is freed only here.
        unsafe { release_last_strong(member) };
    }
}

/// Phase 1: traces every member once, counting and recording its edges.
fn count(tracer: &mut Tracer) {
    debug_assert!(tracer.counting);
    let mut i = 0;
    while let Some(&member) = tracer.scan.members.get(i) {
        // SAFETY: members are live (IN_SET) and not DEAD (checked when they joined), and
        // a member's value is not dropped while it is in the set (`release_last_strong`
        // leaves that to the collection).
        unsafe { member.trace(tracer) };
        if tracer.take_opaque() {
            // SAFETY: a member, live (above).
            let h = unsafe { header(member.ptr) };
            h.meta.set(h.meta.get() | MARK);
            tracer.scan.marked = true;
        }
        tracer.sync_edges.clear(); // (not filled while counting; cheap insurance)
        let end = tracer.scan.targets.len();
        tracer.scan.ends.push(end);
        i += 1;
    }
}

/// Phase 2: marks live every member referenced from outside, or marked already, and
/// everything reachable from them over the recorded edges. Returns how many are live.
fn rescue(scan: &mut Scan) -> usize {
    let mut live = 0;
    for (i, &member) in scan.members.iter().enumerate() {
        // SAFETY: members are live (IN_SET).
        let h = unsafe { header(member.ptr) };
        let meta = h.meta.get();
        let seed = meta & MARK != 0 || meta >= ONE;
        // From here on the bits above the flags hold the member's index.
        h.meta
            .set((meta & FLAGS & !MARK) | (i << SHIFT) | if seed { MARK } else { 0 });
        if seed {
            scan.stack.push(i);
            live += 1;
        }
    }
    while let Some(i) = scan.stack.pop() {
        let start = if i == 0 { 0 } else { scan.ends[i - 1] };
        for &target in &scan.targets[start..scan.ends[i]] {
            // SAFETY: every recorded target is a member: live (IN_SET).
            let h = unsafe { header(target) };
            let meta = h.meta.get();
            if meta & MARK == 0 {
                h.meta.set(meta | MARK);
                scan.stack.push(meta >> SHIFT);
                live += 1;
            }
        }
    }
    live
}

/// Phase 3 when nothing is live (no rescue ran): every member is garbage and is marked
/// `DEAD`, keeping `IN_SET`.
fn kill_all(members: &[Edge]) {
    for &member in members {
        // SAFETY: members are live (IN_SET).
        let h = unsafe { header(member.ptr) };
        h.meta.set((h.meta.get() & FLAGS) | DEAD);
    }
}

/// Phase 3 after a rescue: live members leave the set; the rest are marked `DEAD`, keep
/// `IN_SET`, and are listed in `garbage`.
fn kill_unmarked(scan: &mut Scan) {
    for (index, &member) in scan.members.iter().enumerate() {
        // SAFETY: members are live (IN_SET).
        let h = unsafe { header(member.ptr) };
        let meta = h.meta.get();
        if meta & MARK != 0 {
            h.meta.set(meta & FLAGS & !(MARK | IN_SET));
            if h.strong.get() == 0 {
                // Its last handle went during the count; dropped in `drop_orphans`.
                scan.stack.push(index);
            }
        } else {
            h.meta.set((meta & FLAGS) | DEAD);
            scan.garbage.push(member);
        }
    }
}

/// Phase 4: drops each garbage value once, in order; each member leaves the set right
/// after its own destructor and is freed if no handle is left. Also when a destructor
/// panics (then the values not yet dropped are leaked, never dropped twice or freed
/// under a handle).
fn drop_and_free(garbage: &[Edge]) {
    let mut pass = DropPass { garbage, next: 0 };
    while let Some(&member) = pass.garbage.get(pass.next) {
        // Every member was DEAD before this pass, so no new reference to their values can
        // be made; none existed from outside (all strong counts were accounted for by
        // garbage values); destructors run one at a time and cannot deref a dead Gc. The
        // value is initialised: the member was not DEAD before `kill`.
        // SAFETY: so nothing references this value (see above and docs/gc-design.md).
        unsafe { (member.vtable.drop_value)(member.ptr) };
        // SAFETY: IN_SET kept it live until now; its value is dropped.
        unsafe { leave_set(member) };
        pass.next += 1;
    }
}

/// Clears `IN_SET` and frees the member if no handle is left.
///
/// # Safety
/// `member` is a live allocation in the set, `DEAD`, whose value is dropped (or leaked),
/// and nothing but counted handles will read it after this call.
#[inline]
unsafe fn leave_set(member: Edge) {
    // SAFETY: live per the caller.
    let h = unsafe { header(member.ptr) };
    h.meta.set(h.meta.get() & !IN_SET);
    // SAFETY: live, DEAD, value gone: try_free's requirements.
    unsafe { try_free(member) };
}

/// The drop pass's progress; on unwinding, releases the members it had not reached.
struct DropPass<'g> {
    garbage: &'g [Edge],
    next: usize,
}

impl Drop for DropPass<'_> {
    fn drop(&mut self) {
        for &member in &self.garbage[self.next.min(self.garbage.len())..] {
            // SAFETY: not passed yet, so still IN_SET and live; DEAD; its value is leaked
            // (or half dropped by the destructor that panicked, which never runs again).
            unsafe { leave_set(member) };
        }
    }
}
