//! Shared by the integration tests: a C program compiled (not run) to give real
//! addresses with real names, a profile written with the format's writer whose stacks
//! point into it, and the rule for external viewers (required in CI, skipped with a note
//! elsewhere when absent).

#![allow(dead_code)]

use memward_profile_format::{IoSink, Writer};
use object::{Object, ObjectSegment, ObjectSymbol};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const PROGRAM: &str = r#"
#include <stdlib.h>
__attribute__((noinline)) void *leak_site(void) { return malloc(48); }
__attribute__((noinline)) void *big_buffer(void) { return malloc(64 << 20); }
__attribute__((noinline)) void temporary_site(void) { void *volatile p = malloc(32); free(p); }
__attribute__((noinline)) void *grow_buffer(void *p, size_t n) { return realloc(p, n); }
int main(void) {
    for (int i = 0; i < 1000; i++) leak_site();
    free(big_buffer());
    for (int i = 0; i < 1000; i++) temporary_site();
    void *p = 0;
    for (size_t n = 16; n <= 4096; n *= 2) p = grow_buffer(p, n);
    free(p);
    return 0;
}
"#;

pub const MIB64: u64 = 64 << 20;

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("memward-report-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Compiles [`PROGRAM`] (no PIE, so addresses in the file are run-time addresses).
pub fn compile(dir: &Path) -> PathBuf {
    let src = dir.join("prog.c");
    std::fs::write(&src, PROGRAM).unwrap();
    let bin = dir.join("prog");
    let out = Command::new("cc")
        .args(["-O1", "-g", "-no-pie", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("cc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

/// What the profile holds, per site, for the checks.
pub struct Expect {
    pub leaks: u64,
    pub temporaries: u64,
}

/// Writes a profile of [`PROGRAM`]'s behaviour with stacks into `bin`: `leaks` blocks
/// of 48 bytes leaked, 64 MiB held at the peak, `temporaries` temporary blocks of 32
/// bytes, a buffer grown by realloc from 16 to 4096 bytes.
pub fn write_profile(bin: &Path, out: &Path, e: &Expect) {
    let data = std::fs::read(bin).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let sym = |name: &str| {
        file.symbols()
            .find(|s| s.name() == Ok(name))
            .unwrap_or_else(|| panic!("no symbol {name}"))
            .address()
    };
    let mut w = Writer::new(vec![0u8; 1 << 16], IoSink(Vec::new()));
    let exe = bin.to_str().unwrap().as_bytes();
    w.header(4242, 1, 1_700_000_000_000_000_000, 0, exe, [exe]);
    let segments: Vec<(u64, u64, u64, u32)> = file
        .segments()
        .map(|s| (s.address(), s.size(), s.file_range().0, 5))
        .collect();
    let build_id = file.build_id().unwrap().unwrap_or_default().to_vec();
    w.module(1, exe, &build_id, 0, segments);
    // Return addresses a few bytes into each function.
    w.stack_node(1, 0, sym("main") + 4);
    let (leak, big, temp, grow) = (2, 3, 4, 5);
    w.stack_node(leak, 1, sym("leak_site") + 4);
    w.stack_node(big, 1, sym("big_buffer") + 4);
    w.stack_node(temp, 1, sym("temporary_site") + 4);
    w.stack_node(grow, 1, sym("grow_buffer") + 4);
    let t = 1;
    w.thread_name(t, b"prog");
    w.time(0, 0, 1 << 20);
    for i in 0..e.leaks {
        w.alloc(t, 0x10_0000 + i * 64, 48, leak);
    }
    w.time(10_000_000, 48 * e.leaks, 2 << 20);
    w.alloc(t, 0x4000_0000, MIB64, big);
    w.time(20_000_000, MIB64, 70 << 20);
    w.free(t, 0x4000_0000);
    for _ in 0..e.temporaries {
        w.alloc(t, 0x30_0000, 32, temp);
        w.free(t, 0x30_0000);
    }
    w.time(30_000_000, 48 * e.leaks, 6 << 20);
    let mut at = 0x50_0000;
    w.alloc(t, at, 16, grow);
    let mut n = 16;
    while n < 4096 {
        n *= 2;
        w.realloc(t, at, at + 0x1_0000, n, grow);
        at += 0x1_0000;
    }
    w.free(t, at);
    w.end(40_000_000, 0, 0);
    w.flush();
    std::fs::write(out, w.into_sink().0).unwrap();
}

/// The path of an external tool, or `None` (outside CI only) with a note; in CI a missing
/// tool fails the test.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is required in CI (see .ci/run)"
        );
        eprintln!("SKIPPED: {name} is not installed (CI installs it)");
    }
    found
}

/// Loads `page` in headless Chromium and returns the DOM after its scripts ran.
pub fn chromium_dom(chromium: &Path, page: &str, dir: &Path) -> String {
    let profile = dir.join(format!("chromium-{}", page.len()));
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--allow-file-access-from-files",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(page)
        .output()
        .expect("chromium");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
