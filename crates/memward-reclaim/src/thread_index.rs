//! Small per-thread indices, reused after a thread exits.
//!
//! A collector keeps a fixed table of "home" records indexed by this number, so a thread finds
//! its record with one thread-local read and one array load instead of searching a list or
//! doing an atomic read-modify-write. Freed indices are handed out again before new ones are minted,
//! so the table stays small; an exiting thread's destructor returns its index to the free list.
//! The mutex is taken only when a thread first asks and when it exits.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

static NEXT: AtomicUsize = AtomicUsize::new(0);
static FREE: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// `INDEX` before this thread has asked for an index.
const UNSET: usize = usize::MAX;
/// `INDEX` after this thread's index was handed back (thread teardown).
const RETIRED: usize = usize::MAX - 1;

thread_local! {
    /// The index itself: a const-initialised cell without a destructor, so reading it is a
    /// single thread-local load with no lazy-initialisation check.
    static INDEX: Cell<usize> = const { Cell::new(UNSET) };
    /// Owns the index and hands it back when the thread exits.
    static OWNER: ThreadIndex = ThreadIndex::acquire();
}

struct ThreadIndex(usize);

impl ThreadIndex {
    fn acquire() -> Self {
        let reused = FREE.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let index = reused.unwrap_or_else(|| NEXT.fetch_add(1, Ordering::Relaxed));
        INDEX.with(|i| i.set(index));
        Self(index)
    }
}

impl Drop for ThreadIndex {
    fn drop(&mut self) {
        INDEX.with(|i| i.set(RETIRED));
        FREE.lock().unwrap_or_else(|e| e.into_inner()).push(self.0);
    }
}

/// This thread's index, or `None` while the thread is being torn down.
#[inline(always)]
pub(crate) fn current() -> Option<usize> {
    let index = INDEX.with(Cell::get);
    if index < RETIRED {
        return Some(index);
    }
    first_use(index)
}

#[cold]
#[inline(never)]
fn first_use(index: usize) -> Option<usize> {
    if index == RETIRED {
        return None;
    }
    OWNER.try_with(|owner| owner.0).ok()
}
