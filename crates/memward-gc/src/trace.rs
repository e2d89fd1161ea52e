//! The `Trace` trait and the `Tracer` that collects what a value reports.
//!
//! Tracing is how the collector learns which `Gc`s a value owns. A value reports each
//! owned `Gc` once by calling `trace` on it; the `Gc` appends an [`Edge`] (a type-erased
//! pointer to its allocation plus the static table of functions for its type) to the
//! tracer, or, for the thread-local collector's count, hands it straight to that
//! collector's scan (`Tracer::counting`: no list written and read back, no call per
//! edge). The collector only ever *counts* these edges: it concludes that an object is
//! unreachable when every one of its strong references was reported from inside other
//! unreachable objects. Reporting fewer edges than there are is harmless (a leak);
//! reporting a handle the value does not own (one in a global, behind an `Rc`, the same
//! one twice, one moved out afterwards) is not. `Trace` is a safe trait, so the tracer
//! cannot trust what an arbitrary impl reports: it counts a report only while it is
//! inside *structural* impls (the derive, this crate's std impls), traced from the top
//! of the object down through [`Tracer::visit`]. Structural code reaches only what the
//! object owns, in place, each part once, so every counted report is a distinct handle
//! inside the object. Proving an impl structural takes `unsafe` ([`Structural`]); the
//! derive emits it. (Address ranges, checking that a reported handle lies inside the
//! object, are not enough: a hand impl can report a handle through a `RefCell` borrow
//! it drops at once, and a later `trace` can then move the handle out.)
//!
//! Interior mutability: `RefCell`, `Mutex` and `RwLock` are traced through `try_borrow`,
//! `try_lock`, `try_read`. When that fails someone is using the value right now, so it is
//! reachable; the tracer is told the value is *opaque* and the collector keeps it alive.
//! The tracer *holds* the guards until the collector has decided, so that no code
//! (another thread, or a hand-written `trace` run later in the same collection) can move
//! a reported `Gc` out before the decision: it panics or finds the lock busy instead.
//! The thread-safe collector always holds them; the thread-local one only once its
//! thread has met a hand impl (`untrusted_ran`): with structural impls alone no other
//! code runs while it traces, so nothing can move anything, and holding every
//! `RefCell` borrow cost a fifth more instructions on a linked list.
use crate::unsync::Scan;
use core::cell::Ref;
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
/// # A safe trait: what a wrong impl can do
///
/// Implementing `Trace` needs no `unsafe`, and no impl, however wrong, can make the
/// collector free or drop an object that is still reachable. The collector only counts
/// handles reported through *structural* impls: the derive and this crate's impls for std
/// types, which visit exactly the fields and elements a value owns, in place, and hold
/// the `RefCell`/`Mutex`/`RwLock` guards they read through until the collection has
/// decided. A hand-written impl is not structural: everything it reports, directly or
/// through other impls it calls, is ignored, so the objects it would have reported are
/// never collected through it (a leak; they are still freed by reference counting when
/// their count reaches zero). Whatever else a `trace` does (clone, drop or create `Gc`s,
/// call [`collect`](crate::collect), borrow cells, panic) leads at worst to a leak or a
/// panic: the collector checks that no count changed before it decides. Prefer the
/// derive; a hand impl is for types that hold no `Gc` to collect.
pub trait Trace {
    /// Reports the `Gc`s that `self` owns to `tracer` (through [`Tracer::visit`] on each
    /// field, or `trace` on each).
    ///
    /// ```
    /// use memward_gc::{Gc, Trace, Tracer};
    ///
    /// // A hand impl compiles without `unsafe`; it is not structural, so its reports
    /// // are ignored: a cycle through `Pair` would leak, nothing worse.
    /// struct Pair(Gc<u32>, Gc<u32>);
    /// impl Trace for Pair {
    ///     fn trace(&self, tracer: &mut Tracer) {
    ///         tracer.visit(&self.0);
    ///         tracer.visit(&self.1);
    ///     }
    /// }
    /// let p = Gc::new(Pair(Gc::new(1), Gc::new(2)));
    /// assert_eq!(*p.1, 2);
    /// ```
    fn trace(&self, tracer: &mut Tracer);

    /// Whether this impl is structural (see the trait docs). Only the derive and this
    /// crate set it: making a [`Structural`] that says yes takes `unsafe`.
    #[doc(hidden)]
    const STRUCTURAL: Structural = Structural::NO;
}

/// The proof that a `Trace` impl is structural; see [`Trace`]. Not for use outside the
/// derive.
///
/// ```
/// // What a hand impl gets by default:
/// assert!(!memward_gc::Structural::NO.is_structural());
/// ```
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct Structural(bool);

impl Structural {
    /// Not structural: what the impl reports is ignored.
    pub const NO: Structural = Structural(false);

    /// Structural.
    ///
    /// # Safety
    /// Only for an impl whose `trace` calls [`Tracer::visit`] once on each field of the
    /// value that is not skipped (for an enum, of the variant present), reached by a
    /// plain borrow of `self`, and does nothing else. `#[derive(Trace)]` emits exactly
    /// that.
    ///
    /// ```
    /// // SAFETY: a demonstration; no impl uses it.
    /// let s = unsafe { memward_gc::Structural::assert_structural() };
    /// assert!(s.is_structural());
    /// ```
    pub const unsafe fn assert_structural() -> Structural {
        Structural(true)
    }

