//! Each thread's walk cache ([`WalkCache`], about 66 KiB): mapped at the thread's first
//! capture instead of kept in static thread-local storage, which every thread of every
//! program preloading memward would pay for (fast mode never walks a stack) and which
//! glibc carves out of each thread's stack block; given back when the thread exits, for
//! the next thread to take (so a program that keeps starting threads reuses a few).
//!
//! A cache is used only by the thread that owns it. The checker and the profiler keep
//! its address in their own per-thread state, and a thread may still capture stacks after
//! it gave its cache back (in thread-exit destructors that run after ours), so [`mine`]
//! checks the owner on every use ([`WalkCache::mine`]): a thread that gave its cache back, or never got one,
//! walks without one.
//!
//! A cache taken from the pool keeps the walks its last owner logged. They stay right: a
//! kept walk is reused only by a walk from the same stack pointer whose stack words
//! still hold the logged values, the same words within the same stack span (the walk is a
//! function of those and of the rules, whichever thread logged it), and a new thread often
//! runs on the stack glibc cached from an exited one.

use super::walk_cache::WalkCache;
use crate::lock::SpinLock;
use crate::sys::Region;
use core::cell::{Cell, UnsafeCell};
use core::ffi::c_void;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};

/// A cache and who owns it (`repr(C)`: the owner is read on every capture, next to the
/// cache's first set rather than a page past its last).
#[repr(C)]
struct Slot {
    /// The owning thread's thread pointer; 0 while the slot waits in the pool.
    owner: AtomicUsize,
    /// The next slot in the pool (written under the pool's lock).
    next: AtomicPtr<Slot>,
    cache: UnsafeCell<WalkCache>,
}

/// The slot holding the cache at `cache`.
fn slot_of(cache: *mut WalkCache) -> *mut Slot {
    cache
        .cast::<u8>()
        .wrapping_sub(core::mem::offset_of!(Slot, cache))
        .cast()
}

/// Slots given back by exited threads.
struct Pool(*mut Slot);

// SAFETY: the pool only passes slots between threads under its lock; a slot is used by
// the one thread that owns it.
unsafe impl Send for Pool {}

static POOL: SpinLock<Pool> = SpinLock::new(Pool(null_mut()));

/// The thread-specific-data key whose destructor gives a thread's slot back.
static KEY: AtomicU32 = AtomicU32::new(KEY_UNSET);
const KEY_UNSET: u32 = u32::MAX;
const KEY_FAILED: u32 = u32::MAX - 1;
static KEY_LOCK: SpinLock<()> = SpinLock::new(());

/// The calling thread's slot: null before its first capture, `GONE` once given back.
const GONE: *mut Slot = core::ptr::dangling_mut::<Slot>();

thread_local! {
    static THREAD_SLOT: Cell<*mut Slot> = const { Cell::new(null_mut()) };
}

/// The calling thread's walk cache, mapped or taken from the pool at its first call; null
/// where there is none (the mapping or the thread-exit key was refused, or the thread is
/// exiting and gave its cache back). Use it through [`WalkCache::mine`].
pub fn thread_cache() -> *mut WalkCache {
    THREAD_SLOT.with(|s| {
        let mut slot = s.get();
        if slot.is_null() {
            slot = take().unwrap_or(GONE);
            s.set(slot);
        }
        if slot == GONE {
            null_mut()
        } else {
            // SAFETY: a slot is a live mapping that is never unmapped.
            unsafe { (*slot).cache.get() }
        }
    })
}

impl WalkCache {
    /// The cache at `cache` (from [`thread_cache`]) if the calling thread still owns it.
    ///
    /// # Safety
    /// `cache` is null or came from [`thread_cache`]; the caller does not hold another
    /// reference to it (captures are not re-entered on a thread).
    #[inline(always)]
    pub unsafe fn mine<'a>(cache: *mut WalkCache) -> Option<&'a mut WalkCache> {
        // SAFETY: forwarded contract.
        unsafe { mine(cache) }
    }
}

/// See [`WalkCache::mine`].
///
/// # Safety
/// As there.
#[inline(always)]
unsafe fn mine<'a>(cache: *mut WalkCache) -> Option<&'a mut WalkCache> {
    if cache.is_null() {
        return None;
    }
    let slot = slot_of(cache);
    // SAFETY: slots are never unmapped; `owner` is an atomic that other threads only
    // read or write as such, apart from the cache the `&mut` covers.
    let owner = unsafe { (*slot).owner.load(Ordering::Relaxed) };
    if owner != thread_pointer() {
        return None;
    }
    // SAFETY: this thread owns the slot: no other thread touches its cache until this
    // one gives it back, and the caller holds no other reference to it.
    Some(unsafe { &mut *(*slot).cache.get() })
}

