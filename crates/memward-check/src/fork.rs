//! `fork`: the checker's locks are taken before the fork and released after it, in the
//! parent and in the child, so a child never inherits a lock held by a thread that does
//! not exist in it. No path of the checker holds one of these locks while taking
//! another, so the order taken here cannot deadlock with them. The child also forgets the
//! parent's thread stacks (`leaks::forget_thread_stacks`): its leak scan reads them whole,
//! as memory of the parent's, rather than as stacks of threads that exited.

use crate::{guard, leaks, quarantine, registry, report, stacks};

/// Registers the handlers.
pub fn register() {
    // SAFETY: the handlers are `extern "C" fn()` that take and release our locks.
    unsafe { libc::pthread_atfork(Some(prepare), Some(after), Some(after_in_child)) };
}

extern "C" fn prepare() {
    report::lock();
    quarantine::lock();
    guard::lock();
    stacks::lock_all();
    registry::lock_all();
}

extern "C" fn after() {
    // SAFETY: `prepare` took every lock on this thread (the forking one, which is the
    // child's only thread); no guard exists.
    unsafe {
        registry::unlock_all();
        stacks::unlock_all();
        guard::unlock();
        quarantine::unlock();
        report::unlock();
    }
}

extern "C" fn after_in_child() {
    registry::forget_pid();
    after();
    leaks::forget_thread_stacks();
}
