//! The thread-local allocation: a header of three counters in front of the value.
//!
//! `strong` and `weak` count handles exactly like `Rc`'s (but `weak` has no implicit +1:
//! the allocation is freed when both are zero and neither the candidate buffer nor a
//! running collection refers to it). `meta` packs the collector's flags in its low bits
//! and, during a collection, the member's count of outside references (then its index)
//! above them.
//!
//! The value's life and the memory's life are separate. The value is dropped exactly
//! once, by whoever first sets `DEAD`: the last strong handle, or the collector for a
//! garbage cycle. Once `DEAD` is set no `&T` can be made again (`Gc`'s deref checks it).
//! The memory is freed by [`try_free`] only when no handle, no buffer entry and no
//! collection can still read the header. Boxes of up to 256 bytes come from and go back
//! to the thread's `box_cache`; larger ones use `Box`.
use super::box_cache;
use crate::trace::{Edge, Trace, Tracer, VTable};
use core::alloc::Layout;
use core::cell::Cell;
use core::mem::MaybeUninit;
use core::ptr::NonNull;

/// In the candidate buffer (possible root of a garbage cycle).
pub(crate) const BUFFERED: usize = 1;
/// The value is dropped, being dropped, or not yet written (`new_cyclic`).
pub(crate) const DEAD: usize = 2;
/// Member of the running collection's set (the bits above `SHIFT` hold its count of
/// outside references, then its index; see `collector`).
pub(crate) const IN_SET: usize = 4;
/// Bits below this hold flags (the collector's `MARK` is the fourth); the bits above it
/// a member's count or index during a collection, zero otherwise.
pub(crate) const SHIFT: u32 = 4;
/// Largest strong or weak count; beyond it we abort, as `Rc` does on overflow.
const MAX_COUNT: usize = usize::MAX >> (SHIFT + 1);

/// Reference counts and collector state of one allocation.
///
/// Invariant: `strong > 0` while any `Gc` points here; `weak` equals the number of live
/// `Weak`s; the memory is live while `strong + weak > 0` or `meta & (BUFFERED | IN_SET)`.
#[repr(C)]
pub(crate) struct Header {
    pub(crate) strong: Cell<usize>,
    pub(crate) weak: Cell<usize>,
    pub(crate) meta: Cell<usize>,
}

/// An allocation: header first (so a pointer to it is a pointer to the header), value
/// after.
#[repr(C)]
pub(crate) struct GcBox<T> {
    pub(crate) header: Header,
    pub(crate) value: MaybeUninit<T>,
}

impl Header {
    #[inline]
    pub(crate) fn is_dead(&self) -> bool {
        self.meta.get() & DEAD != 0
    }

    #[inline]
    pub(crate) fn inc_strong(&self) {
        let s = self.strong.get() + 1;
        if s > MAX_COUNT {
            std::process::abort();
        }
        self.strong.set(s);
    }

    #[inline]
    pub(crate) fn inc_weak(&self) {
        let w = self.weak.get() + 1;
        if w > MAX_COUNT {
            std::process::abort();
        }
        self.weak.set(w);
    }
}

impl<T: Trace + 'static> GcBox<T> {
    const VTABLE: VTable = VTable {
        trace: trace_value::<T>,
        drop_value: drop_value::<T>,
        dealloc: dealloc::<T>,
    };

    /// The function table for `T`.
    #[inline]
    pub(crate) fn vtable() -> &'static VTable {
        &Self::VTABLE
    }

    /// The box cache's size class for this type, if it has one.
    const CLASS: Option<usize> = box_cache::class_of(Layout::new::<GcBox<T>>());

    /// Allocates a box with the given counts and flags and an unwritten value.
    #[inline]
    pub(crate) fn allocate(strong: usize, weak: usize, meta: usize) -> NonNull<GcBox<T>> {
        let header = Header {
            strong: Cell::new(strong),
            weak: Cell::new(weak),
            meta: Cell::new(meta),
        };
        match Self::CLASS {
            Some(class) => {
                let ptr = box_cache::alloc(class).cast::<GcBox<T>>();
                // SAFETY: a block of the class's layout, which is at least as large and
                // as aligned as GcBox<T> (`class_of`), and ours alone.
                unsafe { core::ptr::addr_of_mut!((*ptr.as_ptr()).header).write(header) };
                ptr
            }
            None => NonNull::from(Box::leak(Box::new(GcBox {
                header,
                value: MaybeUninit::<T>::uninit(),
            }))),
        }
    }

    /// The erased edge for this allocation.
    #[inline]
    pub(crate) fn edge(ptr: NonNull<GcBox<T>>) -> Edge {
        Edge {
            ptr: ptr.cast(),
            vtable: Self::vtable(),
        }
    }
}

