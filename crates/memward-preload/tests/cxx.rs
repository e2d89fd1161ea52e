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

use common::{
    assert_same, compile, program_source, report_times, require, Allocator, Session, TempDir,
};
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
    let mut outputs = Vec::new();
    let mut sessions = Vec::new();
    for allocator in [Allocator::Glibc, Allocator::Memward] {
        let mut s = Session::new(allocator);
        let mut cmd = s.command(&exe);
        let out = s.run("cxx_workload", &mut cmd, Duration::from_secs(120));
        assert!(
            out.status.success(),
            "cxx_workload failed under {} ({}):\n{}{}",
            allocator.name(),
            common::describe(out.status),
            out.stdout,
            out.stderr
        );
        assert!(
            out.stdout.ends_with("all checks passed\n"),
            "{}",
            out.stdout
        );
        s.expect_summary(out.pid, "cxx_workload");
        outputs.push(out.stdout);
        sessions.push(s);
    }
    assert_same("cxx_workload", &outputs[0], &outputs[1]);
    report_times("cxx", &sessions[0], &sessions[1]);
}
