//! The atomics shim: `std`'s atomics in ordinary builds, `loom`'s under `--cfg loom`.
//!
//! Every atomic the protocol touches comes from here so that the loom tests
//! (`RUSTFLAGS="--cfg loom" cargo test -p memward-reclaim --test loom`) explore the real code,
//! not a copy of it. The data structures in [`crate::structures`] import their atomics from here
//! too, so a loom test can drive them as well. `UnsafeCell` is wrapped so both builds share one
//! closure-based interface (loom's cell records each access and reports unsynchronised ones).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicUsize};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicUsize};

pub(crate) use core::sync::atomic::Ordering;

/// A cell whose contents one owner at a time mutates; loom checks the "one at a time" part.
#[derive(Debug)]
pub(crate) struct UnsafeCell<T> {
    #[cfg(loom)]
    inner: loom::cell::UnsafeCell<T>,
    #[cfg(not(loom))]
    inner: core::cell::UnsafeCell<T>,
}

impl<T> UnsafeCell<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            #[cfg(loom)]
            inner: loom::cell::UnsafeCell::new(value),
            #[cfg(not(loom))]
            inner: core::cell::UnsafeCell::new(value),
        }
    }

    /// Runs `f` with a pointer to the contents; the caller guarantees exclusive access.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        #[cfg(loom)]
        {
            self.inner.with_mut(f)
        }
        #[cfg(not(loom))]
        {
            f(self.inner.get())
        }
    }
}
