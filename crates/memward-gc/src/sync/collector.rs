//! The thread-safe collector: concurrent trial deletion, validated before anything dies.
//!
//! Mutators never wait for the collector except on the locks of objects it is examining.
//! Candidates come from sharded buffers (a drop that leaves a count above zero). A
//! collection, one at a time under `COLLECTOR`:
//!
//! 1. *pin*: each examined object gets one extra strong reference (so it stays alive
//!    whatever mutators do) and its state word is recorded (`seen`).
//! 2. *count*: trace each member once and subtract the edges found between members from
//!    their `strong - pin` counts. No lock is held: this is only a hypothesis.
//! 3. *rescue*: everything reachable from a member with references from outside (or
//!    whose contents are locked by someone else) is live.
//! 4. *validate*: pass one compare-and-swaps each garbage candidate's word from `seen`
//!    to `seen | PENDING` (upgrades now wait). Then the candidates are traced again with
//!    a tracer that **holds** every lock guard it takes, and each candidate's references
//!    found inside other candidates must equal its count. Pass two re-reads every word.
//!    Because every clone and drop bumps the epoch, an unchanged word means no handle to
//!    that object was created or destroyed since it was pinned. Handles may have been
//!    *moved*, but not those the re-trace found: each sits in an immutable field or
//!    behind a guard still held. So at the end of the re-trace every handle to every
//!    candidate lies inside another candidate: nothing outside can reach them, now or
//!    later. A candidate that fails a check (its word changed, its references found do
//!    not match its count, its contents are in use) is moved to the live side together
//!    with everything it reaches, and the rest is checked again: removing a member and
//!    all it points to leaves the remainder closed. Busy mutators therefore only keep
//!    the objects they touch alive, not the whole collection's garbage. A window longer
//!    than `MAX_WINDOW` aborts (the candidates go back into the buffer), so the 32-bit
//!    epoch cannot wrap unnoticed (2^32 atomic updates of one word take far longer than that on any
//!    CPU). Locks are held only on the candidates, which no mutator can reach if they
//!    really are garbage.
//! 5. *kill, drop, release*: set `DEAD`, release the guards, drop every garbage value,
//!    then release the pins; memory goes when the last reference of any kind does.
//!
//! Pauses: only the collecting thread works: the caller of [`collect`], or, for
//! collections paced by allocation, a dedicated `memward-gc` thread (started on first
//! need), so that no mutator pays for them. A mutator stalls only if it locks a
//! `Mutex`/`RwLock` inside an object under examination, for at most the window above.
use super::gc_box::{
    count, header, release_strong_quiet, release_weak, BUFFERED, DEAD, DEC, INC, ONE,
};
use super::graph::Graph;
use crate::trace::{Edge, Tracer};
use core::sync::atomic::{AtomicUsize, Ordering};
use std::cell::Cell;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

/// Allocations between automatic collections, at least.
const MIN_THRESHOLD: usize = 8192;
/// Allocations a thread counts locally before adding them to the global counter.
const LOCAL_BATCH: usize = 64;
const SHARDS: usize = 16;

/// A candidate-buffer entry; owns one weak reference to its allocation.
struct Candidate(Edge);
// SAFETY: sync allocations hold `Send + Sync` values and atomic headers; an entry is a
// counted reference that any thread may release.
unsafe impl Send for Candidate {}

static BUFFERS: [Mutex<Vec<Candidate>>; SHARDS] = [const { Mutex::new(Vec::new()) }; SHARDS];
static COLLECTOR: Mutex<()> = Mutex::new(());
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static THRESHOLD: AtomicUsize = AtomicUsize::new(MIN_THRESHOLD);
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    static LOCAL_ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    static IN_COLLECTION: Cell<bool> = const { Cell::new(false) };
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poisoning cannot leave these structures inconsistent (pushes and takes only).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn my_shard() -> usize {
    SHARD
        .try_with(|s| {
            if s.get() == usize::MAX {
                s.set(NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS);
            }
            s.get()
        })
        .unwrap_or(0)
}

