//! The thread-local `Gc` and `Weak`: `Rc`'s interface over the cycle-collecting heap.
//!
//! Handles are one pointer. Clone and drop touch only the object's header, like `Rc`; a
//! drop that leaves the count above zero also enters the object in the thread's
//! candidate buffer (see `heap`). Deref checks the `DEAD` flag: a handle to an object
//! that a collection has already destroyed (reachable only from destructors running in
//! that collection, or from clones they stored away) panics instead of reading a dropped
//! value. `Gc` is neither `Send` nor `Sync`: the counts are plain cells.
mod box_cache;
mod collector;
mod gc_box;
mod heap;

pub(crate) use collector::Scan;

pub use heap::collect;

use crate::trace::{Structural, Trace, Tracer};
use core::fmt;
use core::marker::PhantomData;
use core::ops::Deref;
use core::ptr::NonNull;
use gc_box::{release_last_strong, try_free, GcBox, Header, DEAD};

/// A thread-local reference-counted pointer whose cycles are collected.
///
/// Same interface as `Rc` (`new`, `clone`, `Deref`, `downgrade`, `ptr_eq`,
/// `strong_count`, `new_cyclic`, ...), for values that implement [`Trace`].
///
/// ```
/// use memward_gc::Gc;
/// let a = Gc::new(5);
/// let b = a.clone();
/// assert_eq!(*b, 5);
/// assert!(Gc::ptr_eq(&a, &b));
/// assert_eq!(Gc::strong_count(&a), 2);
/// ```
pub struct Gc<T: Trace + 'static> {
    ptr: NonNull<GcBox<T>>,
    _owns: PhantomData<GcBox<T>>,
}

/// A non-owning handle to a [`Gc`] allocation; `upgrade` gives a `Gc` while the value is
/// alive.
///
/// ```
/// use memward_gc::Gc;
/// let strong = Gc::new(String::from("x"));
/// let weak = Gc::downgrade(&strong);
/// assert_eq!(weak.upgrade().as_deref().map(String::as_str), Some("x"));
/// drop(strong);
/// assert!(weak.upgrade().is_none());
/// ```
pub struct Weak<T: Trace + 'static> {
    ptr: NonNull<GcBox<T>>,
    _owns: PhantomData<GcBox<T>>,
}

