//! Issue 8, items 1 and 2: memory that stays bounded under thread churn and comes back when
//! the program goes quiet. Each test compiles a program from `programs/complaints/`, runs it
//! on glibc's malloc and under `libmemward.so`, and holds both to the same bound: a bound
//! glibc does not meet would be a wrong bound, so glibc is checked first and named in the
//! failure.
//!
//! The programs measure themselves from `/proc` (RSS from `/proc/self/statm`, mappings as
//! lines of `/proc/self/maps`) and print `key=value` lines; `bench/complaints` runs the same
//! programs under every anchor allocator for the side-by-side table.

mod common;

use common::{compile, program_source, require, Allocator, Session, TempDir};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const MIB: i64 = 1024;

/// Compiles `programs/complaints/<name>.c` into `dir`.
fn build(dir: &TempDir, name: &str) -> PathBuf {
    require("gcc", "gcc");
    let exe = dir.path().join(name);
    compile(
        "gcc",
        &[program_source(&format!("complaints/{name}.c"))],
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
    exe
}

/// The program's `key=value` lines.
fn measurements(stdout: &str) -> BTreeMap<String, i64> {
    stdout
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Runs `exe args` under `allocator` (the memward run must leave its summary, proving the
/// library was loaded) and returns its measurements.
fn measure(allocator: Allocator, exe: &Path, args: &[&str]) -> BTreeMap<String, i64> {
    let what = format!(
        "{} {}",
        exe.file_name().unwrap().to_string_lossy(),
        args.join(" ")
    );
    let mut session = Session::new(allocator);
    let mut cmd = session.command(exe);
    cmd.args(args);
    let out = session.run(&what, &mut cmd, Duration::from_secs(60));
    out.expect_success(allocator);
    session.expect_summary(out.pid, &what);
    let m = measurements(&out.stdout);
    eprintln!(
        "[{what}] {}: {}",
        allocator.name(),
        m.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    m
}

/// Runs the program under glibc, then memward, and applies `check` to each run's
/// measurements; `check` returns the bounds that were broken. Fails naming every broken
/// bound of each allocator (glibc's first: then the bound, not memward, is wrong).
fn under_both(exe: &Path, args: &[&str], check: impl Fn(&BTreeMap<String, i64>) -> Vec<String>) {
    let mut broken = Vec::new();
    for allocator in [Allocator::Glibc, Allocator::Memward] {
        let m = measure(allocator, exe, args);
        for b in check(&m) {
            broken.push(format!("{}: {b}", allocator.name()));
        }
    }
    assert!(
        broken.is_empty(),
        "{} {}: bounds broken:\n  {}",
        exe.display(),
        args.join(" "),
        broken.join("\n  ")
    );
}

/// `m[key]`, panicking with the program's keys if it did not print it.
fn get(m: &BTreeMap<String, i64>, key: &str) -> i64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("the program printed no `{key}=` line: {m:?}"))
}

/// `m[key] - base <= limit`, or the description of the broken bound (`base_name` says
/// what `base` is).
fn at_most(m: &BTreeMap<String, i64>, key: &str, base: (i64, &str), limit: i64) -> Option<String> {
    let (base, base_name) = base;
    let value = get(m, key);
    (value - base > limit).then(|| {
        format!(
            "{key} = {value} ({} above {base_name} {base}), bound {limit} above it",
            value - base
        )
    })
}

/// Thread churn: RSS (above the live data) under 32 MiB and fewer than 2,000 mappings at
/// the peak, with the newest 1,000 blocks live, and after everything is freed.
fn churn_bounds(m: &BTreeMap<String, i64>) -> Vec<String> {
    let live = get(m, "live_kib");
    let mut broken: Vec<String> = [
        at_most(m, "rss_peak_kib", (live, "live_kib"), 32 * MIB),
        at_most(m, "rss_end_kib", (live, "live_kib"), 32 * MIB),
        at_most(m, "rss_freed_kib", (0, "zero"), 32 * MIB),
        at_most(m, "maps_peak", (0, "zero"), 2000),
        at_most(m, "maps_freed", (0, "zero"), 2000),
    ]
    .into_iter()
    .flatten()
    .collect();
    let stopped = get(m, "stopped_at");
    if stopped != 0 {
        broken.push(format!(
            "RSS passed the program's 512 MiB safety limit after {stopped} threads (of {})",
            get(m, "threads")
        ));
    }
    broken
}

#[test]
fn thread_churn_small_blocks_stays_bounded() {
    let dir = TempDir::new("churn-small");
    let exe = build(&dir, "thread_churn");
    // 20,000 threads, 100-byte blocks: 100 KB live.
    under_both(&exe, &["20000", "100", "1000", "4", "512"], churn_bounds);
}

#[test]
fn thread_churn_20k_blocks_stays_bounded() {
    let dir = TempDir::new("churn-20k");
    let exe = build(&dir, "thread_churn");
    // 20,000 threads, 20 KB blocks: 20 MB live.
    under_both(&exe, &["20000", "20480", "1000", "4", "512"], churn_bounds);
}

/// Idle return: from 1,500 ms after the frees on, every sample is within 48 MiB of the
/// RSS at the start.
fn idle_bounds(m: &BTreeMap<String, i64>) -> Vec<String> {
    let start = get(m, "rss_start_kib");
    let mut broken = Vec::new();
    for t in (1500..=2000).step_by(100) {
        let key = format!("rss_t{t}_kib");
        broken.extend(at_most(m, &key, (start, "rss_start_kib"), 48 * MIB));
    }
    broken
}

#[test]
fn idle_program_with_small_allocations_returns_memory() {
    let dir = TempDir::new("idle-small");
    let exe = build(&dir, "idle_return");
    under_both(&exe, &["small", "1536", "2000"], idle_bounds);
}

#[test]
fn idle_program_without_allocations_returns_memory() {
    let dir = TempDir::new("idle-none");
    let exe = build(&dir, "idle_return");
    under_both(&exe, &["none", "1536", "2000"], idle_bounds);
}
