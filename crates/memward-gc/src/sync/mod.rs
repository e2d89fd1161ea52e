//! The thread-safe `Gc` and `Weak`: `Arc`'s interface over a concurrent cycle collector.
//!
//! A handle is one pointer; clone and drop are one atomic add on the object's state word
//! (which also bumps the word's epoch, see `gc_box`). A drop that will leave the count
//! above zero first enters the object in a sharded candidate buffer. [`collect`] runs on
//! the calling thread; automatic collections, paced by allocation, on a `memward-gc`
//! thread. Neither stops other threads: see `collector` for why concurrent mutation
//! cannot make it free a live object.
mod collector;
mod gc_box;
mod graph;

pub use collector::collect;

use crate::trace::{Structural, Trace, Tracer};
use core::fmt;
use core::marker::PhantomData;
use core::ops::Deref;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;
use gc_box::{count, release_strong_quiet, release_weak, GcBox, Header, BUFFERED, DEAD, ONE};

/// A thread-safe reference-counted pointer whose cycles are collected.
///
/// ```
/// use memward_gc::sync::Gc;
/// let a = Gc::new(5);
/// let b = a.clone();
/// std::thread::spawn(move || assert_eq!(*b, 5)).join().unwrap();
/// assert_eq!(Gc::strong_count(&a), 1);
/// ```
pub struct Gc<T: Trace + Send + Sync + 'static> {
    ptr: NonNull<GcBox<T>>,
    _owns: PhantomData<GcBox<T>>,
}

/// A non-owning handle to a [`sync::Gc`](Gc) allocation.
///
/// ```
/// use memward_gc::sync::Gc;
/// let g = Gc::new(1);
/// let w = Gc::downgrade(&g);
/// assert_eq!(*w.upgrade().unwrap(), 1);
/// drop(g);
/// assert!(w.upgrade().is_none());
/// ```
pub struct Weak<T: Trace + Send + Sync + 'static> {
    ptr: NonNull<GcBox<T>>,
    _owns: PhantomData<GcBox<T>>,
}

// SAFETY: the counts are atomic and T is Send + Sync, as for Arc<T>.
unsafe impl<T: Trace + Send + Sync + 'static> Send for Gc<T> {}
// SAFETY: as above.
unsafe impl<T: Trace + Send + Sync + 'static> Sync for Gc<T> {}
// SAFETY: as above.
unsafe impl<T: Trace + Send + Sync + 'static> Send for Weak<T> {}
// SAFETY: as above.
unsafe impl<T: Trace + Send + Sync + 'static> Sync for Weak<T> {}