    /// Whether this says structural.
    ///
    /// ```
    /// assert!(!memward_gc::Structural::NO.is_structural());
    /// ```
    pub const fn is_structural(self) -> bool {
        self.0
    }
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
/// It counts a reported handle only while it traces structural impls from the top of an
/// object down (`trusted`): [`Tracer::visit`] drops that for a non-structural type, and
/// nothing but the collector raises it again.
///
/// ```
/// use memward_gc::{Gc, Trace, Tracer};
/// struct Wrapper(Gc<String>);
/// impl Trace for Wrapper {
///     fn trace(&self, tracer: &mut Tracer) {
///         tracer.visit(&self.0)
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
    /// Held `RefCell` borrows, kept without a box each (a thread-local collection takes
    /// one per `RefCell` it traces).
    held_refs: Vec<Ref<'static, ()>>,
    pub(crate) hold_guards: bool,
    /// Set when non-structural code ran while tracing (a hand impl): only then can a
    /// `trace` move a reported handle, so only then must guards have been held.
    pub(crate) untrusted_ran: bool,
    opaque: bool,
    /// Reports count only while this is set: from the collector's entry into a
    /// structural value down through structural impls only.
    pub(crate) trusted: bool,
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
            held_refs: Vec::new(),
            hold_guards,
            untrusted_ran: false,
            opaque: false,
            trusted: false,
        }
    }

    /// The thread-local collector's tracer: counts into its `scan`; holds guards only
    /// once the thread has met a hand impl (the heap sets `hold_guards` then).
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
    /// impl Trace for Unknown {
    ///     fn trace(&self, tracer: &mut Tracer) {
    ///         tracer.mark_opaque()
    ///     }
    /// }
    /// # let _ = Gc::new(Unknown);
    /// ```
    pub fn mark_opaque(&mut self) {
        self.opaque = true;
    }

    /// Traces `value`, a field or element of the value being traced: the way every
    /// impl should trace its parts. A non-structural `T` is traced with the tracer's
    /// trust dropped, so that nothing it reports counts (see [`Trace`]).
    ///
    /// ```
    /// use memward_gc::{Gc, Trace, Tracer};
    /// struct Two(Gc<u8>, Vec<Gc<u8>>);
    /// impl Trace for Two {
    ///     fn trace(&self, tracer: &mut Tracer) {
    ///         tracer.visit(&self.0);
    ///         tracer.visit(&self.1);
    ///     }
    /// }
    /// # let _ = Gc::new(Two(Gc::new(1), vec![]));
    /// ```
    #[inline(always)]
    pub fn visit<T: Trace + ?Sized>(&mut self, value: &T) {
        if T::STRUCTURAL.0 || !self.trusted {
            value.trace(self)
        } else {
            self.untrusted_ran = true;
            self.trusted = false;
            value.trace(self);
            self.trusted = true;
        }
    }

    /// Traces an object's whole value: the collector's entry point, the only place
    /// that sets `trusted` (for a structural `T`). Leaves it cleared.
    #[inline(always)]
    pub(crate) fn trace_object<T: Trace>(&mut self, value: &T) {
        self.trusted = T::STRUCTURAL.0;
        self.untrusted_ran |= !T::STRUCTURAL.0;
        value.trace(self);
        self.trusted = false;
    }

    /// Keeps a `RefCell` borrow until the collection has decided (or drops it at once
    /// when the collector does not hold guards).
    ///
    /// # Safety
    /// As for [`Tracer::hold`]: the `RefCell` must outlive the hold when the tracer is
    /// trusted (it is then part of the object being traced).
    pub(crate) unsafe fn hold_ref<T: ?Sized>(&mut self, contents: Ref<'_, T>) {
        // Untrusted: the RefCell may be anywhere (a local of a hand impl), and nothing
        // reported under it counts, so there is nothing to keep still.
        if self.hold_guards && self.trusted {
            let unit: Ref<'_, ()> = Ref::map(contents, |_| &());
            // Only the lifetime changes (same type otherwise); released in
            // `release_held` before any traced value can be dropped or freed.
            // SAFETY: the caller guarantees the RefCell outlives the hold (above).
            let unit: Ref<'static, ()> = unsafe { core::mem::transmute(unit) };
            self.held_refs.push(unit);
        }
    }

    /// Keeps `guard` (a lock guard taken while tracing) until the collector has decided
    /// what is garbage, or drops it at once when the collector does not need that. The
    /// thread-safe collector relies on it: contents reported through a held guard cannot
    /// be moved by another thread before the decision.
    ///
    /// # Safety
    /// When the tracer is trusted, what `guard` borrows must outlive the tracer's hold:
    /// it must be part of the value being traced (which the collectors keep alive until
    /// they release held guards). Structural impls only reach such parts while trusted.
    pub(crate) unsafe fn hold<'g, G: 'g>(&mut self, guard: G) {
        if self.hold_guards && self.trusted {
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
        self.held_refs.clear();
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