/// The header of an erased allocation.
///
/// # Safety
/// `ptr` must point to a live `GcBox` allocation of this module.
#[inline]
pub(crate) unsafe fn header<'h>(ptr: NonNull<()>) -> &'h Header {
    // SAFETY: GcBox is repr(C) with the header first, and the caller says it is live.
    unsafe { ptr.cast::<Header>().as_ref() }
}

/// # Safety
/// `ptr` is a live `GcBox<T>` whose value is initialised and not dropped.
unsafe fn trace_value<T: Trace>(ptr: NonNull<()>, tracer: &mut Tracer) {
    // SAFETY: forwarded from the caller; a shared borrow of an initialised value.
    let value = unsafe { (*ptr.cast::<GcBox<T>>().as_ptr()).value.assume_init_ref() };
    tracer.trace_object(value)
}

/// # Safety
/// `ptr` is a live `GcBox<T>` whose value is initialised; no reference to the value
/// exists and none will be made (its `DEAD` flag is set).
unsafe fn drop_value<T>(ptr: NonNull<()>) {
    // SAFETY: forwarded from the caller; the pointer came from Box::leak so it may write.
    unsafe { (*ptr.cast::<GcBox<T>>().as_ptr()).value.assume_init_drop() }
}

/// # Safety
/// `ptr` came from `GcBox::<T>::allocate`, its value is dropped or was never written, and
/// nothing refers to it any more.
unsafe fn dealloc<T: Trace + 'static>(ptr: NonNull<()>) {
    match GcBox::<T>::CLASS {
        // SAFETY: `allocate` took it from the cache with this class, on this thread
        // (a thread-local Gc never leaves its thread), and nothing refers to it.
        Some(class) => unsafe { box_cache::free(ptr.cast(), class) },
        // SAFETY: forwarded from the caller; MaybeUninit never drops the value.
        None => drop(unsafe { Box::from_raw(ptr.cast::<GcBox<T>>().as_ptr()) }),
    }
}

/// Frees the allocation if nothing can read it any more.
///
/// # Safety
/// `edge` points to a live allocation whose value is dropped or was never written when
/// its strong count is zero (the invariant every caller keeps).
#[inline]
pub(crate) unsafe fn try_free(edge: Edge) {
    // SAFETY: live per the caller.
    let h = unsafe { header(edge.ptr) };
    if h.strong.get() == 0 && h.weak.get() == 0 && h.meta.get() & (BUFFERED | IN_SET) == 0 {
        // SAFETY: no handle, buffer entry or collection refers to it; the value is gone.
        unsafe { (edge.vtable.dealloc)(edge.ptr) }
    }
}

/// The last strong handle went away: drop the value unless the collector owns that job
/// (the object is `DEAD` or in its set), then free the memory if nothing else refers to it. (Not cold: in trees and lists it is
/// how almost every object dies.)
///
/// # Safety
/// `edge` points to a live allocation whose strong count just reached zero.
pub(crate) unsafe fn release_last_strong(edge: Edge) {
    // SAFETY: live per the caller.
    let h = unsafe { header(edge.ptr) };
    let meta = h.meta.get();
    // A member of a running collection (IN_SET) keeps its value until the collection
    // has decided: a `trace` may be running on it, or have reported its fields. The
    // collector drops it then (see `collector::leave_live`).
    if meta & (DEAD | IN_SET) == 0 {
        h.meta.set(meta | DEAD);
        // SAFETY: the value is initialised (not DEAD) and no Gc refers to it, so no
        // reference to it exists; DEAD stops Weak::upgrade from making one. If the
        // destructor unwinds, the memory is leaked (never freed under a live header).
        unsafe { (edge.vtable.drop_value)(edge.ptr) }
    }
    // SAFETY: strong is zero and the value is dropped (or the collector, which set DEAD
    // first, holds IN_SET until it has dropped it).
    unsafe { try_free(edge) }
}