impl<T: Trace + Send + Sync + 'static> Gc<T> {
    /// Allocates `value`. Counts towards the next automatic collection.
    ///
    /// ```
    /// let g = memward_gc::sync::Gc::new(String::from("hi"));
    /// assert_eq!(g.len(), 2);
    /// ```
    pub fn new(value: T) -> Self {
        collector::note_allocation();
        // weak = 1: the implicit reference of the strong side.
        let ptr = GcBox::<T>::allocate(ONE, 1);
        // SAFETY: fresh and exclusively ours.
        unsafe { (*ptr.as_ptr()).value.write(value) };
        Gc {
            ptr,
            _owns: PhantomData,
        }
    }

    /// Allocates a value that holds weak references to itself (see
    /// [`crate::Gc::new_cyclic`]).
    ///
    /// ```
    /// use memward_gc::{sync, Trace};
    /// #[derive(Trace)]
    /// struct Me { me: sync::Weak<Me> }
    /// let g = sync::Gc::new_cyclic(|me| Me { me: me.clone() });
    /// assert!(sync::Gc::ptr_eq(&g.me.upgrade().unwrap(), &g));
    /// ```
    pub fn new_cyclic<F: FnOnce(&Weak<T>) -> T>(data_fn: F) -> Self {
        collector::note_allocation();
        // DEAD with count 0 until written; weak = implicit + the Weak we hand out.
        let ptr = GcBox::<T>::allocate(DEAD, 2);
        let weak = Weak {
            ptr,
            _owns: PhantomData,
        };
        /// Releases the implicit weak reference if `data_fn` unwinds.
        struct Unbuilt(crate::trace::Edge);
        impl Drop for Unbuilt {
            fn drop(&mut self) {
                // SAFETY: the implicit reference of a value never written.
                unsafe { release_weak(self.0) }
            }
        }
        let unbuilt = Unbuilt(GcBox::edge(ptr));
        let value = data_fn(&weak);
        core::mem::forget(unbuilt);
        // SAFETY: live (we hold `weak`), unwritten, unreachable as a value (DEAD).
        unsafe { (*ptr.as_ptr()).value.write(value) };
        // Publish: count 1, not dead. Release pairs with upgrades' Acquire.
        weak.header().word.fetch_add(ONE - DEAD, Ordering::Release);
        drop(weak);
        Gc {
            ptr,
            _owns: PhantomData,
        }
    }

    #[inline]
    fn header(&self) -> &Header {
        // SAFETY: a Gc keeps its allocation live.
        unsafe { &self.ptr.as_ref().header }
    }

    /// Makes a [`Weak`].
    ///
    /// ```
    /// let g = memward_gc::sync::Gc::new(1);
    /// let w = memward_gc::sync::Gc::downgrade(&g);
    /// assert!(w.upgrade().is_some());
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
    /// use memward_gc::sync::Gc;
    /// let a = Gc::new(1);
    /// assert!(Gc::ptr_eq(&a, &a.clone()));
    /// ```
    #[inline]
    pub fn ptr_eq(this: &Self, other: &Self) -> bool {
        this.ptr == other.ptr
    }

    /// Number of strong handles (a running collection adds one while it examines the
    /// object).
    ///
    /// ```
    /// let a = memward_gc::sync::Gc::new(1);
    /// assert_eq!(memward_gc::sync::Gc::strong_count(&a), 1);
    /// ```
    pub fn strong_count(this: &Self) -> usize {
        count(this.header().word.load(Ordering::Relaxed)) as usize
    }

    /// Whether a collection destroyed the value (see [`crate::Gc::is_dead`]).
    ///
    /// ```
    /// assert!(!memward_gc::sync::Gc::is_dead(&memward_gc::sync::Gc::new(1)));
    /// ```
    pub fn is_dead(this: &Self) -> bool {
        this.header().is_dead()
    }

    /// The value, or `None` if a collection destroyed it.
    ///
    /// ```
    /// let a = memward_gc::sync::Gc::new(1);
    /// assert_eq!(memward_gc::sync::Gc::try_deref(&a), Some(&1));
    /// ```
    #[inline]
    pub fn try_deref(this: &Self) -> Option<&T> {
        if this.header().is_dead() {
            None
        } else {
            // A collection only kills objects all of whose handles lie inside other killed
            // objects, reachable only from destructors that run after DEAD is set.
            // SAFETY: not DEAD, and this handle keeps it so (above).
            Some(unsafe { this.ptr.as_ref().value.assume_init_ref() })
        }
    }

    /// A raw pointer to the value.
    ///
    /// ```
    /// let a = memward_gc::sync::Gc::new(7);
    /// // SAFETY: `a` keeps the value alive and nothing mutates it.
    /// assert_eq!(unsafe { *memward_gc::sync::Gc::as_ptr(&a) }, 7);
    /// ```
    pub fn as_ptr(this: &Self) -> *const T {
        // SAFETY: live; we only compute an address.
        unsafe { (*this.ptr.as_ptr()).value.as_ptr() }
    }
}

#[cold]
#[inline(never)]
fn dead_deref() -> ! {
    panic!("memward_gc: dereferenced a sync::Gc whose object was already collected (from a destructor of its garbage cycle); use Gc::try_deref there")
}

impl<T: Trace + Send + Sync + 'static> Deref for Gc<T> {
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