/// Drops one strong reference and, unless the object is a candidate already (or the
/// count reaches zero), makes it one. Setting `BUFFERED` and decrementing are one
/// compare-and-swap, so a collector that takes the candidate (clearing `BUFFERED` and
/// pinning in one compare-and-swap) either sees this drop in the count it pins or leaves
/// `BUFFERED` clear for it: no drop is lost.
///
/// # Safety
/// The caller owns one strong reference to the live allocation `edge`.
#[cold]
pub(crate) unsafe fn drop_as_candidate(edge: Edge) {
    // SAFETY: live while our strong reference is.
    let h = unsafe { header(edge.ptr) };
    h.inc_weak(); // for the entry; taken first: after the decrement the memory may go
    let mut word = h.word.load(Ordering::Relaxed);
    loop {
        if count(word) <= 1 || word & DEAD != 0 {
            // Not a candidate after all: a plain drop. The implicit weak reference is
            // still held (our strong one is), so releasing the entry's cannot free.
            // SAFETY: we own this weak reference and our strong one.
            unsafe {
                release_weak(edge);
                release_strong_quiet(edge);
            }
            return;
        }
        // Decrement and set BUFFERED in one step; if someone else buffered it meanwhile,
        // decrement only while it stays buffered (see `Gc::drop`).
        let buffered_already = word & BUFFERED != 0;
        match h.word.compare_exchange_weak(
            word,
            (word | BUFFERED).wrapping_add(DEC),
            Ordering::Release,
            Ordering::Relaxed,
        ) {
            Ok(_) if buffered_already => {
                // SAFETY: the entry's weak reference, not needed; the implicit one is
                // held until the strong count (still above zero) reaches zero.
                unsafe { release_weak(edge) };
                return;
            }
            Ok(_) => break,
            Err(now) => word = now,
        }
    }
    lock(&BUFFERS[my_shard()]).push(Candidate(edge));
}

/// Counts an allocation; collects when the threshold is reached (if no collection runs).
#[inline]
pub(crate) fn note_allocation() {
    let batch = LOCAL_ALLOCATIONS
        .try_with(|n| {
            let v = n.get() + 1;
            n.set(if v == LOCAL_BATCH { 0 } else { v });
            v == LOCAL_BATCH
        })
        .unwrap_or(false);
    if batch {
        let total = ALLOCATIONS.fetch_add(LOCAL_BATCH, Ordering::Relaxed) + LOCAL_BATCH;
        if total >= THRESHOLD.load(Ordering::Relaxed) {
            collect_paced();
        }
    }
}

/// Set when the allocation threshold is crossed; the collector thread waits on it.
static WAKE: (Mutex<bool>, Condvar) = (Mutex::new(false), Condvar::new());
/// Whether the collector thread could be started (tried once).
static BACKGROUND: OnceLock<bool> = OnceLock::new();

/// The threshold was crossed: wake the collector thread, so that no mutator pays for
/// the collection. Without a thread (spawning failed), collect here.
#[cold]
#[inline(never)]
fn collect_paced() {
    let started = *BACKGROUND.get_or_init(|| {
        std::thread::Builder::new()
            .name("memward-gc".into())
            .spawn(background)
            .is_ok()
    });
    if started {
        *lock(&WAKE.0) = true;
        WAKE.1.notify_one();
    } else if !IN_COLLECTION.try_with(|c| c.get()).unwrap_or(true) {
        if let Ok(guard) = COLLECTOR.try_lock() {
            ALLOCATIONS.store(0, Ordering::Relaxed);
            run(guard);
        }
    }
}

/// The collector thread: one collection per wake-up. A panicking destructor ends that
/// collection (its remaining garbage leaks), not the thread.
fn background() {
    loop {
        let mut woken = lock(&WAKE.0);
        while !*woken {
            woken = WAKE.1.wait(woken).unwrap_or_else(|e| e.into_inner());
        }
        *woken = false;
        drop(woken);
        let _ = std::panic::catch_unwind(collect);
    }
}

