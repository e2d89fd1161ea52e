//! A C++ program of ours (`programs/cxx_workload.cpp`): standard containers of every shape
//! with strings past the small-string buffer, threads and `std::async` re-running the
//! container workload concurrently, a producer/consumer queue that frees on another thread
//! than it allocated, exceptions thrown through deep frames and carried across threads
//! with `exception_ptr`, `bad_alloc` from a failing `new`, and over-aligned `new`/`delete`
//! (64 B to 2 MiB, including sized and nothrow forms).
//!
//! Why: C++ reaches malloc through libstdc++ — `operator new` (malloc), aligned `new`
//! (aligned_alloc), exception objects (`__cxa_allocate_exception`), thread start-up — and
//! a preloaded allocator has to serve all of them, including their failure paths. The
//! program checks its own results (alignment, totals, per-thread results equal to a
//! single-threaded run) and its output must be identical under glibc and memward.

mod common;

use common::{compile, program_source, require, TempDir};
use std::time::Duration;

#[test]
fn cxx_containers_threads_exceptions_aligned_new() {
    require("g++", "g++");
    let dir = TempDir::new("cxx");
    let exe = dir.path().join("cxx_workload");
    compile(
        "g++",
        &[program_source("cxx_workload.cpp")],
        &[
            "-std=c++17",
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
        "cxx_workload",
        &exe,
        Duration::from_secs(120),
        |_, _| {},
        |_, _, out| {
            assert!(
                out.stdout.ends_with("all checks passed\n"),
                "{}",
                out.stdout
            );
        },
    );
}
