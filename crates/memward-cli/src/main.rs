//! `memward`: runs a program with libmemward.so preloaded and summarises its memory use.
//! See `memward --help` (the texts are in `args.rs`).

mod args;
mod check;
mod install;
mod library;
mod profile;
mod report;
mod summary;

use args::{Action, InstallArgs, RunArgs, Topic};
use std::ffi::{OsStr, OsString};
use std::io::{ErrorKind, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{exit, Command};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use summary::{AllocSummary, Ending, Report};

/// Exit statuses of memward's own failures (the conventions of `env`, `timeout`, `nice`).
const EXIT_USAGE: i32 = 2;
const EXIT_INTERNAL: i32 = 125;
const EXIT_CANNOT_EXECUTE: i32 = 126;
const EXIT_NOT_FOUND: i32 = 127;

fn main() {
    let action = match args::parse(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) => fail(EXIT_USAGE, &e.to_string()),
    };
    match action {
        Action::Help(Topic::Main) => print_out(args::MAIN_HELP),
        Action::Help(Topic::Run) => print_out(args::RUN_HELP),
        Action::Help(Topic::Install) => print_out(args::INSTALL_HELP),
        Action::Help(Topic::Profile) => print_out(profile::PROFILE_HELP),
        Action::Version => print_out(&format!("memward {}\n", env!("CARGO_PKG_VERSION"))),
        Action::Run(run_args) => exit(run(run_args)),
        Action::Install(install_args) => install(install_args),
        Action::Profile(profile_args) => exit(profile::run(profile_args)),
        Action::Help(Topic::Report) => print_out(report::REPORT_HELP),
        Action::Help(Topic::Check) => print_out(check::CHECK_HELP),
        Action::Check(check_args) => exit(check::run(check_args)),
        Action::Report(report_args) => {
            if let Err(msg) = report::run(&report_args) {
                fail(1, &msg)
            }
        }
    }
}

/// The library `run` and `install` use, or exit with a one-line reason: status 2 when the
/// user's `--lib` is wrong, 125 when the environment or installation is.
fn library_or_exit(explicit: Option<PathBuf>, exe: Option<&Path>) -> PathBuf {
    match library::find(explicit, std::env::var_os("MEMWARD_LIB"), exe) {
        Ok(lib) => lib,
        Err(e) => fail(if e.usage { EXIT_USAGE } else { EXIT_INTERNAL }, &e.msg),
    }
}

fn install(a: InstallArgs) {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => fail(
            EXIT_INTERNAL,
            &format!("cannot find my own executable: {e}"),
        ),
    };
    let lib = library_or_exit(a.lib, Some(&exe));
    match install::install(&a.prefix, &exe, &lib) {
        Ok(done) => print_out(&install::usage_notes(&done)),
        Err(e) => fail(
            EXIT_INTERNAL,
            &format!("cannot install into {}: {e}", a.prefix.display()),
        ),
    }
}

/// Prints to stdout; a closed pipe (`memward --help | head -1`) is not an error worth a
/// panic message.
fn print_out(text: &str) {
    let _ = std::io::stdout().write_all(text.as_bytes());
}

/// Prints `memward: MSG` (one line) to stderr and exits with `code`.
fn fail(code: i32, msg: &str) -> ! {
    eprintln!("memward: {msg}");
    exit(code)
}

fn run(a: RunArgs) -> i32 {
    let exe = std::env::current_exe().ok();
    let lib = library_or_exit(a.lib, exe.as_deref());
    let summary_dir = match private_temp_dir() {
        Ok(d) => d,
        Err(e) => fail(
            EXIT_INTERNAL,
            &format!("cannot create a temporary directory: {e}"),
        ),
    };
    // The library appends `.<pid>` to this path; one file per process that exits normally.
    let summary_base = summary_dir.join("summary");

    let program = &a.command[0];
    let mut cmd = Command::new(program);
    cmd.args(&a.command[1..])
        .env(
            "LD_PRELOAD",
            preload_value(&lib, std::env::var_os("LD_PRELOAD").as_deref()),
        )
        .env("MEMWARD_SUMMARY_FILE", &summary_base);
    if a.stats {
        cmd.env("MEMWARD_STATS", "1");
    }

    install_signal_handlers();
    let start = Instant::now();
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&summary_dir);
            let name = program.to_string_lossy();
            match e.kind() {
                ErrorKind::NotFound => fail(EXIT_NOT_FOUND, &format!("{name}: command not found")),
                ErrorKind::PermissionDenied => {
                    fail(EXIT_CANNOT_EXECUTE, &format!("{name}: permission denied"))
                }
                _ => fail(EXIT_CANNOT_EXECUTE, &format!("{name}: cannot execute: {e}")),
            }
        }
    };
    let pid = child.id() as libc::pid_t;
    set_child(pid);
    let (status, rusage) = match wait_for(pid) {
        Ok(r) => r,
        Err(e) => fail(EXIT_INTERNAL, &format!("waiting for pid {pid}: {e}")),
    };
    let elapsed = start.elapsed();
    let ending = Ending::from_wait_status(status);

    let (alloc, other_processes) = collect_summaries(&summary_dir, pid);
    let _ = std::fs::remove_dir_all(&summary_dir);

    let command = display_command(&a.command);
    let report = Report {
        command: &command,
        pid,
        ending,
        elapsed,
        max_rss_kib: u64::try_from(rusage.ru_maxrss).unwrap_or(0),
        alloc,
        other_processes,
    };
    // One write, so the report is not interleaved with output of stray grandchildren.
    let _ = std::io::stderr().write_all(report.render().as_bytes());
    ending.exit_code()
}

