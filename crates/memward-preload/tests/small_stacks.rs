//! Threads with 64 KiB stacks work under the library in every mode: glibc carves each
//! thread's static TLS (the library's thread-locals among it) out of the thread's stack and
//! fails `pthread_create` with EINVAL when it does not fit. (The checker's and the
//! profiler's walk caches once brought the library's TLS to 99 KiB, and such threads could
//! not be created at all.)

mod common;

use common::{compile, library, program_source, require, TempDir};
use std::process::Command;

#[test]
fn threads_with_small_stacks_start_in_every_mode() {
    require("gcc", "gcc");
    let dir = TempDir::new("small-stacks");
    let exe = dir.path().join("small_stacks");
    compile(
        "gcc",
        &[program_source("small_stacks.c")],
        &["-O2", "-Wall", "-Werror", "-pthread"],
        &[],
        &exe,
    );
    let profile = dir.path().join("profile");
    let modes: [(&str, Vec<(&str, String)>); 4] = [
        ("glibc", vec![]),
        (
            "memward",
            vec![("LD_PRELOAD", library().display().to_string())],
        ),
        (
            "checker",
            vec![
                ("LD_PRELOAD", library().display().to_string()),
                ("MEMWARD_CHECK", "1".into()),
            ],
        ),
        (
            "profiler",
            vec![
                ("LD_PRELOAD", library().display().to_string()),
                ("MEMWARD_PROFILE", profile.display().to_string()),
            ],
        ),
    ];
    for (mode, env) in modes {
        let out = Command::new(&exe)
            .env_remove("LD_PRELOAD")
            .envs(env)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{mode}: {}\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            stdout, "65536-byte stacks: 4 threads ran\n131072-byte stacks: 4 threads ran\n",
            "{mode}"
        );
    }
}
