//! The `Trace` trait and the `Tracer` that collects what a value reports.
//!
//! Tracing is how the collector learns which `Gc`s a value owns. A value reports each
//! owned `Gc` once by calling `trace` on it; the `Gc` appends an [`Edge`] (a type-erased
//! pointer to its allocation plus the static table of functions for its type) to the
//! tracer, or, for the thread-local collector's count, hands it straight to that
//! collector's scan (`Tracer::counting`: no list written and read back, no call per
//! edge). The collector only ever *counts* these edges: it never drops or frees anything
//! because of them, it only concludes that an object is unreachable when every one of its
//! strong references was reported from inside other unreachable objects. Hence the
//! contract in [`Trace`]'s `# Safety`: reporting fewer edges than there are is harmless
//! (a leak), reporting edges the value does not own is not.
//!
//! Interior mutability: `RefCell`, `Mutex` and `RwLock` are traced through `try_borrow`,
//! `try_lock`, `try_read`. When that fails someone is using the value right now, so it is
//! reachable; the tracer is told the value is *opaque* and the collector keeps it alive.
//! The thread-safe collector also asks the tracer to *hold* the guards until it has
//! decided, so that no thread can move a reported `Gc` out while the decision is made.
use crate::unsync::Scan;
use core::ptr::NonNull;

/// A type whose `Gc` pointers the collector can enumerate.
///
/// Derive it: `use memward_gc::Trace; #[derive(Trace)]` (the derive and the trait share
/// the name). Mark fields that hold no `Gc` with `#[trace(skip)]` to save the work, or
/// when their type has no `Trace` impl.
///
/// ```
/// use memward_gc::{Gc, Trace};
/// use std::cell::RefCell;
///
/// #[derive(Trace)]
/// struct Node {
///     children: RefCell<Vec<Gc<Node>>>,
///     #[trace(skip)]
///     name: std::path::PathBuf,
/// }
/// let n = Gc::new(Node { children: RefCell::new(vec![]), name: "root".into() });
/// n.children.borrow_mut().push(n.clone()); // a cycle; collect() frees it
/// ```
///
/// # Safety
///
/// Writing an impl by hand is `unsafe` because the collector trusts what it reports.
/// `trace` must:
/// 1. call `trace` at most once on each `Gc` (thread-local or `sync`) that `self` owns,
///    directly or through owned containers, and on no other `Gc` (not a clone, not a
///    `Gc` reached through a shared pointer such as `Rc`, a global, or a reference);
/// 2. have no other effect: create, clone, drop or move no `Gc`, and not call
///    [`collect`](crate::collect);
/// 3. reach interior-mutable contents (`RefCell`, `Mutex`, `RwLock`) only through the
///    `Trace` impls of this crate; a type with other interior mutability that holds
///    `Gc`s calls [`Tracer::mark_opaque`] instead (its objects are then never collected).
///
/// Reporting *fewer* `Gc`s than `self` owns is always sound; it only keeps the objects
/// they point to from being collected. The derive meets the contract by construction.
pub unsafe trait Trace {
    /// Reports the `Gc`s that `self` owns to `tracer` by calling `trace` on each.
    ///
    /// ```
    /// use memward_gc::{Gc, Trace, Tracer};
    ///
    /// struct Pair(Gc<u32>, Gc<u32>);
    /// // SAFETY: both Gcs are owned by the Pair and traced once; nothing else runs.
    /// unsafe impl Trace for Pair {
    ///     fn trace(&self, tracer: &mut Tracer) {
    ///         self.0.trace(tracer);
    ///         self.1.trace(tracer);
    ///     }
    /// }
    /// let p = Gc::new(Pair(Gc::new(1), Gc::new(2)));
    /// assert_eq!(*p.1, 2);
    /// ```
    fn trace(&self, tracer: &mut Tracer);
}

/// Per-type functions of a `Gc` allocation, shared by every edge to that type.
pub(crate) struct VTable {
    /// Traces the value.
    pub(crate) trace: unsafe fn(NonNull<()>, &mut Tracer),
    /// Drops the value in place (the allocation stays).
    pub(crate) drop_value: unsafe fn(NonNull<()>),
    /// Frees the allocation (the value must already be dropped or never written).
    pub(crate) dealloc: unsafe fn(NonNull<()>),
}

/// One reported `Gc`: the allocation it points to and the functions for its type.
#[derive(Clone, Copy)]
pub(crate) struct Edge {
    pub(crate) ptr: NonNull<()>,
    pub(crate) vtable: &'static VTable,
}

