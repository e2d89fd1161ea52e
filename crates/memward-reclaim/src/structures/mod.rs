//! Lock-free data structures built on a reclamation scheme: examples of the API, and the
//! workloads of the tests and benchmarks.
//!
//! Each structure is generic over [`Reclaim`], a four-method view of a reclamation scheme, so
//! the benchmark can run the very same stack, queue and map code on this crate's [`Collector`]
//! and on the anchor crates (seize, crossbeam-epoch, haphazard) and compare the schemes, not
//! the structures. The `slot` argument of [`Reclaim::protect`] serves schemes with a fixed
//! number of hazard pointers per guard (haphazard): protecting into a slot again releases what
//! it held. [`Collector`] ignores it, since its guards keep every protection until they drop.

mod hash_map;
mod ms_queue;
mod treiber;

pub use hash_map::HashMap;
pub use ms_queue::MsQueue;
pub use treiber::TreiberStack;

use crate::sync::AtomicPtr;
use crate::{Collector, Guard};

/// A memory-reclamation scheme as the structures in this module use it.
///
/// ```
/// use memward_reclaim::structures::Reclaim;
/// use memward_reclaim::Collector;
/// use std::sync::atomic::AtomicPtr;
///
/// let collector = Collector::new();
/// let src = AtomicPtr::new(Box::into_raw(Box::new(1u8)));
/// let mut guard = collector.enter();
/// let p = collector.protect(&mut guard, 0, &src);
/// drop(guard);
/// // SAFETY: never retired or shared any more.
/// drop(unsafe { Box::from_raw(p) });
/// ```
pub trait Reclaim: Send + Sync {
    /// The scheme's critical-section token.
    type Guard<'a>
    where
        Self: 'a;

    /// Starts a critical section.
    fn enter(&self) -> Self::Guard<'_>;

    /// Loads `src` and keeps the result valid (see [`Guard::protect`]) while `guard` lives or
    /// until `slot` (0..3) is reused.
    fn protect<T>(&self, guard: &mut Self::Guard<'_>, slot: usize, src: &AtomicPtr<T>) -> *mut T;

    /// Retires a `Box<T>` pointer.
    ///
    /// # Safety
    ///
    /// As [`Guard::retire`]: from `Box::into_raw`, unlinked, retired once, through the scheme
    /// that protects it.
    unsafe fn retire<T: Send + 'static>(&self, guard: &Self::Guard<'_>, ptr: *mut T);
}

impl Reclaim for Collector {
    type Guard<'a> = Guard<'a>;

    #[inline]
    fn enter(&self) -> Guard<'_> {
        Collector::enter(self)
    }

    #[inline]
    fn protect<T>(&self, guard: &mut Guard<'_>, _slot: usize, src: &AtomicPtr<T>) -> *mut T {
        guard.protect(src)
    }

    #[inline]
    unsafe fn retire<T: Send + 'static>(&self, guard: &Guard<'_>, ptr: *mut T) {
        // SAFETY: forwarded from the trait method's contract.
        unsafe { guard.retire(ptr) }
    }
}
