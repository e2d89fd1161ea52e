//! Small per-thread indices, reused after a thread exits.
//!
//! A collector keeps a fixed table of "home" records indexed by this number, so a thread finds
//! its record with one thread-local read and one array load instead of searching a list or
//! doing an atomic read-modify-write. Freed indices are handed out again before new ones are minted,
//! so the table stays small; an exiting thread's destructor returns its index to the free list.
//! The mutex is taken only when a thread first asks and when it exits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

static NEXT: AtomicUsize = AtomicUsize::new(0);
static FREE: Mutex<Vec<usize>> = Mutex::new(Vec::new());

struct ThreadIndex(usize);

impl ThreadIndex {
    fn acquire() -> Self {
        let reused = FREE.lock().unwrap_or_else(|e| e.into_inner()).pop();
        Self(reused.unwrap_or_else(|| NEXT.fetch_add(1, Ordering::Relaxed)))
    }
}

impl Drop for ThreadIndex {
    fn drop(&mut self) {
        FREE.lock().unwrap_or_else(|e| e.into_inner()).push(self.0);
    }
}

thread_local! {
    static INDEX: ThreadIndex = ThreadIndex::acquire();
}

/// This thread's index, or `None` while the thread is being torn down.
#[inline(always)]
pub(crate) fn current() -> Option<usize> {
    INDEX.try_with(|i| i.0).ok()
}