impl Edge {
    /// Traces the value behind this edge into `tracer`.
    ///
    /// # Safety
    /// The allocation must be live and its value initialised and not yet dropped while
    /// the call runs, and for as long as `tracer` holds guards taken during it.
    pub(crate) unsafe fn trace(self, tracer: &mut Tracer) {
        // SAFETY: forwarded from the caller.
        unsafe { (self.vtable.trace)(self.ptr, tracer) }
    }
}

/// Something held by the tracer until the collection decides (a lock guard).
trait Held {}
impl<T> Held for T {}

/// Receives the `Gc`s a value reports. Built by the collectors; passed to
/// [`Trace::trace`].
///
/// ```
/// use memward_gc::{Gc, Trace, Tracer};
/// struct Wrapper(Gc<String>);
/// // SAFETY: traces the one owned Gc, nothing else.
/// unsafe impl Trace for Wrapper {
///     fn trace(&self, tracer: &mut Tracer) {
///         self.0.trace(tracer)
///     }
/// }
/// # let _ = Gc::new(Wrapper(Gc::new(String::new())));
/// ```
pub struct Tracer {
    /// `true` for the thread-local collector's count: a reported thread-local `Gc` goes
    /// straight into `scan` (no edge list to write and read back, no call per edge) and
    /// `sync` ones are ignored. `false`: both kinds are recorded in the edge lists.
    pub(crate) counting: bool,
    pub(crate) scan: Scan,
    pub(crate) unsync_edges: Vec<Edge>,
    pub(crate) sync_edges: Vec<Edge>,
    held: Vec<Box<dyn Held>>,
    hold_guards: bool,
    opaque: bool,
}

impl Tracer {
    /// A tracer that records edges; `hold_guards` keeps what [`Tracer::hold`] gets until
    /// it is dropped.
    pub(crate) const fn new(hold_guards: bool) -> Self {
        Tracer {
            counting: false,
            scan: Scan::new(),
            unsync_edges: Vec::new(),
            sync_edges: Vec::new(),
            held: Vec::new(),
            hold_guards,
            opaque: false,
        }
    }

    /// The thread-local collector's tracer: counts into its `scan`, holds no guards.
    pub(crate) const fn counting() -> Self {
        let mut tracer = Tracer::new(false);
        tracer.counting = true;
        tracer
    }

    /// Says that the value being traced owns `Gc`s that cannot be enumerated now (for
    /// example a lock held by someone else). The collector then keeps the value alive.
    ///
    /// ```
    /// use memward_gc::{Gc, Trace, Tracer};
    /// struct Unknown;
    /// // SAFETY: reports nothing, which is always allowed.
    /// unsafe impl Trace for Unknown {
    ///     fn trace(&self, tracer: &mut Tracer) {
    ///         tracer.mark_opaque()
    ///     }
    /// }
    /// # let _ = Gc::new(Unknown);
    /// ```
    pub fn mark_opaque(&mut self) {
        self.opaque = true;
    }

    /// Keeps `guard` (a lock guard taken while tracing) until the collector has decided
    /// what is garbage, or drops it at once when the collector does not need that. The
    /// thread-safe collector relies on it: contents reported through a held guard cannot
    /// be moved by another thread before the decision.
    ///
    /// # Safety
    /// What `guard` borrows must outlive the tracer's hold: it must be part of the value
    /// being traced (which the collectors keep alive until they release held guards).
    pub(crate) unsafe fn hold<'g, G: 'g>(&mut self, guard: G) {
        if self.hold_guards {
            let boxed: Box<dyn Held + 'g> = Box::new(guard);
            // Only the lifetime bound changes (same layout); held guards are dropped in
            // `release_held`, before anything the collectors traced can be dropped or freed.
            // SAFETY: the caller guarantees the borrowed lock outlives the hold (above).
            let boxed: Box<dyn Held> = unsafe { core::mem::transmute(boxed) };
            self.held.push(boxed);
        }
    }

    /// Whether the value just traced was opaque; resets the flag.
    pub(crate) fn take_opaque(&mut self) -> bool {
        core::mem::take(&mut self.opaque)
    }

    /// Releases every held guard, last taken first.
    pub(crate) fn release_held(&mut self) {
        while let Some(guard) = self.held.pop() {
            drop(guard);
        }
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        self.release_held();
    }
}