/// A slot for the calling thread, registered to be given back at its exit.
#[cold]
fn take() -> Option<*mut Slot> {
    let key = key()?;
    let pooled = POOL.try_lock().map(|mut pool| {
        let slot = pool.0;
        if !slot.is_null() {
            // SAFETY: a pooled slot is a live mapping; its `next` is written under the lock.
            pool.0 = unsafe { (*slot).next.load(Ordering::Relaxed) };
        }
        slot
    });
    // A held lock (a forked child's, whose holder is gone) only costs a new mapping.
    let slot = match pooled {
        Some(slot) if !slot.is_null() => slot,
        _ => Region::map(core::mem::size_of::<Slot>())?
            .leak()
            .as_mut_ptr()
            .cast::<Slot>(),
    };
    // SAFETY: the slot is a live mapping (zeroed when new: an empty cache, no owner), now
    // this thread's alone.
    unsafe { (*slot).owner.store(thread_pointer(), Ordering::Relaxed) };
    // SAFETY: a key made by pthread_key_create; the value is the slot, which `give_back`
    // receives at the thread's exit.
    if unsafe { libc::pthread_setspecific(key, slot.cast::<c_void>()) } != 0 {
        // Never given back: keep it out of use rather than leak one per thread.
        // SAFETY: as above.
        unsafe { (*slot).owner.store(0, Ordering::Relaxed) };
        return None;
    }
    Some(slot)
}

/// The key whose destructor gives slots back, made at the first call.
fn key() -> Option<libc::pthread_key_t> {
    let mut k = KEY.load(Ordering::Acquire);
    if k == KEY_UNSET {
        let _made = KEY_LOCK.lock();
        k = KEY.load(Ordering::Acquire);
        if k == KEY_UNSET {
            let mut key: libc::pthread_key_t = 0;
            // SAFETY: `give_back` is an `extern "C" fn(*mut c_void)`; `key` is writable.
            k = if unsafe { libc::pthread_key_create(&mut key, Some(give_back)) } == 0 {
                key
            } else {
                KEY_FAILED
            };
            KEY.store(k, Ordering::Release);
        }
    }
    (k != KEY_FAILED).then_some(k)
}

/// The key's destructor, at a thread's exit: the thread's slot goes back to the pool.
extern "C" fn give_back(p: *mut c_void) {
    let slot = p.cast::<Slot>();
    THREAD_SLOT.with(|s| s.set(GONE));
    // SAFETY: the value set by `take`: a live slot this thread owns, and no capture is
    // running on this thread while its destructors run.
    unsafe { (*slot).owner.store(0, Ordering::Release) };
    // Another thread holds the lock for a few instructions; a forked child's lock held by
    // a thread that is gone is never released, and the slot is then left out.
    for _ in 0..1000 {
        if let Some(mut pool) = POOL.try_lock() {
            // SAFETY: as above; the slot is the pool's from here on.
            unsafe { (*slot).next.store(pool.0, Ordering::Relaxed) };
            pool.0 = slot;
            return;
        }
        core::hint::spin_loop();
    }
}

/// The thread pointer: distinct for each live thread, one instruction where a register
/// holds it. (The engine has the same read in `memward::os`: it does not depend on this
/// crate unless it is built with the checker.)
#[inline(always)]
pub fn thread_pointer() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let tp: usize;
        // SAFETY: on x86_64 Linux `fs:0` holds the thread control block's pointer to
        // itself, set up by the C runtime before any code of ours runs.
        unsafe {
            core::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) tp,
                options(nostack, readonly, preserves_flags, pure));
        }
        tp
    }
    #[cfg(target_arch = "aarch64")]
    {
        let tp: usize;
        // SAFETY: reading TPIDR_EL0 has no side effects; the runtime sets it per thread.
        unsafe {
            core::arch::asm!("mrs {}, tpidr_el0", out(reg) tp,
                options(nostack, nomem, preserves_flags, pure));
        }
        tp
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        THREAD_SLOT.with(|s| s as *const Cell<*mut Slot> as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_owns_its_cache_and_an_exited_threads_cache_is_reused() {
        let (first, usable) = std::thread::spawn(|| {
            let c = thread_cache();
            // SAFETY: this thread's cache, not otherwise borrowed.
            (c as usize, unsafe { mine(c) }.is_some())
        })
        .join()
        .unwrap();
        assert!(first != 0 && usable);
        // Another thread may not use it, and the next thread takes it from the pool
        // (tests in this binary may run beside this one and take it first).
        // SAFETY: checked for ownership only: `mine` refuses it.
        assert!(unsafe { mine(first as *mut WalkCache) }.is_none());
        let again = std::thread::spawn(|| thread_cache() as usize)
            .join()
            .unwrap();
        assert!(again != 0);
        // This thread's own, distinct from the live threads' of the other tests.
        let here = thread_cache();
        // SAFETY: as above.
        assert!(unsafe { mine(here) }.is_some());
    }
}
