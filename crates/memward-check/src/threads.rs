//! Thread numbers as reports print them (`T0` for the main thread, then `T1`, `T2`, ... in
//! the order threads first reach the checker), and each thread's stack top for the
//! unwinder, both cached in thread-local storage. A thread other than the main one also
//! has its stack block remembered for the leak scan then, which must not read its frames
//! once it has exited (`leaks::remember_thread_stack`).

use crate::guard::Countdown;
use core::cell::UnsafeCell;
use memward_profile::shared::{WalkCache, MAX_FRAMES};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(1);

#[derive(Clone, Copy)]
struct Cached {
    number: u32,
    stack_top: u64,
    /// The thread's walk cache (memward-profile's `thread_cache`, mapped for the thread):
    /// its address kept here saves a `__tls_get_addr` call per capture. Used through
    /// `WalkCache::mine`, which refuses it once the thread gave it back at its exit.
    walk_cache: *mut WalkCache,
    known: bool,
}

/// Everything the checker keeps per thread, in one thread-local (in `libmemward.so` each
/// access to one is a call to `__tls_get_addr`): also the capture's scratch frames, kept
/// here rather than zeroed on the stack at every capture (a 512-byte `memset` each). The
/// thread's recent stack walks are memward-profile's, shared with the profiler
/// (`thread_cache`). Return addresses only: no heap pointer for the leak scan to see.
struct State {
    cached: Cached,
    frames: [u64; MAX_FRAMES],
    countdown: Countdown,
}

thread_local! {
    static THREAD: UnsafeCell<State> = const {
        UnsafeCell::new(State {
            cached: Cached { number: 0, stack_top: 0, walk_cache: core::ptr::null_mut(), known: false },
            frames: [0; MAX_FRAMES],
            countdown: Countdown::new(),
        })
    };
}

/// Runs `f` on the calling thread's state, learning its number and stack first. (The
/// state's address is taken in a closure small enough to inline, and `f` runs outside
/// it: a larger closure made `LocalKey::with` a call of its own.)
#[inline(always)]
fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    let s = THREAD.with(|s| s.get());
    // The state is the thread's own and lives as long as the thread; `learn` and the
    // closures below do not come back here, and the fault handler (which asks for the
    // thread's number) runs for faults in the program's code, never inside them.
    // SAFETY: so this is the only borrow of it.
    let state = unsafe { &mut *s };
    if !state.cached.known {
        state.cached = learn();
    }
    f(state)
}

/// The calling thread's number and stack, found once.
#[cold]
fn learn() -> Cached {
    // SAFETY: gettid and getpid have no preconditions.
    let main = unsafe { libc::gettid() == libc::getpid() };
    Cached {
        number: if main {
            0
        } else {
            NEXT.fetch_add(1, Ordering::Relaxed)
        },
        stack_top: if main {
            memward_profile::shared::stack_top(true)
        } else {
            match memward_profile::shared::thread_stack() {
                Some((start, end)) => {
                    crate::leaks::remember_stack(start, end);
                    end
                }
                None => 0,
            }
        },
        walk_cache: memward_profile::shared::thread_cache(),
        known: true,
    }
}

/// The calling thread's number.
pub fn current() -> u32 {
    with_state(|s| s.cached.number)
}

/// The top of the calling thread's stack (0 if unknown).
pub fn stack_top() -> u64 {
    with_state(|s| s.cached.stack_top)
}

/// What a stack capture needs of the calling thread.
pub struct ForCapture {
    /// The top of the thread's stack (0 if unknown).
    pub stack_top: u64,
    /// The thread's number as a header stores it (saturating at 65535).
    pub thread: u16,
    /// The thread's scratch frames for the walk (see `State`): valid while the thread
    /// lives, and used by one capture at a time (captures are not re-entered on a
    /// thread; the fault handler's capture has its own).
    pub frames: *mut [u64; MAX_FRAMES],
    /// For an allocation: whether the guard mode picked it ([`Countdown::pick`]).
    pub guard: bool,
    /// The thread's walk cache (through `WalkCache::mine`), used by one capture at a time
    /// like `frames`.
    pub walk_cache: *mut WalkCache,
}

/// The calling thread's state for a stack capture, and for an allocation (`alloc`) the
/// guard mode's pick. The walk must not run inside a thread-local access: its stack would
/// then start with the standard library's frames, which the report does not know to drop
/// as the checker's own.
#[inline(always)]
pub fn for_capture(alloc: bool) -> ForCapture {
    with_state(|s| ForCapture {
        stack_top: s.cached.stack_top,
        thread: s.cached.number.min(u16::MAX as u32) as u16,
        frames: &mut s.frames,
        guard: alloc && s.countdown.pick(),
        walk_cache: s.cached.walk_cache,
    })
}

/// Which of `n` (a power of two, at most 64) shards of per-thread state the calling
/// thread uses: from its thread pointer, with no thread-local lookup. Threads spread
/// over the shards; nothing relies on two threads using different ones.
pub fn shard(n: usize) -> usize {
    debug_assert!(n.is_power_of_two() && n <= 64);
    let tp = memward_profile::shared::thread_pointer() as u64;
    ((tp >> 12).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as usize & (n - 1)
}
