//! Thread numbers as reports print them (`T0` for the main thread, then `T1`, `T2`, ... in
//! the order threads first reach the checker), and each thread's stack top for the
//! unwinder, both cached in thread-local storage. A thread other than the main one also
//! has its stack block remembered for the leak scan then, which must not read its frames
//! once it has exited (`leaks::remember_thread_stack`).

use core::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(1);

#[derive(Clone, Copy)]
struct Cached {
    number: u32,
    stack_top: u64,
    /// Stacks captured on this thread (for the module map's refresh).
    captures: u32,
    known: bool,
}

thread_local! {
    static THREAD: Cell<Cached> = const {
        Cell::new(Cached { number: 0, stack_top: 0, captures: 0, known: false })
    };
}

fn cached() -> Cached {
    let t = THREAD.with(Cell::get);
    if t.known {
        return t;
    }
    // SAFETY: gettid and getpid have no preconditions.
    let main = unsafe { libc::gettid() == libc::getpid() };
    let t = Cached {
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
        captures: 0,
        known: true,
    };
    THREAD.with(|c| c.set(t));
    t
}

/// The calling thread's number.
pub fn current() -> u32 {
    cached().number
}

/// The top of the calling thread's stack (0 if unknown).
pub fn stack_top() -> u64 {
    cached().stack_top
}

/// For a stack capture: the top of the calling thread's stack (0 if unknown), and how
/// many captures the thread made before this one.
pub fn next_capture() -> (u64, u32) {
    let mut t = cached();
    let count = t.captures;
    t.captures = count.wrapping_add(1);
    THREAD.with(|c| c.set(t));
    (t.stack_top, count)
}

/// The number as a header stores it (saturating at 65535).
pub fn current_u16() -> u16 {
    current().min(u16::MAX as u32) as u16
}
