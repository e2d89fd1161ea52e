//! Fast-mode hardening, driven for real: `tests/programs/misuse.c` commits one misuse per
//! run under `LD_PRELOAD=libmemward.so`, and each run must end the way glibc ends its own
//! checks, with one line on stderr (naming memward) and SIGABRT, and nothing after it. The
//! control run, a live block that holds a free-list link's exact bits, must be freed
//! normally. glibc itself is run on the plain double free to show the parity.

mod common;

use common::{compile, describe, kill_group, library, program_source, require, tail, TempDir};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The misuse program, compiled once per test binary.
fn program() -> &'static Path {
    static EXE: OnceLock<(TempDir, PathBuf)> = OnceLock::new();
    let (_, exe) = EXE.get_or_init(|| {
        require("gcc", "gcc");
        let dir = TempDir::new("misuse");
        let exe = dir.path().join("misuse");
        compile(
            "gcc",
            &[program_source("misuse.c")],
            &[
                "-O1",
                "-pthread",
                "-Wno-free-nonheap-object",
                "-Wno-use-after-free",
            ],
            &[],
            &exe,
        );
        (dir, exe)
    });
    exe
}

/// Runs the program in `mode` (preloading memward unless `glibc`), within 60 s; returns
/// the signal that ended it (if any), its stdout and its stderr.
fn run(mode: &str, glibc: bool) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(program());
    cmd.arg(mode)
        .env_remove("LD_PRELOAD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if !glibc {
        cmd.env("LD_PRELOAD", library());
    }
    let mut child = cmd.spawn().unwrap();
    let status = common::wait_with_limit(&mut child, Duration::from_secs(60));
    let Some(status) = status else {
        kill_group(child.id());
        panic!("`misuse {mode}` did not finish within 60 s");
    };
    let out = child.wait_with_output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (status.signal(), text(&out.stdout), text(&out.stderr))
}

/// `mode` must abort with exactly `message` as its only stderr line.
fn expect_abort(mode: &str, message: &str) {
    let (signal, stdout, stderr) = run(mode, false);
    assert_eq!(
        signal,
        Some(libc::SIGABRT),
        "`misuse {mode}` was not aborted ({}); stdout: {stdout}\nstderr:\n{}",
        signal.map_or("exited".into(), |s| format!("signal {s}")),
        tail(&stderr, 20)
    );
    assert_eq!(stderr, format!("{message}\n"), "`misuse {mode}`: stderr");
    assert_eq!(stdout, "", "`misuse {mode}` went on after the error");
}

const DOUBLE_FREE: &str = "memward: free(): double free detected";
const INVALID_POINTER: &str = "memward: free(): invalid pointer";

#[test]
fn double_free_aborts() {
    expect_abort("double-free", DOUBLE_FREE);
}

#[test]
fn double_free_of_an_8_byte_block_aborts() {
    expect_abort("double-free-8", DOUBLE_FREE);
}

#[test]
fn double_free_after_other_blocks_came_and_went_aborts() {
    expect_abort("double-free-later", DOUBLE_FREE);
}

#[test]
fn double_free_by_another_thread_aborts() {
    expect_abort("double-free-remote", DOUBLE_FREE);
}

#[test]
fn interior_pointers_abort() {
    expect_abort("interior", INVALID_POINTER);
    expect_abort("interior-odd", INVALID_POINTER);
    expect_abort("interior-remote", INVALID_POINTER);
}

#[test]
fn foreign_pointers_abort() {
    for mode in ["stack", "global", "mmap"] {
        expect_abort(mode, INVALID_POINTER);
    }
    expect_abort("realloc-stack", "memward: realloc(): invalid pointer");
}

#[test]
fn an_overwritten_free_list_link_aborts_on_allocation() {
    expect_abort(
        "write-after-free",
        "memward: malloc(): corrupted free list (write after free or double free)",
    );
}

#[test]
fn a_live_block_holding_a_link_lookalike_is_freed_normally() {
    let (signal, stdout, stderr) = run("lookalike", false);
    assert_eq!(signal, None, "stderr:\n{stderr}");
    assert_eq!(stdout, "freed normally\n");
    assert_eq!(stderr, "");
}

#[test]
fn glibc_aborts_on_the_same_double_free() {
    let (signal, _, stderr) = run("double-free", true);
    assert_eq!(
        signal,
        Some(libc::SIGABRT),
        "glibc: {}",
        describe_signal(signal)
    );
    assert!(
        stderr.contains("double free detected"),
        "glibc's message: {stderr}"
    );
}

fn describe_signal(signal: Option<i32>) -> String {
    match signal {
        Some(s) => describe(std::process::ExitStatus::from_raw(s)),
        None => "no signal".into(),
    }
}
