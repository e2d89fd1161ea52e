//! A pointer memward did not allocate, passed to `free`, is detected (it lies outside every
//! memward segment), reported on stderr with its address, and ignored, so it cannot corrupt
//! the allocator; the program keeps running. Only memward is run: glibc aborts here.

mod common;

use common::{compile, library, program_source, require, TempDir};
use std::process::Command;

#[test]
fn foreign_pointers_are_reported_and_ignored() {
    require("gcc", "gcc");
    let dir = TempDir::new("foreign-free");
    let exe = dir.path().join("foreign_free");
    compile(
        "gcc",
        &[program_source("foreign_free.c")],
        &["-O1", "-Wno-free-nonheap-object"],
        &[],
        &exe,
    );
    let out = Command::new(&exe)
        .env("LD_PRELOAD", library())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the program failed: {:?}\n{stderr}",
        out.status
    );
    assert_eq!(stdout.trim(), "still mapped and writable");
    let reports: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("pointer not allocated by memward; ignored"))
        .collect();
    assert_eq!(
        reports.len(),
        3,
        "one report per foreign pointer:\n{stderr}"
    );
    for line in reports {
        assert!(
            line.starts_with("memward: free(0x"),
            "report names the call and address: {line}"
        );
    }
}
