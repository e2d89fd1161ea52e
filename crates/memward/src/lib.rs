#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

// Layers, bottom up, as the crate docs (README.md) draw them: a module uses only modules
// listed before it in `LAYERS`, which the test `layering` checks on the sources. Where two
// layers must meet the other way, the lower one holds an opaque pointer
// (`page::OwnerHeap`), never the higher one's type. Under `--cfg loom` only the lock-free
// protocol (`sync`, `list`) is compiled, for `tests/loom.rs`: the rest needs real memory
// mappings and a real thread-local slot.

/// The module order, bottom up.
#[cfg(all(test, not(loom)))]
const LAYERS: &[&str] = &[
    "sync",
    "hook_table",
    "layout",
    "size_class",
    "os",
    "lock",
    "options",
    "stats",
    "profile_env",
    "list",
    "hardening",
    "page",
    "sampling",
    "segment_map",
    "segment",
    "segment_pool",
    "heap",
    "thread",
    "free",
    "alloc",
    "first_class",
    "global",
    "raw",
    "hooks",
    "interpose",
    "check_env",
    "heap_stats",
];

mod sync;

#[cfg(loom)]
#[doc(hidden)]
pub mod list;

/// Items compiled only outside loom runs.
macro_rules! engine {
    ($($item:item)*) => { $( #[cfg(not(loom))] $item )* };
}

engine! {
mod alloc;
mod free;
mod hardening;
mod heap;
mod hook_table;
mod layout;
mod list;
mod lock;
mod options;
mod os;
mod page;
mod sampling;
mod segment;
mod segment_map;
mod segment_pool;
mod size_class;
mod stats;
mod profile_env;
mod thread;

mod first_class;
mod global;
pub mod raw;
pub mod hooks;
pub mod interpose;
mod check_env;
#[cfg(feature = "profile")]
mod heap_stats;

pub use first_class::Heap;
pub use global::Memward;
pub use stats::{SizeClassStats, Stats};
#[cfg(feature = "profile")]
pub use heap_stats::HeapStats;

/// Installs what the environment asks for at process setup (`thread::global_init`): the
/// profiler's hooks (`MEMWARD_PROFILE`) and the checker (`MEMWARD_CHECK`). It lives at the
/// crate root because setup is low in the layers while the checker's glue uses the top
/// ones (`raw`, `interpose`).
fn install_modes_from_env() {
    profile_env::install_from_env();
    check_env::install_from_env();
}

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
    heap::pool::for_each_heap(|heap| live_blocks += s.add_heap(heap.counters()));
    s.finish(live_blocks, segment_pool::abandoned_count());
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
}

#[cfg(all(test, not(loom)))]
mod layering {
    //! The layer order is a rule of the sources: every `crate::<module>` path in a module
    //! names a module at or below it in `LAYERS` (comments are not code and are skipped).

    use super::LAYERS;
    use std::path::Path;

    /// First path segments of `crate::` paths in `code`, including grouped imports.
    fn crate_paths(code: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let mut depth = 1;
                let mut item = String::new();
                let mut at_item_start = true;
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        ',' if depth == 1 => at_item_start = true,
                        _ => {}
                    }
                    if depth == 0 {
                        break;
                    }
                    if depth == 1 && at_item_start && (c.is_alphanumeric() || c == '_') {
                        item.push(c);
                    } else if !item.is_empty() {
                        found.push(std::mem::take(&mut item));
                        at_item_start = false;
                    }
                }
                if !item.is_empty() {
                    found.push(item);
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found.push(name);
            }
        }
        found
    }

    fn code_of(path: &Path) -> String {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn modules_use_only_lower_layers() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&src).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                let module = path.file_name().unwrap().to_str().unwrap().to_string();
                for sub in std::fs::read_dir(&path).unwrap() {
                    files.push((module.clone(), sub.unwrap().path()));
                }
            } else if path.file_stem().unwrap() != "lib" {
                let module = path.file_stem().unwrap().to_str().unwrap().to_string();
                files.push((module, path));
            }
        }
        let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
        let mut violations = Vec::new();
        for (module, path) in &files {
            let own = rank(module).unwrap_or_else(|| panic!("{module} is not in LAYERS"));
            for used in crate_paths(&code_of(path)) {
                match rank(&used) {
                    Some(r) if r <= own => {}
                    Some(_) => violations.push(format!("{}: uses crate::{used}", path.display())),
                    // Items of the crate root (`crate::stats()` is a function).
                    None => {}
                }
            }
        }
        assert!(
            violations.is_empty(),
            "upward uses:\n{}",
            violations.join("\n")
        );
        assert!(files.len() > 20, "found the sources");
    }

    #[test]
    fn the_parser_sees_grouped_imports() {
        let got = crate_paths("use crate::{heap::{pool, Heap}, os}; x = crate::stats::bump;");
        assert_eq!(got, ["heap", "os", "stats"]);
    }
}