impl<T: Trace + Send + Sync + 'static> Clone for Gc<T> {
    #[inline]
    fn clone(&self) -> Self {
        self.header().inc_strong();
        Gc {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

impl<T: Trace + Send + Sync + 'static> Drop for Gc<T> {
    #[inline]
    fn drop(&mut self) {
        let edge = GcBox::edge(self.ptr);
        let h = self.header();
        let mut word = h.word.load(Ordering::Relaxed);
        loop {
            if word & DEAD != 0 || count(word) <= 1 {
                // Dead, or the last handle (no one else can clone it; an upgrade racing
                // with us leaves a handle whose own drop decides).
                // SAFETY: we own this strong reference.
                unsafe { release_strong_quiet(edge) };
                return;
            }
            if word & BUFFERED == 0 {
                // SAFETY: we own this strong reference.
                unsafe { collector::drop_as_candidate(edge) };
                return;
            }
            // Already a candidate: decrement only while it still is, so that the
            // collector taking it (which clears BUFFERED) either counts this drop or
            // leaves it to become a candidate again.
            match h.word.compare_exchange_weak(
                word,
                word.wrapping_add(gc_box::DEC),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return, // the count stays above zero
                Err(now) => word = now,
            }
        }
    }
}

// Reports this one handle, when reached through structural impls only (see `Tracer`).
impl<T: Trace + Send + Sync + 'static> Trace for Gc<T> {
    // SAFETY: reports its one handle, in place, and nothing else.
    const STRUCTURAL: Structural = unsafe { Structural::assert_structural() };

    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        // A thread-local collection (the counting tracer) leaves sync objects alone; a
        // hand-written impl's reports do not count.
        if tracer.trusted && !tracer.counting {
            tracer.sync_edges.push(GcBox::edge(self.ptr));
        }
    }
}

impl<T: Trace + Send + Sync + 'static> Weak<T> {
    fn header(&self) -> &Header {
        // SAFETY: a Weak keeps its allocation live.
        unsafe { &self.ptr.as_ref().header }
    }

    /// A `Gc` to the value unless it was dropped or collected (waits a moment while a
    /// collection is validating the object).
    ///
    /// ```
    /// let g = memward_gc::sync::Gc::new(3);
    /// assert_eq!(*memward_gc::sync::Gc::downgrade(&g).upgrade().unwrap(), 3);
    /// ```
    pub fn upgrade(&self) -> Option<Gc<T>> {
        self.header().try_inc_strong().map(|_| Gc {
            ptr: self.ptr,
            _owns: PhantomData,
        })
    }

    /// Whether both point to the same allocation.
    ///
    /// ```
    /// let g = memward_gc::sync::Gc::new(3);
    /// let w = memward_gc::sync::Gc::downgrade(&g);
    /// assert!(w.ptr_eq(&w.clone()));
    /// ```
    pub fn ptr_eq(&self, other: &Self) -> bool {
        self.ptr == other.ptr
    }
}

impl<T: Trace + Send + Sync + 'static> Clone for Weak<T> {
    fn clone(&self) -> Self {
        self.header().inc_weak();
        Weak {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

impl<T: Trace + Send + Sync + 'static> Drop for Weak<T> {
    fn drop(&mut self) {
        // SAFETY: we own this weak reference.
        unsafe { release_weak(GcBox::edge(self.ptr)) }
    }
}

// A Weak keeps nothing alive: no edge.
impl<T: Trace + Send + Sync + 'static> Trace for Weak<T> {
    // SAFETY: reports nothing.
    const STRUCTURAL: Structural = unsafe { Structural::assert_structural() };

    fn trace(&self, _: &mut Tracer) {}
}

impl<T: Trace + Send + Sync + fmt::Debug + 'static> fmt::Debug for Gc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Gc::try_deref(self) {
            Some(value) => value.fmt(f),
            None => f.write_str("<collected>"),
        }
    }
}

impl<T: Trace + Send + Sync + 'static> fmt::Debug for Weak<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(Weak)")
    }
}

impl<T: Trace + Send + Sync + Default + 'static> Default for Gc<T> {
    fn default() -> Self {
        Gc::new(T::default())
    }
}
