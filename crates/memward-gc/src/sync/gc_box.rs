//! The thread-safe allocation: one 64-bit state word, a weak count, two collector cells.
//!
//! The state word packs `DEAD` (bit 0), `PENDING` (bit 1), `BUFFERED` (bit 2), the
//! strong count (bits 3 to 31) and a modification epoch (bits 32 to 63). `BUFFERED` lives
//! in the word so that a drop's "is it a candidate already?" and its decrement are one
//! atomic step with respect to the collector taking the candidate (see `Gc::drop`). Every clone and every drop is a single
//! `fetch_add` that changes the count *and* bumps the epoch, so the collector can tell
//! whether a count was touched at all between two reads (a count that went 3, 4, 3 has a
//! different word). That is what makes concurrent collection checkable (see
//! `collector`). `weak` counts `Weak`s, one reference per candidate-buffer entry, and
//! one implicit reference held until the value is dropped *and* the strong count is
//! zero; the memory is freed when it reaches zero, as with `Arc`.
use crate::trace::{Edge, Trace, Tracer, VTable};
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use core::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};

/// The value is dropped, being dropped by the collector, or not yet written.
pub(crate) const DEAD: u64 = 1;
/// The collector is validating this object as garbage: upgrades wait.
pub(crate) const PENDING: u64 = 2;
/// In a candidate buffer.
pub(crate) const BUFFERED: u64 = 4;
/// One strong reference.
pub(crate) const ONE: u64 = 8;
/// One epoch step.
pub(crate) const EPOCH: u64 = 1 << 32;
/// Added by a clone.
pub(crate) const INC: u64 = EPOCH + ONE;
/// Added (wrapping) by a drop: count minus one, epoch plus one.
pub(crate) const DEC: u64 = EPOCH - ONE;
/// Strong counts at or above this abort the process (the count field has 29 bits).
const MAX_STRONG: u64 = 1 << 28;

/// The strong count in a state word.
#[inline]
pub(crate) fn count(word: u64) -> u64 {
    (word & (EPOCH - 1)) >> 3
}

/// Counts and collector cells of one allocation.
#[repr(C)]
pub(crate) struct Header {
    pub(crate) word: AtomicU64,
    pub(crate) weak: AtomicUsize,
    /// Collector-only (read and written under the collector lock): index + 1 in the
    /// running collection, 0 when not a member.
    pub(crate) slot: AtomicUsize,
}

/// An allocation: header first, value after.
#[repr(C)]
pub(crate) struct GcBox<T> {
    pub(crate) header: Header,
    pub(crate) value: MaybeUninit<T>,
}

impl Header {
    #[inline]
    pub(crate) fn is_dead(&self) -> bool {
        self.word.load(Ordering::Acquire) & DEAD != 0
    }

    /// Adds a strong reference to an object that already has one.
    #[inline]
    pub(crate) fn inc_strong(&self) {
        let old = self.word.fetch_add(INC, Ordering::Relaxed);
        if count(old) >= MAX_STRONG {
            std::process::abort();
        }
    }

    #[inline]
    pub(crate) fn inc_weak(&self) {
        if self.weak.fetch_add(1, Ordering::Relaxed) > usize::MAX / 2 {
            std::process::abort();
        }
    }

    /// Adds a strong reference unless the object is dead or has none; waits while the
    /// collector validates it (on the collecting thread itself: gives `None` then).
    /// Returns the new word.
    pub(crate) fn try_inc_strong(&self) -> Option<u64> {
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            if word & DEAD != 0 || count(word) == 0 {
                return None;
            }
            if word & PENDING != 0 {
                if super::collector::in_collection() {
                    // A `trace` (or destructor) run by the collection validating this
                    // object: waiting would wait for ourselves. The object may well be
                    // garbage; say it is gone.
                    return None;
                }
                std::thread::yield_now();
                word = self.word.load(Ordering::Relaxed);
                continue;
            }
            if count(word) >= MAX_STRONG {
                std::process::abort();
            }
            match self.word.compare_exchange_weak(
                word,
                word.wrapping_add(INC),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(word.wrapping_add(INC)),
                Err(now) => word = now,
            }
        }
    }
}

