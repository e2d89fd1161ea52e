//! Fork safety: a multi-threaded C program (`programs/fork_threads.c`) whose threads
//! allocate, verify and cross-free blocks while the main thread and a worker thread fork
//! 200 children; each child frees what it inherited, allocates heavily (sometimes from a
//! new thread, sometimes in a grandchild) and exits through `exit()` or `_exit()`.
//!
//! Why: `fork()` in a threaded program copies only the calling thread. An allocator lock
//! held by another thread at that instant stays locked forever in the child, so its next
//! `malloc` deadlocks; a structure caught mid-update is corrupt. This is the way preloaded
//! allocators most often break real programs (shells, servers, Python's multiprocessing).
//! Children that deadlock are killed by an alarm and reported, and the whole run has a
//! time limit, so a hang fails the test instead of stalling CI.

mod common;

use common::{compile, program_source, require, Allocator, TempDir};
use std::time::Duration;

#[test]
fn threads_forking_children_that_allocate() {
    require("gcc", "gcc");
    let dir = TempDir::new("fork-threads");
    let exe = dir.path().join("fork_threads");
    compile(
        "gcc",
        &[program_source("fork_threads.c")],
        &[
            "-std=gnu17",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pthread",
        ],
        &[],
        &exe,
    );
    common::run_under_both(
        "fork_threads",
        &exe,
        Duration::from_secs(120),
        |_, _| {},
        |allocator, session, _| {
            if allocator == Allocator::Memward {
                // Children leaving through exit() ran the library's exit code after fork:
                // half of the 200 children plus the parent (grandchildren use _exit).
                let n = session.summary_count();
                assert!(n > 100, "only {n} processes wrote a memward summary");
            }
        },
    );
}
