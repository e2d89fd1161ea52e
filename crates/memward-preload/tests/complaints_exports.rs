//! Issue 8, item 8: `malloc_info`, `mallopt` and `cfree` come from `libmemward.so` when it
//! is preloaded, so glibc's versions never act on glibc's unused arena (or, for `cfree`,
//! hand memward's blocks to glibc's `free`).
//!
//! `programs/complaints/exports.c` asks the dynamic linker which object each function was
//! bound from, and exercises each: `malloc_info`'s totals must follow the program's
//! allocations and carry memward's own element, `mallopt(M_TRIM_THRESHOLD, ...)` must move
//! the engine's purge delay as documented in `src/mallopt.rs`, and `cfree`, called through
//! the versioned compat symbol that old binaries bind, must free through memward. The same
//! program runs on glibc first, so the expectations shared by both are known to be glibc's.

mod common;

use common::{compile, program_source, require, Allocator, Session, TempDir};
use std::collections::BTreeMap;
use std::time::Duration;

fn run(allocator: Allocator, exe: &std::path::Path) -> BTreeMap<String, String> {
    let mut session = Session::new(allocator);
    let mut cmd = session.command(exe);
    // The delay the program reads first is the engine's default unless the environment
    // sets one; set one, so the restore check below compares with a known value.
    cmd.env("MEMWARD_PURGE_DELAY_MS", "25");
    let out = session.run("exports", &mut cmd, Duration::from_secs(60));
    out.expect_success(allocator);
    session.expect_summary(out.pid, "exports");
    eprintln!("[exports] {}:\n{}", allocator.name(), out.stdout);
    out.stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Panics unless every `key=value` pair is in `m`, listing all mismatches at once.
fn expect(allocator: Allocator, m: &BTreeMap<String, String>, pairs: &[(&str, &str)]) {
    let wrong: Vec<String> = pairs
        .iter()
        .filter(|(k, v)| m.get(*k).map(String::as_str) != Some(*v))
        .map(|(k, v)| format!("{k}: expected {v}, got {:?}", m.get(*k)))
        .collect();
    assert!(
        wrong.is_empty(),
        "{}: {}\nall output: {m:?}",
        allocator.name(),
        wrong.join("; ")
    );
}

/// What glibc and memward answer alike: the functions are the allocator's own,
/// `malloc_info` follows allocations and refuses options, `mallopt` accepts glibc's
/// parameters and refuses an oversized `M_MXFAST`, `cfree` works.
const COMMON: &[(&str, &str)] = &[
    ("same_malloc_info", "1"),
    ("same_mallopt", "1"),
    ("same_cfree", "1"),
    ("info_grew", "1"),
    ("info_bad_options", "22"),
    ("mallopt_trim_off", "1"),
    ("mallopt_trim_zero", "1"),
    ("mallopt_trim_positive", "1"),
    ("mallopt_mmap_threshold", "1"),
    ("mallopt_mxfast_too_big", "0"),
    ("mallopt_arena_max", "1"),
    ("mallopt_perturb_off", "1"),
    ("cfree_ok", "1"),
];

#[test]
fn malloc_info_mallopt_and_cfree_are_memwards() {
    require("gcc", "gcc");
    let dir = TempDir::new("exports");
    let exe = dir.path().join("exports");
    compile(
        "gcc",
        &[program_source("complaints/exports.c")],
        &["-std=gnu17", "-O2", "-Wall", "-Wextra", "-Werror"],
        &["-ldl"],
        &exe,
    );

    let glibc = run(Allocator::Glibc, &exe);
    expect(Allocator::Glibc, &glibc, COMMON);
    expect(
        Allocator::Glibc,
        &glibc,
        &[
            ("bound_malloc_info", "libc.so.6"),
            ("info_memward_element", "0"),
            // glibc accepts every number; memward refuses what it does not know.
            ("mallopt_unknown", "1"),
            ("mallopt_perturb_on", "1"),
        ],
    );

    let memward = run(Allocator::Memward, &exe);
    expect(Allocator::Memward, &memward, COMMON);
    expect(
        Allocator::Memward,
        &memward,
        &[
            ("bound_malloc", "libmemward.so"),
            ("bound_malloc_info", "libmemward.so"),
            ("bound_mallopt", "libmemward.so"),
            ("bound_cfree", "libmemward.so"),
            ("info_memward_element", "1"),
            // M_TRIM_THRESHOLD: -1 never purges, 0 purges at once, positive restores.
            ("delay_start", "25"),
            ("delay_after_trim_off", "-1"),
            ("delay_after_trim_zero", "0"),
            ("delay_after_trim_positive", "25"),
            ("mallopt_unknown", "0"),
            ("mallopt_perturb_on", "0"),
        ],
    );
    // The 1 MiB block freed through cfree left memward's in-use total.
    let drop: i64 = memward["cfree_in_use_drop_kib"].parse().unwrap();
    assert!(drop >= 1024, "cfree freed only {drop} KiB of a 1 MiB block");
}
