//! Thread heaps: the thread-local heap pointer, the thread-exit hook, process-wide
//! initialisation and the `fork()` handlers. (Heap structures themselves come from
//! `heap::pool`.)
//!
//! Every thread starts on a static empty heap whose direct table points at an empty page,
//! so the first `malloc` of a thread takes the slow path, which creates its real heap. No
//! step of this allocates through the global allocator: heap structures are carved from
//! mappings of their own, and the exit hook is a `pthread` key destructor (keys below 32 are
//! stored without allocation), rather than a Rust TLS destructor, whose registration may
//! call `malloc`. Heap structures are reused after threads exit and never unmapped.

use crate::heap::{pool, Heap};
use crate::{options, os, sampling, segment_pool};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};

static EMPTY_HEAP: Heap = Heap::EMPTY;
const EMPTY_HEAP_PTR: *mut Heap = &EMPTY_HEAP as *const Heap as *mut Heap;

/// The thread's heap pointer.
///
/// On x86_64 Linux it is a TLS slot of the initial-exec model, defined in assembly: reading
/// it is one `mov` from `fs`, where Rust's `thread_local!` in a shared library (as in
/// `libmemward.so`) costs a call to `__tls_get_addr` on every `malloc`. Its initial value,
/// the address of the empty heap, is relocated by the dynamic loader like any TLS image.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod current_slot {
    use super::{Heap, EMPTY_HEAP};

    core::arch::global_asm!(
        ".pushsection .tdata,\"awT\",@progbits",
        ".p2align 3",
        // Global so every codegen unit's reference resolves at link time; hidden so it is
        // neither exported nor interposable.
        ".globl memward_current_heap",
        ".hidden memward_current_heap",
        ".type memward_current_heap, @object",
        ".size memward_current_heap, 8",
        "memward_current_heap:",
        ".quad {empty}",
        ".popsection",
        empty = sym EMPTY_HEAP,
    );

    #[inline(always)]
    pub fn get() -> *mut Heap {
        let h: *mut Heap;
        // SAFETY: reads this thread's 8-byte slot defined above; the offset comes from the
        // GOT entry the linker creates for the initial-exec access.
        unsafe {
            core::arch::asm!(
                "mov {h}, qword ptr [rip + memward_current_heap@GOTTPOFF]",
                "mov {h}, qword ptr fs:[{h}]",
                h = out(reg) h,
                options(nostack, readonly, preserves_flags),
            );
        }
        h
    }

    #[inline(always)]
    pub fn set(h: *mut Heap) {
        // SAFETY: writes this thread's slot defined above.
        unsafe {
            core::arch::asm!(
                "mov {off}, qword ptr [rip + memward_current_heap@GOTTPOFF]",
                "mov qword ptr fs:[{off}], {h}",
                off = out(reg) _,
                h = in(reg) h,
                options(nostack, preserves_flags),
            );
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod current_slot {
    use super::{Heap, EMPTY_HEAP_PTR};
    use core::cell::Cell;

    std::thread_local! {
        static CURRENT: Cell<*mut Heap> = const { Cell::new(EMPTY_HEAP_PTR) };
    }

    #[inline(always)]
    pub fn get() -> *mut Heap {
        CURRENT.get()
    }

    #[inline(always)]
    pub fn set(h: *mut Heap) {
        CURRENT.set(h)
    }
}

/// The calling thread's heap (the static empty heap before its first allocation).
#[inline(always)]
pub fn current() -> *mut Heap {
    current_slot::get()
}

/// Is `h` the static empty heap (the thread has not allocated yet)?
#[inline(always)]
pub fn is_empty(h: *mut Heap) -> bool {
    h == EMPTY_HEAP_PTR
}

/// Creates the calling thread's heap on its first allocation. Null if out of memory.
#[cold]
#[inline(never)]
pub fn init_thread_heap() -> *mut Heap {
    global_init();
    // Initialisation may have allocated (recursively) and created the heap already.
    let current = current();
    if !is_empty(current) {
        return current;
    }
    let h = pool::new_heap(os::thread_id());
    if h.is_null() {
        return h;
    }
    current_slot::set(h);
    if KEY_OK.load(Ordering::Acquire) {
        // SAFETY: the key was created by global_init; the value is our heap. Setting it
        // after CURRENT means a recursive malloc from inside finds the heap.
        unsafe {
            libc::pthread_setspecific(KEY.load(Ordering::Relaxed), h as *const libc::c_void);
        }
    }
    // A reused heap may hold frees that were queued after its last owner left.
    // SAFETY: we own the heap now and hold no other borrow of it.
    unsafe { (*h).local().drain_remote() };
    h
}

static INIT: AtomicU8 = AtomicU8::new(0);
static KEY: AtomicU32 = AtomicU32::new(0);
static KEY_OK: AtomicBool = AtomicBool::new(false);

/// One-time process setup: options, the thread-exit key and the fork handlers.
/// Recursive or concurrent callers during setup proceed without waiting: nothing in the
/// allocation paths depends on setup having finished.
pub fn global_init() {
    if INIT.load(Ordering::Acquire) == 2 {
        return;
    }
    if INIT
        .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return;
    }
    options::load();
    crate::install_modes_from_env();
    os::page_size();
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a valid out-parameter and `thread_done` has the destructor ABI.
    if unsafe { libc::pthread_key_create(&mut key, Some(thread_done)) } == 0 {
        KEY.store(key, Ordering::Relaxed);
        KEY_OK.store(true, Ordering::Release);
    }
    // SAFETY: the handlers are `extern "C" fn()` that only take and release our locks.
    unsafe {
        libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child));
    }
    INIT.store(2, Ordering::Release);
}

/// Thread-exit hook: abandons the exiting thread's heap.
unsafe extern "C" fn thread_done(value: *mut libc::c_void) {
    let h = value as *mut Heap;
    if h.is_null() {
        return;
    }
    if current_slot::get() == h {
        current_slot::set(EMPTY_HEAP_PTR);
    }
    // SAFETY: this thread owns `h` and is not inside an allocator call on it (destructors
    // run after the thread's code returned).
    unsafe {
        (*h).local().abandon();
        pool::retire_heap(h);
    }
}

extern "C" fn fork_prepare() {
    pool::lock();
    segment_pool::lock_all();
    sampling::lock();
}

extern "C" fn fork_parent() {
    // SAFETY: fork_prepare took these locks on this thread.
    unsafe {
        sampling::unlock();
        segment_pool::unlock_all();
        pool::unlock();
    }
}

extern "C" fn fork_child() {
    // SAFETY: the child has one thread, the one that ran fork_prepare.
    unsafe {
        sampling::unlock();
        segment_pool::unlock_all();
        pool::unlock();
    }
}