impl<T: Trace + 'static> Gc<T> {
    /// Allocates `value`. Counts towards the next automatic collection.
    ///
    /// ```
    /// let g = memward_gc::Gc::new(vec![1, 2, 3]);
    /// assert_eq!(g.len(), 3);
    /// ```
    #[inline]
    pub fn new(value: T) -> Self {
        heap::note_allocation();
        let ptr = GcBox::<T>::allocate(1, 0, 0);
        // SAFETY: freshly allocated and exclusively ours; writing the value initialises it.
        unsafe { (*ptr.as_ptr()).value.write(value) };
        Gc {
            ptr,
            _owns: PhantomData,
        }
    }

    /// Allocates a value that holds weak references to itself: `data_fn` gets the
    /// `Weak` before the value exists (upgrading it gives `None` until `new_cyclic`
    /// returns).
    ///
    /// ```
    /// use memward_gc::{Gc, Trace, Weak};
    /// #[derive(Trace)]
    /// struct Me { me: Weak<Me> }
    /// let g = Gc::new_cyclic(|me| {
    ///     assert!(me.upgrade().is_none());
    ///     Me { me: me.clone() }
    /// });
    /// assert!(Gc::ptr_eq(&g.me.upgrade().unwrap(), &g));
    /// ```
    pub fn new_cyclic<F: FnOnce(&Weak<T>) -> T>(data_fn: F) -> Self {
        heap::note_allocation();
        // DEAD until written: upgrades fail, and nothing will drop the missing value.
        let ptr = GcBox::<T>::allocate(0, 1, DEAD);
        let weak = Weak {
            ptr,
            _owns: PhantomData,
        };
        // If data_fn panics, `weak` drops and frees the box (strong 0, weak 0).
        let value = data_fn(&weak);
        // SAFETY: the allocation is live (we hold `weak`) and its value unwritten; no
        // reference to the value exists (upgrade fails while DEAD).
        unsafe { (*ptr.as_ptr()).value.write(value) };
        let h = weak.header();
        h.meta.set(h.meta.get() & !DEAD);
        h.strong.set(1);
        drop(weak);
        Gc {
            ptr,
            _owns: PhantomData,
        }
    }

    #[inline]
    fn header(&self) -> &Header {
        // SAFETY: a Gc keeps its allocation live (strong > 0).
        unsafe { &self.ptr.as_ref().header }
    }

    #[inline]
    fn edge(&self) -> crate::trace::Edge {
        GcBox::edge(self.ptr)
    }

    /// Makes a [`Weak`] to the same allocation.
    ///
    /// ```
    /// let g = memward_gc::Gc::new(1);
    /// let w = memward_gc::Gc::downgrade(&g);
    /// assert_eq!(*w.upgrade().unwrap(), 1);
    /// ```
    pub fn downgrade(this: &Self) -> Weak<T> {
        this.header().inc_weak();
        Weak {
            ptr: this.ptr,
            _owns: PhantomData,
        }
    }

    /// Whether both point to the same allocation.
    ///
    /// ```
    /// use memward_gc::Gc;
    /// let a = Gc::new(1);
    /// assert!(Gc::ptr_eq(&a, &a.clone()));
    /// assert!(!Gc::ptr_eq(&a, &Gc::new(1)));
    /// ```
    #[inline]
    pub fn ptr_eq(this: &Self, other: &Self) -> bool {
        this.ptr == other.ptr
    }

    /// Number of `Gc`s to this allocation.
    ///
    /// ```
    /// let a = memward_gc::Gc::new(());
    /// let _b = a.clone();
    /// assert_eq!(memward_gc::Gc::strong_count(&a), 2);
    /// ```
    #[inline]
    pub fn strong_count(this: &Self) -> usize {
        this.header().strong.get()
    }

    /// Number of `Weak`s to this allocation.
    ///
    /// ```
    /// let a = memward_gc::Gc::new(());
    /// let _w = memward_gc::Gc::downgrade(&a);
    /// assert_eq!(memward_gc::Gc::weak_count(&a), 1);
    /// ```
    #[inline]
    pub fn weak_count(this: &Self) -> usize {
        this.header().weak.get()
    }

    /// Whether a collection has destroyed the value (only possible for handles reached
    /// from destructors of the same garbage cycle, or clones they stored).
    ///
    /// ```
    /// let a = memward_gc::Gc::new(1);
    /// assert!(!memward_gc::Gc::is_dead(&a));
    /// ```
    #[inline]
    pub fn is_dead(this: &Self) -> bool {
        this.header().is_dead()
    }

    /// The value, or `None` if a collection has destroyed it: the non-panicking deref for
    /// destructors of types in cycles.
    ///
    /// ```
    /// let a = memward_gc::Gc::new(1);
    /// assert_eq!(memward_gc::Gc::try_deref(&a), Some(&1));
    /// ```
    #[inline]
    pub fn try_deref(this: &Self) -> Option<&T> {
        if this.header().is_dead() {
            None
        } else {
            // No collection can find it garbage while this handle lives outside the garbage,
            // and a handle inside garbage is reachable only from garbage destructors, which
            // run after every member is marked DEAD.
            // SAFETY: not DEAD, so initialised and not dropped, and kept so (above).
            Some(unsafe { this.ptr.as_ref().value.assume_init_ref() })
        }
    }

    /// A raw pointer to the value (valid while the value is alive).
    ///
    /// ```
    /// let a = memward_gc::Gc::new(7);
    /// // SAFETY: `a` keeps the value alive and nothing mutates it.
    /// assert_eq!(unsafe { *memward_gc::Gc::as_ptr(&a) }, 7);
    /// ```
    pub fn as_ptr(this: &Self) -> *const T {
        // SAFETY: the allocation is live; we only compute an address.
        unsafe { (*this.ptr.as_ptr()).value.as_ptr() }
    }

    /// A mutable reference when this is the only handle (no other `Gc`, no `Weak`) and the
    /// object does not wait in the collector's candidate buffer (it does after a clone of
    /// it was dropped, until the next collection).
    ///
    /// ```
    /// let mut a = memward_gc::Gc::new(1);
    /// *memward_gc::Gc::get_mut(&mut a).unwrap() += 1;
    /// assert_eq!(*a, 2);
    /// let _b = a.clone();
    /// assert!(memward_gc::Gc::get_mut(&mut a).is_none());
    /// ```
    pub fn get_mut(this: &mut Self) -> Option<&mut T> {
        let h = this.header();
        // Not in a running collection's set either: a `trace` run by it must not find
        // the value borrowed mutably.
        let unreachable_for_collector =
            h.meta.get() & (gc_box::BUFFERED | gc_box::IN_SET | DEAD) == 0;
        if h.strong.get() == 1 && h.weak.get() == 0 && unreachable_for_collector {
            // A collection cannot trace the value: it is not a candidate, and an edge to it
            // would need a second handle.
            // SAFETY: `this`, the only handle, is borrowed mutably: no other reference to
            // the value exists or can be made while the result lives (nor by a collection).
            Some(unsafe { (*this.ptr.as_ptr()).value.assume_init_mut() })
        } else {
            None
        }
    }
}