/// The child's pid once spawned, for the signal handler.
static CHILD: AtomicI32 = AtomicI32::new(0);
/// A signal to forward that arrived before the child existed.
static PENDING: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward_signal(sig: libc::c_int) {
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe and has no memory-safety preconditions.
        unsafe { libc::kill(pid, sig) };
    } else {
        PENDING.store(sig, Ordering::SeqCst);
    }
}

extern "C" fn ignore_signal(_: libc::c_int) {}

/// Installs memward's signal handling, before spawning so that no signal finds memward
/// unprepared. Ctrl-C and Ctrl-\ reach the whole foreground process group, so memward
/// ignores them and lets them end the child, then reports (as `time` and shells do).
/// SIGTERM and SIGHUP sent to memward alone (by `kill`, `timeout`, a closed terminal) are
/// passed on to the child, which would otherwise be left running. These are handlers, not
/// SIG_IGN, because exec resets handlers: the child starts with default dispositions.
fn install_signal_handlers() {
    let handlers: [(libc::c_int, extern "C" fn(libc::c_int)); 4] = [
        (libc::SIGINT, ignore_signal),
        (libc::SIGQUIT, ignore_signal),
        (libc::SIGTERM, forward_signal),
        (libc::SIGHUP, forward_signal),
    ];
    for (sig, handler) in handlers {
        // SAFETY: sigaction with a zeroed struct, a valid handler address and an empty
        // mask; the handlers only touch atomics and call kill, both async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// Records the child for the handlers, and forwards a signal that came before it existed.
fn set_child(pid: libc::pid_t) {
    CHILD.store(pid, Ordering::SeqCst);
    let sig = PENDING.swap(0, Ordering::SeqCst);
    if sig != 0 {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Waits for `pid` to terminate; returns its wait status and resource usage.
fn wait_for(pid: libc::pid_t) -> std::io::Result<(i32, libc::rusage)> {
    let mut status = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both out-pointers point to live, writable locals.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            return Ok((status, usage));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Reads the summary the child (`pid`) wrote and counts those of other processes (its
/// descendants, which inherit `MEMWARD_SUMMARY_FILE`).
fn collect_summaries(dir: &Path, pid: libc::pid_t) -> (Option<AllocSummary>, usize) {
    let own = format!("summary.{pid}");
    let mut alloc = None;
    let mut others = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (None, 0);
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.as_bytes() == own.as_bytes() {
            alloc = std::fs::read_to_string(entry.path())
                .ok()
                .map(|t| AllocSummary::parse(&t));
        } else if name.as_bytes().starts_with(b"summary.") {
            others += 1;
        }
    }
    (alloc, others)
}

/// The child's LD_PRELOAD: our library first (so its malloc wins), then whatever the
/// caller already preloads.
fn preload_value(lib: &Path, existing: Option<&OsStr>) -> OsString {
    let mut v = OsString::from(lib);
    if let Some(existing) =
        existing.filter(|e| !e.as_bytes().iter().all(|b| *b == b' ' || *b == b':'))
    {
        v.push(":");
        v.push(existing);
    }
    v
}

/// A new directory only we can write (mode 0700), so no other user can plant a symlink
/// where the library will write its summary.
fn private_temp_dir() -> std::io::Result<PathBuf> {
    let base = std::env::temp_dir();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut attempt = 0u32;
    loop {
        let dir = base.join(format!("memward-{}-{nanos}-{attempt}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

/// The command as a shell would show it; arguments with spaces or quotes are quoted.
fn display_command(command: &[OsString]) -> String {
    let words: Vec<String> = command
        .iter()
        .map(|a| {
            let s = a.to_string_lossy();
            let plain = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
            if plain {
                s.into_owned()
            } else {
                format!("'{}'", s.replace('\'', r"'\''"))
            }
        })
        .collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preload_goes_first() {
        let lib = Path::new("/l/libmemward.so");
        assert_eq!(preload_value(lib, None), "/l/libmemward.so");
        assert_eq!(preload_value(lib, Some(OsStr::new(""))), "/l/libmemward.so");
        assert_eq!(
            preload_value(lib, Some(OsStr::new(" : "))),
            "/l/libmemward.so"
        );
        assert_eq!(
            preload_value(lib, Some(OsStr::new("/a.so:/b.so"))),
            "/l/libmemward.so:/a.so:/b.so"
        );
    }

    #[test]
    fn summaries_are_told_apart_by_pid() {
        let dir = private_temp_dir().unwrap();
        std::fs::write(dir.join("summary.100"), "allocations 7\n").unwrap();
        std::fs::write(dir.join("summary.1000"), "allocations 1\n").unwrap();
        std::fs::write(dir.join("summary.5"), "allocations 2\n").unwrap();
        let (own, others) = collect_summaries(&dir, 100);
        assert_eq!(own.unwrap().allocations, Some(7));
        assert_eq!(others, 2);
        let (own, others) = collect_summaries(&dir, 7);
        assert!(own.is_none());
        assert_eq!(others, 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn temp_dirs_are_private_and_distinct() {
        use std::os::unix::fs::PermissionsExt;
        let a = private_temp_dir().unwrap();
        let b = private_temp_dir().unwrap();
        assert_ne!(a, b);
        let mode = std::fs::metadata(&a).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::remove_dir(&a).unwrap();
        std::fs::remove_dir(&b).unwrap();
    }

    #[test]
    fn commands_are_displayed_quoted() {
        let c: Vec<OsString> = ["sh", "-c", "echo 'hi' there", ""]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(display_command(&c), r"sh -c 'echo '\''hi'\'' there' ''");
    }
}
