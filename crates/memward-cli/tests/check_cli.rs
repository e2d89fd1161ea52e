//! `memward check` end to end, as far as the command line goes: the variables the checked
//! command sees (from its own `env`), the library first in `LD_PRELOAD`, the command run
//! by exec (same pid, its exit status and signals unchanged), and one-line errors with
//! status 2 for bad arguments, 125/126/127 for a missing library or command. What the
//! checker reports is tested on the corpus (`check_corpus.rs`).
//!
//! Needs the release library (`cargo build --release`, or `MEMWARD_LIB`).

mod library;
use library::library;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `memward check ARGS...` with a caller environment holding stale checker variables,
/// which must not reach the command.
fn check(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_memward"))
        .env("MEMWARD_LIB", library())
        .env("LD_PRELOAD", "")
        .env("MEMWARD_CHECK_LOG_FILE", "/stale/log")
        .env("MEMWARD_CHECK_SUPPRESSIONS", "/stale/sup")
        .env("MEMWARD_CHECK_GUARD", "stale")
        .current_dir(cwd)
        .arg("check")
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("memward-check-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The `MEMWARD_CHECK*` and `LD_PRELOAD` lines of `env` run under `memward check ARGS`.
fn seen_env(args: &[&str], cwd: &Path) -> Vec<String> {
    let mut all = args.to_vec();
    all.extend(["--", "env"]);
    let o = check(&all, cwd);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let mut lines: Vec<String> = text(&o.stdout)
        .lines()
        .filter(|l| l.starts_with("MEMWARD_CHECK") || l.starts_with("LD_PRELOAD="))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[test]
fn the_command_sees_the_contract_variables() {
    let dir = temp_dir("env");
    let lib = library();
    let defaults = seen_env(&["--no-leaks"], &dir);
    assert_eq!(
        defaults,
        [
            format!("LD_PRELOAD={}", lib.display()),
            "MEMWARD_CHECK=1".into(),
            "MEMWARD_CHECK_EXIT_CODE=1".into(),
            "MEMWARD_CHECK_GUARD=sample".into(),
            "MEMWARD_CHECK_KEEP_GOING=0".into(),
            "MEMWARD_CHECK_LEAKS=0".into(),
            "MEMWARD_CHECK_QUARANTINE_MIB=256".into(),
        ]
    );
    std::fs::write(dir.join("sup"), "").unwrap();
    let all = seen_env(
        &[
            "--guard=all",
            "--quarantine",
            "3",
            "--keep-going",
            "--exit-code",
            "42",
            "--log-file",
            "rep",
            "--suppressions",
            "sup",
        ],
        &dir,
    );
    let dir = dir.canonicalize().unwrap();
    assert_eq!(
        all,
        [
            format!("LD_PRELOAD={}", lib.display()),
            "MEMWARD_CHECK=1".into(),
            "MEMWARD_CHECK_EXIT_CODE=42".into(),
            "MEMWARD_CHECK_GUARD=all".into(),
            "MEMWARD_CHECK_KEEP_GOING=1".into(),
            "MEMWARD_CHECK_LEAKS=1".into(),
            format!("MEMWARD_CHECK_LOG_FILE={}", dir.join("rep").display()),
            "MEMWARD_CHECK_QUARANTINE_MIB=3".into(),
            format!("MEMWARD_CHECK_SUPPRESSIONS={}", dir.join("sup").display()),
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_command_replaces_memward() {
    let dir = temp_dir("exec");
    let child = Command::new(env!("CARGO_BIN_EXE_memward"))
        .env("MEMWARD_LIB", library())
        .args(["check", "--no-leaks", "--", "sh", "-c", "echo $$; exit 7"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    // Same pid: the report's ==PID== and --log-file's PATH.<pid> name the process started.
    assert_eq!(text(&o.stdout).trim(), pid.to_string());
    assert_eq!(o.status.code(), Some(7));
    // A signal ends memward itself, as it would the command.
    let o = check(&["--no-leaks", "--", "sh", "-c", "kill -TERM $$"], &dir);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(o.status.signal(), Some(libc::SIGTERM));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_arguments_are_one_line_with_status_2() {
    let dir = temp_dir("usage");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--guard", "some", "true"],
            "`--guard` takes `sample`, `all` or `none`",
        ),
        (
            &["--quarantine", "lots", "true"],
            "`--quarantine` takes a size in MiB",
        ),
        (&["--exit-code", "300", "true"], "from 0 to 255"),
        (&["--bogus", "true"], "unknown option `--bogus`"),
        (&[], "missing command to check"),
        (&["--log-file", "nodir/x", "true"], "does not exist"),
        (
            &["--suppressions", "nofile", "true"],
            "cannot read the suppressions file",
        ),
    ];
    for (args, want) in cases {
        let o = check(args, &dir);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.starts_with("memward: ") && err.contains(want) && err.lines().count() == 1,
            "{args:?}: {err:?}"
        );
        assert!(o.stdout.is_empty());
    }
    let o = check(&["--no-leaks", "no-such-command-xyz"], &dir);
    assert_eq!(o.status.code(), Some(127));
    assert!(text(&o.stderr).contains("no-such-command-xyz: command not found"));
    let o = check(&["--no-leaks", "--", dir.to_str().unwrap()], &dir);
    assert_eq!(o.status.code(), Some(126), "{}", text(&o.stderr));
    let not_a_lib = dir.join("notes.txt");
    std::fs::write(&not_a_lib, "text\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_memward"))
        .args(["check", "--lib", not_a_lib.to_str().unwrap(), "true"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("cannot be preloaded"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn help_is_reachable_both_ways() {
    for args in [&["check", "--help"][..], &["help", "check"]] {
        let o = Command::new(env!("CARGO_BIN_EXE_memward"))
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success());
        let out = text(&o.stdout);
        assert!(out.contains("--guard sample|all|none") && out.contains("Exit status"));
    }
}
