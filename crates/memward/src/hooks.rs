//! The hook point: how a profiler or checker sees every allocation and free without fast
//! mode paying for it.
//!
//! Hooks are three plain function pointers in one table, installed process-wide. Fast mode
//! (no table) adds nothing to the fast paths: a heap notices the table at its next slow path
//! and switches to *hooked mode*, in which its direct table points only at the empty page
//! (mimalloc's empty-heap trick), so every `malloc` takes the slow path, where the hook is
//! called. Each block handed out in hooked mode marks its page with `FLAG_HOOKED`, so the
//! free fast path's single test of the page flags fails and the free goes out of line,
//! where the hook is called. Frees from other threads are out of line already; they test
//! the table there. Details and the costs: `docs/engine-hooks.md`.

pub use crate::hook_table::Hooks;
use crate::{hook_table, thread};

/// Installs `hooks` for every thread, replacing any installed before. The calling
/// thread's heap switches at once, other threads' heaps within a few of their slow paths
/// (new heaps start switched), so blocks allocated before may be reported only when
/// freed: hooks must ignore pointers they do not know.
pub fn install(hooks: &'static Hooks) {
    hook_table::set(Some(hooks));
    switch_this_thread(true);
}

/// Removes the installed hooks; heaps return to fast mode as they noticed them.
///
/// ```
/// memward::hooks::remove();
/// assert!(!memward::hooks::installed());
/// ```
pub fn remove() {
    hook_table::set(None);
    switch_this_thread(hook_table::installed());
}

/// Are hooks installed?
///
/// ```
/// assert!(!memward::hooks::installed());
/// ```
#[inline]
pub fn installed() -> bool {
    hook_table::current().is_some()
}

fn switch_this_thread(on: bool) {
    let h = thread::current();
    if !thread::is_empty(h) {
        // SAFETY: the thread's own heap, not borrowed during this call.
        unsafe { (*h).local().set_hooked(on) };
    }
}
