//! Shared test helpers: a per-thread allocation counter and a destructor log.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts bytes allocated minus bytes freed by the current thread.
pub struct Counting;

thread_local! {
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
}

// SAFETY: forwards to System; the counter is a const-initialised thread-local without a
// destructor, so touching it never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LIVE_BYTES.try_with(|c| c.set(c.get() + layout.size() as isize));
        // SAFETY: forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE_BYTES.try_with(|c| c.set(c.get() - layout.size() as isize));
        // SAFETY: forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Bytes this thread holds (allocated minus freed by it), after releasing the buffers
/// the collector keeps between collections.
pub fn live_bytes() -> isize {
    memward_gc::trim();
    LIVE_BYTES.with(|c| c.get())
}

/// Silences the panics these tests provoke on purpose (so that the default hook, which
/// may capture and symbolise a backtrace, does not allocate during a memory measurement);
/// every other panic still goes to the default hook.
pub fn quiet_expected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
                .unwrap_or("");
            if !(message.contains("already collected") || message.contains("expected panic")) {
                default(info)
            }
        }));
    });
    // The first panic on a thread allocates what the runtime keeps for it.
    let _ = std::panic::catch_unwind(|| panic!("expected panic: warm-up"));
}
