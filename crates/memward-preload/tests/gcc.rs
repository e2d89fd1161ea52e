//! `gcc` compiling a multi-file C program (`programs/multifile`: a string hash map, a
//! growable vector, a string buffer and matrices, all on the heap), then running it.
//!
//! The compiler runs under the allocator in two ways: file by file at `-O2 -g` and then
//! linked, and all at once at `-O3 -flto`, which adds `lto-wrapper` and `lto1` to the
//! `cc1`, `as`, `collect2` and `ld` processes, all preloaded. Then each binary runs under
//! the same allocator.
//!
//! Why: GCC is a large allocation-heavy C++ program whose output is a deterministic
//! function of its input (the same objects whatever the heap addresses), so the binaries
//! built under memward must be byte-identical to those built under glibc: a corrupted
//! internal structure shows up as a crash, an error or a different binary. The compiled
//! program checks its own data structures and prints deterministic results.

mod common;

use common::{assert_same, program_source, report_times, require, Allocator, Session, TempDir};
use std::path::Path;
use std::time::Duration;

const SOURCES: [&str; 5] = ["main.c", "matrix.c", "strmap.c", "text.c", "vec.c"];
const HEADERS: [&str; 4] = ["matrix.h", "strmap.h", "text.h", "vec.h"];

/// Builds both variants under `s` into `out`, from sources in `src` (the working
/// directory, identical for both allocators since it is recorded in the debug info).
fn build(s: &mut Session, src: &Path, out: &Path) {
    let warn = ["-std=gnu17", "-Wall", "-Wextra", "-Werror"];
    for file in SOURCES {
        let obj = out.join(file.replace(".c", ".o"));
        let mut cmd = s.command("gcc");
        cmd.current_dir(src)
            .args(warn)
            .args(["-O2", "-g", "-c", file, "-o"])
            .arg(&obj);
        let o = s.run(
            &format!("gcc -c {file}"),
            &mut cmd,
            Duration::from_secs(120),
        );
        o.expect_success(s.allocator);
        s.expect_summary(o.pid, "gcc -c");
    }
    let mut cmd = s.command("gcc");
    cmd.current_dir(src).arg("-o").arg(out.join("prog_o2"));
    for file in SOURCES {
        cmd.arg(out.join(file.replace(".c", ".o")));
    }
    let o = s.run("gcc (link)", &mut cmd, Duration::from_secs(120));
    o.expect_success(s.allocator);

    let mut cmd = s.command("gcc");
    cmd.current_dir(src)
        .args(warn)
        .args(["-O3", "-g", "-flto"])
        .args(SOURCES)
        .arg("-o")
        .arg(out.join("prog_lto"));
    let o = s.run("gcc -O3 -flto", &mut cmd, Duration::from_secs(180));
    o.expect_success(s.allocator);
    s.expect_summary(o.pid, "gcc -flto");
}

#[test]
fn gcc_builds_and_runs_a_multi_file_program() {
    require("gcc", "gcc");
    let dir = TempDir::new("gcc");
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for f in SOURCES.iter().chain(&HEADERS) {
        std::fs::copy(program_source(&format!("multifile/{f}")), src.join(f)).unwrap();
    }

    let mut stdouts = Vec::new();
    let mut sessions = Vec::new();
    for allocator in [Allocator::Glibc, Allocator::Memward] {
        let mut s = Session::new(allocator);
        let out = dir.path().join(allocator.name());
        std::fs::create_dir(&out).unwrap();
        build(&mut s, &src, &out);
        if allocator == Allocator::Memward {
            // The driver's subprocesses (cc1, as, collect2, ld, lto1) ran preloaded too.
            let n = s.summary_count();
            assert!(
                n >= 20,
                "only {n} compiler processes wrote a memward summary"
            );
        }
        let mut text = String::new();
        for prog in ["prog_o2", "prog_lto"] {
            let mut cmd = s.command(out.join(prog));
            let o = s.run(prog, &mut cmd, Duration::from_secs(60));
            o.expect_success(allocator);
            s.expect_summary(o.pid, prog);
            text.push_str(&o.stdout);
        }
        stdouts.push(text);
        sessions.push(s);
    }
    // Both variants compute the same thing.
    let half = stdouts[0].len() / 2;
    assert_eq!(
        stdouts[0][..half],
        stdouts[0][half..],
        "-O2 and -flto builds disagree"
    );
    assert!(stdouts[0].contains("word digest"), "{}", stdouts[0]);
    assert_same("multi-file program", &stdouts[0], &stdouts[1]);

    // The compiler's output does not depend on the allocator.
    for f in ["main.o", "strmap.o", "prog_o2", "prog_lto"] {
        let a = std::fs::read(dir.path().join("glibc").join(f)).unwrap();
        let b = std::fs::read(dir.path().join("memward").join(f)).unwrap();
        assert!(
            a == b,
            "{f} built under memward differs from the one built under glibc"
        );
    }
    report_times("gcc", &sessions[0], &sessions[1]);
}
