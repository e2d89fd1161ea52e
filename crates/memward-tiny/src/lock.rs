//! A test-and-set spin lock around the heap.
//!
//! `GlobalAlloc` needs `Sync`, and `core` offers no mutex. Allocator critical sections are
//! short, so spinning is fine; on `wasm32` without the atomics feature the atomic operations
//! compile to plain loads and stores, which costs nothing in speed or size.

#[cfg(not(all(target_arch = "wasm32", not(target_feature = "atomics"))))]
use core::sync::atomic::Ordering;
use core::sync::atomic::AtomicBool;

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
