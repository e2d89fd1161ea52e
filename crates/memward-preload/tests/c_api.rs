//! The C API contract of `libmemward.so`, checked by a C program
//! (`programs/c_api.c`) that exercises every exported function's edge cases: overflow in
//! `calloc`/`reallocarray`, impossible sizes, bad alignments (`EINVAL`, output untouched),
//! zero sizes, `malloc_usable_size`, `errno`, alignments up to 2 MiB including
//! size == alignment, page alignment of `valloc`/`pvalloc`, `realloc(p, 0)` as glibc,
//! `mallinfo2`, `malloc_trim`, `malloc_stats`, and C23 `free_sized`/`free_aligned_sized`.
//!
//! Why: programs are written against glibc's behaviour, edge cases included (checking
//! `errno`, relying on `realloc` failure leaving the block intact). The program runs on
//! glibc too and must pass there, which shows the checks encode glibc's real behaviour
//! rather than memward's; the two runs' check lists must be identical. Under memward it
//! also checks (on stderr, outside the comparison) that every function of the family
//! resolves to libmemward.so, since one left to glibc would mix two allocators.

mod common;

use common::{compile, program_source, require, Allocator, TempDir};
use std::time::Duration;

#[test]
fn c_api_contract_matches_glibc() {
    require("gcc", "gcc");
    let dir = TempDir::new("c-api");
    let exe = dir.path().join("c_api");
    // -fno-builtin: GCC must not fold or drop malloc calls whose results are checked.
    compile(
        "gcc",
        &[program_source("c_api.c")],
        &[
            "-std=gnu17",
            "-O2",
            "-fno-builtin",
            "-Wall",
            "-Wextra",
            "-Werror",
        ],
        &["-ldl"],
        &exe,
    );

    common::run_under_both(
        "c_api",
        &exe,
        Duration::from_secs(60),
        |allocator, cmd| {
            if allocator == Allocator::Memward {
                cmd.env("MEMWARD_EXPECT", "1");
            }
        },
        |allocator, _, out| {
            // Every check prints its line, so a failure above shows all of them at once.
            assert!(
                out.stdout.ends_with("all checks passed\n"),
                "{}",
                out.stdout
            );
            if allocator == Allocator::Memward {
                // The memward-only checks went to stderr; make sure they ran.
                for want in [
                    "ok memward: malloc resolves to libmemward.so",
                    "ok memward: free_aligned_sized exists",
                    "ok free_sized frees blocks of many sizes, and NULL",
                    "ok memward: mallinfo2 uordblks counts a 10 MiB block",
                ] {
                    assert!(
                        out.stderr.contains(want),
                        "missing {want:?} in\n{}",
                        out.stderr
                    );
                }
            }
        },
    );
}
