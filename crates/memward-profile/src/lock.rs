//! The recorder's locks: a test-and-set spin lock that yields to the scheduler when it is
//! contended.
//!
//! None is on the recorder's common path any more (threads append to their own rings, see
//! `recorder::ring`): they guard the output (merges into the file), additions to the stack
//! trie, the unwinder's slow step and the module scan. The lock is unfair, which is why it
//! must stay off paths that every event takes. A futex mutex would do as well, but this one
//! has two properties the recorder needs and can see at a glance: it never allocates, and a
//! forked child can reset it (`force_unlock`) whatever state the parent's other threads
//! left it in.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

/// Whether the process certainly has one thread: glibc's `__libc_single_threaded`, which
/// `pthread_create` clears before the new thread exists (on the creating thread, so a
/// thread that reads it set is alone until it creates one) and a forked child sets again.
/// glibc's own `malloc` skips its atomic operations on the same test. Threads made with
/// a bare `clone` are not counted, as glibc's are not. False where the C library is not
/// glibc.
#[inline(always)]
pub fn single_threaded() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            static __libc_single_threaded: u8;
        }
        // SAFETY: a byte glibc (2.32 and later) defines, readable at any time; it is
        // written only by the thread that creates the process's second thread, before that
        // thread exists, so a reader that may race with the write is not alone anyway.
        unsafe { core::ptr::read_volatile(&raw const __libc_single_threaded) != 0 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// A value behind a spin lock.
pub struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out one `&mut T` at a time, so sharing the lock across threads is
// sharing a `T` behind a mutex, which needs only `T: Send`.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// Unlocked.
    pub const fn new(value: T) -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Waits for the lock. In a process with one thread, a load and a store take it: no
    /// other thread can race for it, and a locked instruction costs tens of cycles (the
    /// checker takes three locks per allocation and free).
    #[inline]
    pub fn lock(&self) -> Guard<'_, T> {
        if single_threaded() && !self.locked.load(Ordering::Relaxed) {
            self.locked.store(true, Ordering::Relaxed);
            return Guard { lock: self };
        }
        self.lock_contended()
    }

    #[inline(never)]
    fn lock_contended(&self) -> Guard<'_, T> {
        let mut spins = 0u32;
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            spins += 1;
            if spins < 64 {
                core::hint::spin_loop();
            } else {
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
            }
        }
        Guard { lock: self }
    }

    /// The lock, if no one holds it now.
    pub fn try_lock(&self) -> Option<Guard<'_, T>> {
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| Guard { lock: self })
    }

    /// Takes the lock and keeps it past the guard's scope (for `fork`'s prepare handler;
    /// released by `force_unlock` in the parent and the child).
    pub fn lock_forever(&self) {
        core::mem::forget(self.lock());
    }

    /// Releases a lock taken by `lock_forever`.
    ///
    /// # Safety
    /// The caller holds the lock through `lock_forever` and no guard exists.
    pub unsafe fn force_unlock(&self) {
        self.locked.store(false, Ordering::Release);
    }

    /// The value, for the thread that holds the lock through `lock_forever`.
    ///
    /// # Safety
    /// The caller holds the lock (through `lock_forever`) and no guard exists.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get_locked(&self) -> &mut T {
        // SAFETY: per the contract, the lock is ours and no other reference exists.
        unsafe { &mut *self.value.get() }
    }
}

/// Exclusive access to the value until dropped.
pub struct Guard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, so no `&mut` exists elsewhere.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock and is borrowed mutably: this is the only
        // reference.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_held_is_not_taken_again() {
        static L: SpinLock<u64> = SpinLock::new(0);
        let g = L.lock();
        assert!(L.try_lock().is_none());
        drop(g);
        assert!(L.try_lock().is_some());
    }

    #[test]
    fn excludes_other_threads() {
        static L: SpinLock<u64> = SpinLock::new(0);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..10_000 {
                        *L.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*L.lock(), 40_000);
    }
}