#[cold]
#[inline(never)]
fn dead_deref() -> ! {
    panic!("memward_gc: dereferenced a Gc whose object was already collected (from a destructor of its garbage cycle); use Gc::try_deref there")
}

impl<T: Trace + 'static> Deref for Gc<T> {
    type Target = T;

    /// Panics if a collection destroyed the value (see [`Gc::try_deref`]).
    #[inline]
    fn deref(&self) -> &T {
        match Gc::try_deref(self) {
            Some(value) => value,
            None => dead_deref(),
        }
    }
}

impl<T: Trace + 'static> Clone for Gc<T> {
    #[inline]
    fn clone(&self) -> Self {
        self.header().inc_strong();
        Gc {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

impl<T: Trace + 'static> Drop for Gc<T> {
    #[inline]
    fn drop(&mut self) {
        let h = self.header();
        let strong = h.strong.get() - 1;
        h.strong.set(strong);
        if strong == 0 {
            // SAFETY: live until now; its strong count just reached zero.
            unsafe { release_last_strong(self.edge()) }
        } else {
            // SAFETY: live, strong count above zero.
            unsafe { heap::possible_root(self.edge()) }
        }
    }
}

// Reports this one handle, when reached through structural impls only (see `Tracer`).
impl<T: Trace + 'static> Trace for Gc<T> {
    // SAFETY: reports its one handle, in place, and nothing else.
    const STRUCTURAL: Structural = unsafe { Structural::assert_structural() };

    #[inline(always)]
    fn trace(&self, tracer: &mut Tracer) {
        if !tracer.trusted {
            // Reached through a hand-written impl: not provably owned by the object.
        } else if tracer.counting {
            tracer.scan.count_edge(self.edge(), self.header());
        } else {
            tracer.unsync_edges.push(self.edge());
        }
    }
}