impl<T: Trace + Send + Sync + 'static> GcBox<T> {
    const VTABLE: VTable = VTable {
        trace: trace_value::<T>,
        drop_value: drop_value::<T>,
        dealloc: dealloc::<T>,
    };

    /// Allocates a box with the given state word and weak count, value unwritten.
    pub(crate) fn allocate(word: u64, weak: usize) -> NonNull<GcBox<T>> {
        let boxed = Box::new(GcBox {
            header: Header {
                word: AtomicU64::new(word),
                weak: AtomicUsize::new(weak),
                slot: AtomicUsize::new(0),
            },
            value: MaybeUninit::<T>::uninit(),
        });
        NonNull::from(Box::leak(boxed))
    }

    /// The erased edge for this allocation.
    #[inline]
    pub(crate) fn edge(ptr: NonNull<GcBox<T>>) -> Edge {
        Edge {
            ptr: ptr.cast(),
            vtable: &Self::VTABLE,
        }
    }
}

/// The header of an erased allocation.
///
/// # Safety
/// `ptr` must point to a live `GcBox` allocation of this module.
#[inline]
pub(crate) unsafe fn header<'h>(ptr: NonNull<()>) -> &'h Header {
    // SAFETY: GcBox is repr(C) with the header first; live per the caller.
    unsafe { ptr.cast::<Header>().as_ref() }
}

/// # Safety
/// `ptr` is a live `GcBox<T>` whose value is initialised and not dropped.
unsafe fn trace_value<T: Trace>(ptr: NonNull<()>, tracer: &mut Tracer) {
    // SAFETY: forwarded from the caller.
    let value = unsafe { (*ptr.cast::<GcBox<T>>().as_ptr()).value.assume_init_ref() };
    tracer.trace_object(value)
}

/// # Safety
/// `ptr` is a live `GcBox<T>` with an initialised value that nothing references and
/// nothing can reference again.
unsafe fn drop_value<T>(ptr: NonNull<()>) {
    // SAFETY: forwarded from the caller.
    unsafe { (*ptr.cast::<GcBox<T>>().as_ptr()).value.assume_init_drop() }
}

/// # Safety
/// `ptr` came from `GcBox::<T>::allocate`, its value is dropped or unwritten, and its
/// weak count reached zero.
unsafe fn dealloc<T>(ptr: NonNull<()>) {
    // SAFETY: forwarded from the caller; MaybeUninit never drops the value.
    drop(unsafe { Box::from_raw(ptr.cast::<GcBox<T>>().as_ptr()) })
}

/// Releases one weak reference; frees the memory when it was the last.
///
/// # Safety
/// The caller owns one weak reference to the live allocation `edge`.
#[inline]
pub(crate) unsafe fn release_weak(edge: Edge) {
    // SAFETY: live while the caller's reference is.
    let h = unsafe { header(edge.ptr) };
    if h.weak.fetch_sub(1, Ordering::Release) == 1 {
        fence(Ordering::Acquire);
        // SAFETY: the last reference of any kind: the value is gone (the implicit weak is
        // released only after it) and no one can reach the header any more.
        unsafe { (edge.vtable.dealloc)(edge.ptr) }
    }
}

/// Drops one strong reference without entering the object in the candidate buffer.
/// Returns the word before the drop.
///
/// # Safety
/// The caller owns one strong reference to the live allocation `edge`.
#[inline]
pub(crate) unsafe fn release_strong_quiet(edge: Edge) -> u64 {
    // SAFETY: live while the caller's reference is.
    let h = unsafe { header(edge.ptr) };
    let old = h.word.fetch_add(DEC, Ordering::Release);
    if count(old) == 1 {
        fence(Ordering::Acquire);
        // SAFETY: we held the last strong reference.
        unsafe { last_strong_gone(edge, old) }
    }
    old
}

/// The strong count reached zero: drop the value unless a collection already did, then
/// release the implicit weak reference.
///
/// # Safety
/// `edge` is live and its strong count just went from 1 to 0 (`old` is the word before).
#[cold]
unsafe fn last_strong_gone(edge: Edge, old: u64) {
    if old & DEAD == 0 {
        // SAFETY: no strong handle is left and upgrades fail at count 0, so nothing
        // references the value and nothing can again. A collector cannot be tracing it:
        // its pin would be a strong reference.
        unsafe { (edge.vtable.drop_value)(edge.ptr) }
    }
    // With DEAD set, the collector dropped the value before releasing its own pin, so
    // it is gone in both cases.
    // SAFETY: the implicit weak reference belongs to the strong side, now empty.
    unsafe { release_weak(edge) }
}
