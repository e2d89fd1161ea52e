//! A test-and-set spin lock around the heap.
//!
//! `GlobalAlloc` needs `Sync`, and `core` offers no mutex. Allocator critical sections are
//! short, so spinning is fine. On `wasm32` without the atomics feature there are no threads,
//! so the lock compiles to nothing (which also keeps it out of the module's code size).

use core::sync::atomic::AtomicBool;
#[cfg(not(all(target_arch = "wasm32", not(target_feature = "atomics"))))]
use core::sync::atomic::Ordering;

pub(crate) struct SpinLock {
    #[cfg_attr(
        all(target_arch = "wasm32", not(target_feature = "atomics")),
        allow(dead_code)
    )]
    locked: AtomicBool,
}

impl SpinLock {
    pub(crate) const fn new() -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
        }
    }

    #[inline]
    pub(crate) fn acquire(&self) {
        // Without wasm threads there is one thread: no lock needed, and none costs code size.
        #[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
        return;
        #[cfg(not(all(target_arch = "wasm32", not(target_feature = "atomics"))))]
        while self.locked.swap(true, Ordering::Acquire) {
            while self.locked.load(Ordering::Relaxed) {
                core::hint::spin_loop();
            }
        }
    }

    #[inline]
    pub(crate) fn release(&self) {
        #[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
        return;
        #[cfg(not(all(target_arch = "wasm32", not(target_feature = "atomics"))))]
        self.locked.store(false, Ordering::Release);
    }
}
