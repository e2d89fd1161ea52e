//! memward check on real C and C++ programs: `libmemward.so` (the release build, with the
//! engine's checking glue) preloaded with `MEMWARD_CHECK=1`, as `memward check` runs a
//! program. Each program makes one deliberate error; the report must name it, point at
//! the program's source line (symbolised in-process), and end the process with status 1.
//! A correct program must run silently with status 0.
//!
//! They use the release build of `libmemward.so` (`cargo build --release` first, as CI's
//! `scripts/test` does), or `$MEMWARD_LIB`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `$MEMWARD_LIB`, or the release build in this build's target directory.
fn library() -> PathBuf {
    if let Some(p) = std::env::var_os("MEMWARD_LIB").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let mut candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(4)
        .map(|d| d.join("release/libmemward.so"))
        .collect();
    candidates
        .push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/libmemward.so"));
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!("libmemward.so is missing (looked for {candidates:?}): run `cargo build --release` first")
        })
}

/// Compiles `source` (in `tests/programs`) with `compiler` into a temporary directory.
fn build(compiler: &str, source: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/programs")
        .join(source);
    let dir = std::env::temp_dir().join(format!("memward-check-preload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(source.replace('.', "_"));
    let status = Command::new(compiler)
        .args(["-g", "-O0", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {compiler} (apt-get install -y gcc g++): {e}"));
    assert!(status.success(), "{compiler} {} failed", src.display());
    out
}

fn check(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(program)
        .args(args)
        .env("LD_PRELOAD", library())
        .env("MEMWARD_CHECK", "1")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_has(o: &Output, needles: &[&str]) {
    let e = stderr(o);
    for n in needles {
        assert!(e.contains(n), "stderr lacks {n:?}:\n{e}");
    }
}

#[test]
fn c_programs_errors_are_reported_at_their_source_line() {
    let wrong = build("gcc", "wrong.c");

    let o = check(&wrong, &["double_free"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_has(
        &o,
        &[
            "==ERROR: memward: attempting double-free on 0x",
            "    #0 0x",
            " in double_free ",
            "wrong.c:12",
            "freed by thread T0 here:",
            "wrong.c:11",
            "previously allocated by thread T0 here:",
            "wrong.c:9",
            "SUMMARY: memward: double-free ",
            "==ABORTING",
        ],
    );

    let o = check(
        &wrong,
        &["overflow_read"],
        &[("MEMWARD_CHECK_GUARD", "all")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_has(
        &o,
        &[
            "==ERROR: memward: heap-buffer-overflow on address 0x",
            "READ of unknown size at 0x",
            "wrong.c:19",
            "is located 0 bytes after 32-byte region",
            "allocated by thread T0 here:",
            "wrong.c:17",
        ],
    );

    let o = check(
        &wrong,
        &["use_after_free"],
        &[("MEMWARD_CHECK_GUARD", "all")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_has(
        &o,
        &[
            "==ERROR: memward: heap-use-after-free on address 0x",
            "READ of unknown size",
            "wrong.c:26",
            "is located 40 bytes inside of 400-byte region",
            "freed by thread T0 here:",
            "wrong.c:25",
            "previously allocated by thread T0 here:",
            "wrong.c:23",
        ],
    );

    let o = check(
        &wrong,
        &["overflow_write"],
        &[("MEMWARD_CHECK_GUARD", "none")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_has(
        &o,
        &[
            "==ERROR: memward: heap-buffer-overflow on address 0x",
            "(found at free: the red zone was overwritten)",
            "WRITE of size 2 at",
            "is located 0 bytes after 13-byte region",
            "wrong.c:32",
            "wrong.c:30",
        ],
    );

    let o = check(&wrong, &["leak"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_has(
        &o,
        &[
            "ERROR: memward: detected memory leaks",
            "Direct leak of 100 byte(s) in 1 object(s) allocated from:",
            "wrong.c:37",
            "SUMMARY: memward: 100 byte(s) leaked in 1 allocation(s).",
        ],
    );
    let o = check(&wrong, &["leak"], &[("MEMWARD_CHECK_LEAKS", "0")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    for guard in ["sample", "all", "none"] {
        let o = check(&wrong, &["correct"], &[("MEMWARD_CHECK_GUARD", guard)]);
        assert_eq!(o.status.code(), Some(0), "guard {guard}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "guard {guard}");
    }
}

#[test]
fn cxx_new_array_freed_with_delete_is_a_mismatch() {
    let program = build("g++", "mismatch.cpp");
    let o = check(&program, &[], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_has(
        &o,
        &[
            "==ERROR: memward: alloc-dealloc-mismatch (operator new [] vs operator delete) on 0x",
            "mismatch.cpp:7",
            "allocated by thread T0 here:",
            "mismatch.cpp:5",
            "SUMMARY: memward: alloc-dealloc-mismatch ",
        ],
    );
    // The program's own output is not lost when the report ends it.
    assert!(!String::from_utf8_lossy(&o.stdout).contains("after"));
}

/// Blocks aligned to 64 bytes up to 64 MiB (`posix_memalign`, `aligned_alloc`,
/// `memalign`, grown and shrunk by `realloc`) work under the checker in every guard mode,
/// and their errors are reported as any block's. Blocks aligned to 4 MiB or more used to
/// be reported as bad frees when freed: the engine finds a block only from its first 4
/// MiB segment, and the checker's pointer lay a whole alignment past the block's start.
#[test]
fn large_alignments_work_and_their_errors_are_reported() {
    let program = build("gcc", "big_align.c");
    for guard in ["sample", "all", "none"] {
        let o = check(&program, &["correct"], &[("MEMWARD_CHECK_GUARD", guard)]);
        assert_eq!(o.status.code(), Some(0), "guard {guard}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "guard {guard}");
    }
    for align in ["4096", "4194304", "16777216", "67108864"] {
        let o = check(&program, &["interior_free", align], &[]);
        assert_eq!(o.status.code(), Some(1), "{align}: {}", stderr(&o));
        assert_has(
            &o,
            &[
                "==ERROR: memward: attempting free on address which was not malloc()-ed: 0x",
                "is located 16 bytes inside of 100-byte region",
                "big_align.c:",
                "SUMMARY: memward: bad-free ",
            ],
        );
        // Past the block's first segment the engine disowns the address; the checker
        // still names the block.
        let o = check(&program, &["far_interior_free", align], &[]);
        assert_eq!(o.status.code(), Some(1), "{align}: {}", stderr(&o));
        let inside = format!(
            "bytes inside of {}-byte region",
            3 * align.parse::<usize>().unwrap()
        );
        assert_has(
            &o,
            &[
                "attempting free on address which was not malloc()-ed: 0x",
                &inside,
            ],
        );
        let o = check(&program, &["double_free", align], &[]);
        assert_eq!(o.status.code(), Some(1), "{align}: {}", stderr(&o));
        assert_has(
            &o,
            &[
                "==ERROR: memward: attempting double-free on 0x",
                "is located 0 bytes inside of 100-byte region",
                "freed by thread T0 here:",
            ],
        );
        let o = check(&program, &["overflow", align], &[]);
        assert_eq!(o.status.code(), Some(1), "{align}: {}", stderr(&o));
        assert_has(
            &o,
            &[
                "==ERROR: memward: heap-buffer-overflow on address 0x",
                "is located 0 bytes after 100-byte region",
            ],
        );
        let o = check(&program, &["leak", align], &[]);
        assert_eq!(o.status.code(), Some(1), "{align}: {}", stderr(&o));
        assert_has(
            &o,
            &["Direct leak of 100 byte(s) in 1 object(s) allocated from:"],
        );
        // With --guard all they are guarded too: reads past the end and after the free
        // fault at the instruction.
        let all = [("MEMWARD_CHECK_GUARD", "all")];
        let o = check(&program, &["read_past_end", align], &all);
        assert_eq!(o.status.code(), Some(1), "{align}: {}", stderr(&o));
        assert_has(
            &o,
            &[
                "==ERROR: memward: heap-buffer-overflow on address 0x",
                "READ of unknown size at 0x",
                "is located 0 bytes after 4096-byte region",
            ],
        );
        let o = check(&program, &["read_after_free", align], &all);
        assert_eq!(o.status.code(), Some(1), "{align}: {}", stderr(&o));
        assert_has(
            &o,
            &[
                "==ERROR: memward: heap-use-after-free on address 0x",
                "is located 10 bytes inside of 100-byte region",
            ],
        );
    }
}
