#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![allow(clippy::missing_safety_doc)]

// Layers, bottom up; a module only uses the ones above it in this list.
mod alloc;
mod heap;
mod lock;
mod options;
mod os;
mod page;
mod segment;
mod segment_map;
mod size_class;
mod stats;
mod thread;

mod first_class;
mod global;
pub mod raw;

pub use first_class::Heap;
pub use global::Memward;
pub use stats::{SizeClassStats, Stats};

/// Block sizes of the size classes, smallest first.
///
/// ```
/// let classes: Vec<usize> = memward::size_classes().collect();
/// assert_eq!(&classes[..3], &[8, 16, 32]);
/// assert_eq!(*classes.last().unwrap(), 64 * 1024);
/// ```
pub fn size_classes() -> impl Iterator<Item = usize> {
    (1..size_class::BIN_COUNT).map(size_class::bin_size)
}

/// A snapshot of the allocator's statistics. The calling thread's counters are made exact
/// first; other running threads' counters lag by at most the free lists they are using.
///
/// ```
/// let before = memward::stats();
/// let v = vec![0u8; 1 << 20];
/// # drop(before); drop(v);
/// ```
pub fn stats() -> Stats {
    let h = thread::current();
    if !thread::is_empty(h) {
        // SAFETY: the thread's own heap, not borrowed elsewhere during this call.
        unsafe { (*h).local().flush_stats() };
    }
    let mut s = Stats::empty();
    let mut live_blocks = 0;
    thread::for_each_heap(|heap| live_blocks += s.add_heap(&heap.counters));
    s.finish(live_blocks, segment::abandoned_count());
    s
}

/// Sets how long free memory stays resident before it is returned to the OS, in
/// milliseconds (`0`: at once; negative: never). Overrides `MEMWARD_PURGE_DELAY_MS`.
///
/// ```
/// memward::set_purge_delay_ms(50);
/// ```
pub fn set_purge_delay_ms(ms: i64) {
    options::load();
    options::set_purge_delay_ms(ms);
}

/// The purge delay in force, in milliseconds.
///
/// ```
/// assert!(memward::purge_delay_ms() >= -1);
/// ```
pub fn purge_delay_ms() -> i64 {
    options::load();
    options::purge_delay_ms()
}

/// Whether `MEMWARD_STATS` asks for statistics at exit (read by the C library).
///
/// ```
/// if memward::stats_requested_at_exit() {
///     eprint!("{}", memward::stats());
/// }
/// ```
pub fn stats_requested_at_exit() -> bool {
    options::load();
    options::stats_at_exit()
}

/// Checks the calling thread's heap invariants (page lists, free-list counts, direct
/// table); panics on a violation. For tests and debugging: it walks every page.
///
/// ```
/// let v = vec![1u8; 100];
/// memward::check_thread_heap();
/// # drop(v);
/// ```
pub fn check_thread_heap() {
    let h = thread::current();
    if !thread::is_empty(h) {
        // SAFETY: the thread's own heap; check only reads it.
        unsafe { (*h).local().check() };
    }
}