impl<T: Trace + 'static> Weak<T> {
    #[inline]
    fn header(&self) -> &Header {
        // SAFETY: a Weak keeps its allocation live (weak > 0).
        unsafe { &self.ptr.as_ref().header }
    }

    /// A `Gc` to the value, unless it has been dropped or collected (or is still being
    /// built by `new_cyclic`).
    ///
    /// ```
    /// let g = memward_gc::Gc::new(3);
    /// assert_eq!(*memward_gc::Gc::downgrade(&g).upgrade().unwrap(), 3);
    /// ```
    pub fn upgrade(&self) -> Option<Gc<T>> {
        let h = self.header();
        if h.strong.get() == 0 || h.is_dead() {
            return None;
        }
        h.inc_strong();
        Some(Gc {
            ptr: self.ptr,
            _owns: PhantomData,
        })
    }

    /// Number of `Gc`s to the allocation (0 once the value is gone).
    ///
    /// ```
    /// let g = memward_gc::Gc::new(3);
    /// let w = memward_gc::Gc::downgrade(&g);
    /// assert_eq!(w.strong_count(), 1);
    /// ```
    pub fn strong_count(&self) -> usize {
        let h = self.header();
        if h.is_dead() {
            0
        } else {
            h.strong.get()
        }
    }

    /// Whether both point to the same allocation.
    ///
    /// ```
    /// let g = memward_gc::Gc::new(3);
    /// let w = memward_gc::Gc::downgrade(&g);
    /// assert!(w.ptr_eq(&w.clone()));
    /// ```
    pub fn ptr_eq(&self, other: &Self) -> bool {
        self.ptr == other.ptr
    }
}

impl<T: Trace + 'static> Clone for Weak<T> {
    fn clone(&self) -> Self {
        self.header().inc_weak();
        Weak {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

impl<T: Trace + 'static> Drop for Weak<T> {
    fn drop(&mut self) {
        let h = self.header();
        h.weak.set(h.weak.get() - 1);
        // SAFETY: live until now; with strong == 0 the value is dropped or unwritten.
        unsafe { try_free(GcBox::edge(self.ptr)) }
    }
}

// A Weak does not keep its target alive: no edge to report.
impl<T: Trace + 'static> Trace for Weak<T> {
    // SAFETY: reports nothing.
    const STRUCTURAL: Structural = unsafe { Structural::assert_structural() };

    fn trace(&self, _: &mut Tracer) {}
}

impl<T: Trace + fmt::Debug + 'static> fmt::Debug for Gc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Gc::try_deref(self) {
            Some(value) => value.fmt(f),
            None => f.write_str("<collected>"),
        }
    }
}

impl<T: Trace + 'static> fmt::Debug for Weak<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(Weak)")
    }
}

impl<T: Trace + fmt::Display + 'static> fmt::Display for Gc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl<T: Trace + Default + 'static> Default for Gc<T> {
    fn default() -> Self {
        Gc::new(T::default())
    }
}

impl<T: Trace + PartialEq + 'static> PartialEq for Gc<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Trace + 'static> From<T> for Gc<T> {
    fn from(value: T) -> Self {
        Gc::new(value)
    }
}

/// Returns to the global allocator what this thread's collector keeps for reuse: freed
/// boxes waiting in its free lists (at most 256 KiB per size class) and the buffers it
/// keeps between collections. Thread exit does the same. Does nothing inside a
/// destructor that a collection is running.
///
/// ```
/// use memward_gc::{collect, trim, Gc};
/// let list: Vec<Gc<u64>> = (0..10_000).map(Gc::new).collect();
/// drop(list); // the boxes go to this thread's free lists...
/// collect();
/// trim(); // ...and from there back to the allocator
/// ```
pub fn trim() {
    heap::trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_three_words() {
        assert_eq!(
            core::mem::size_of::<Header>(),
            3 * core::mem::size_of::<usize>()
        );
        assert_eq!(
            core::mem::size_of::<Gc<u8>>(),
            core::mem::size_of::<usize>()
        );
    }

    #[test]
    fn dead_flag_stops_deref_and_upgrade() {
        let g = Gc::new(5u32);
        let w = Gc::downgrade(&g);
        let h = g.header();
        h.meta.set(h.meta.get() | DEAD);
        assert!(Gc::try_deref(&g).is_none());
        assert!(w.upgrade().is_none());
        assert_eq!(w.strong_count(), 0);
        // Undo so the value is dropped normally.
        h.meta.set(h.meta.get() & !DEAD);
    }
}