/// Collects garbage cycles of [`sync::Gc`](crate::sync::Gc)s now (those whose last
/// outside handle was dropped before this call, on any thread). Waits for a collection
/// another thread runs; returns at once when called from a destructor that a collection
/// is running.
///
/// ```
/// use memward_gc::{sync, Trace};
/// use std::sync::Mutex;
///
/// #[derive(Trace)]
/// struct Node(Mutex<Option<sync::Gc<Node>>>);
/// let a = sync::Gc::new(Node(Mutex::new(None)));
/// *a.0.lock().unwrap() = Some(a.clone());
/// let weak = sync::Gc::downgrade(&a);
/// drop(a);
/// sync::collect();
/// assert!(weak.upgrade().is_none());
/// ```
pub fn collect() {
    if IN_COLLECTION.try_with(|c| c.get()).unwrap_or(true) {
        return;
    }
    let guard = lock(&COLLECTOR);
    ALLOCATIONS.store(0, Ordering::Relaxed);
    run(guard);
}

/// Takes a candidate: clears `BUFFERED` and pins (one more strong reference) in one
/// compare-and-swap; returns the new word, or `None` for an object already dead (its
/// `BUFFERED` is left alone: nothing will buffer a dead object again).
fn take_and_pin(h: &super::gc_box::Header) -> Option<u64> {
    let mut word = h.word.load(Ordering::Relaxed);
    loop {
        if word & DEAD != 0 || count(word) == 0 {
            return None;
        }
        let new = (word & !BUFFERED).wrapping_add(INC);
        match h
            .word
            .compare_exchange_weak(word, new, Ordering::AcqRel, Ordering::Relaxed)
        {
            Ok(_) => return Some(new),
            Err(now) => word = now,
        }
    }
}

/// Whether this thread is running a collection (tracing or dropping its garbage).
pub(crate) fn in_collection() -> bool {
    IN_COLLECTION.try_with(|c| c.get()).unwrap_or(false)
}

/// Marks this thread as collecting for the guard's life.
struct InCollection;
impl InCollection {
    fn enter() -> Self {
        IN_COLLECTION.with(|c| c.set(true));
        InCollection
    }
}
impl Drop for InCollection {
    fn drop(&mut self) {
        let _ = IN_COLLECTION.try_with(|c| c.set(false));
    }
}

fn run(_lock: MutexGuard<'_, ()>) {
    let _mark = InCollection::enter();
    let mut entries = Vec::new();
    for shard in &BUFFERS {
        let taken = core::mem::take(&mut *lock(shard));
        if entries.is_empty() {
            entries = taken;
        } else {
            entries.extend(taken);
        }
    }
    // The validation window starts before the first pin.
    let started = Instant::now();
    let mut graph = Graph::default();
    for Candidate(edge) in &entries {
        // SAFETY: the entry's weak reference keeps the allocation live.
        let h = unsafe { header(edge.ptr) };
        if let Some(word) = take_and_pin(h) {
            graph.add(*edge, word, count(word) - 1);
        }
    }
    // The count holds no locks: it only forms a hypothesis, which `validate` checks.
    let mut tracer = Tracer::new(false);
    graph.count(&mut tracer);
    drop(tracer);
    let live = graph.rescue();
    THRESHOLD.store(live.max(MIN_THRESHOLD), Ordering::Relaxed);
    let valid = graph.validate(started);
    if !valid {
        // Something changed under us: nothing dies. Put the candidates back.
        for Candidate(edge) in &entries {
            // SAFETY: still held by the entry.
            let h = unsafe { header(edge.ptr) };
            if h.word.fetch_or(BUFFERED, Ordering::AcqRel) & BUFFERED == 0 {
                lock(&BUFFERS[my_shard()]).push(Candidate(*edge));
                continue;
            }
            // SAFETY: the entry owns this weak reference and is not re-buffered.
            unsafe { release_weak(*edge) };
        }
        graph.release(false);
        return;
    }
    for Candidate(edge) in entries {
        // SAFETY: the entry owns this weak reference; the pins keep members alive.
        unsafe { release_weak(edge) };
    }
    graph.release(true);
}

const _: () = assert!(INC == ONE + (1 << 32));
