//! Shared harness for the real-program tests: finds `libmemward.so` and the programs, runs
//! a command once on glibc's malloc and once with the library preloaded, and checks that
//! the preloaded run really used memward.
//!
//! Identical outputs alone would prove nothing if the library silently failed to load
//! (wrong path, a setuid or static program), so every memward run sets
//! `MEMWARD_SUMMARY_FILE` and [`Session::expect_summary`] requires the file the library
//! writes at exit, with a non-zero allocation count. Runs under memward also fail if the
//! program's stderr holds a `memward:` diagnostic (a foreign or invalid pointer).
//!
//! Every run has a time limit; on expiry the whole process group is killed and the test
//! fails naming the command, so a deadlock (say, an allocator lock held across `fork`)
//! fails the test instead of hanging CI.

// Each test binary includes this module and uses only part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The workspace root (this file is in `crates/memward-preload/tests/common`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `$MEMWARD_LIB`, or the release build in this build's target directory (wherever
/// `CARGO_TARGET_DIR` or `build.target-dir` put it). Panics with the fix if missing:
/// these tests exercise the optimised library that users preload, so they do not build it
/// themselves.
pub fn library() -> PathBuf {
    if let Some(p) = std::env::var_os("MEMWARD_LIB").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "MEMWARD_LIB={} does not exist; unset it or point it at libmemward.so",
            p.display()
        );
        return p.canonicalize().unwrap();
    }
    let candidates = release_candidates("libmemward.so");
    match candidates.iter().find(|p| p.is_file()) {
        Some(p) => p.canonicalize().unwrap(),
        None => panic!(
            "libmemward.so is missing (looked for {candidates:?}): run `cargo build --release` \
             with the same CARGO_TARGET_DIR first (or set MEMWARD_LIB)"
        ),
    }
}

/// Where a release build of `file` can be: the `release` directory beside this test's
/// profile directory (the test runs from `TARGET/debug/deps/`, or `TARGET/TRIPLE/debug/deps/`
/// when cross-built), then `$CARGO_TARGET_DIR/release`, then the workspace's `target/release`.
pub fn release_candidates(file: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        dirs.extend(exe.ancestors().skip(1).take(4).map(|d| d.join("release")));
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR").filter(|t| !t.is_empty()) {
        dirs.push(workspace_root().join(t).join("release"));
    }
    dirs.push(workspace_root().join("target/release"));
    dirs.into_iter().map(|d| d.join(file)).collect()
}

/// The path of `program` on PATH (or `program` itself if it is a path). Panics naming the
/// Debian package to install: a missing program must fail the test, not skip it, so CI
/// cannot pass without running it.
pub fn require(program: &str, apt_package: &str) -> PathBuf {
    which(program).unwrap_or_else(|| {
        panic!(
            "`{program}` is not installed; install the Debian package `{apt_package}` \
             (apt-get install -y {apt_package})"
        )
    })
}

/// The path of `program` on PATH (or `program` itself if it is a path), if executable.
pub fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program)).filter(|p| is_executable(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A directory removed (with its contents) when dropped, also when the test panics.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "memward-test-{label}-{}-{nanos}-{n}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Which malloc a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocator {
    /// The C library's own malloc (no preload).
    Glibc,
    /// `libmemward.so` preloaded.
    Memward,
}

impl Allocator {
    pub fn name(self) -> &'static str {
        match self {
            Allocator::Glibc => "glibc",
            Allocator::Memward => "memward",
        }
    }
}

/// What one command did.
#[derive(Debug)]
pub struct Output {
    pub what: String,
    pub pid: u32,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub wall: Duration,
}

impl Output {
    /// Panics unless the command exited with status 0, showing the end of its output.
    pub fn expect_success(&self, allocator: Allocator) -> &Self {
        if !self.status.success() {
            panic!(
                "[{}] `{}` failed under {}: {}\n--- stdout (end) ---\n{}\n--- stderr (end) ---\n{}",
                allocator.name(),
                self.what,
                allocator.name(),
                describe(self.status),
                tail(&self.stdout, 60),
                tail(&self.stderr, 60)
            );
        }
        self
    }
}

/// `exit status 3` / `killed by signal 11 (SIGSEGV)`.
pub fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => {
            let name = match s {
                4 => " (SIGILL)",
                6 => " (SIGABRT)",
                7 => " (SIGBUS)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                14 => " (SIGALRM)",
                15 => " (SIGTERM)",
                _ => "",
            };
            format!("killed by signal {s}{name}")
        }
        _ => format!("{status:?}"),
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs commands under one allocator, accumulating their wall time.
pub struct Session {
    pub allocator: Allocator,
    lib: PathBuf,
    /// Where the library writes `summary.<pid>` at each preloaded process's exit.
    summaries: TempDir,
    /// Wall time of all commands run so far.
    pub wall: Duration,
}

impl Session {
    pub fn new(allocator: Allocator) -> Session {
        Session {
            allocator,
            lib: library(),
            summaries: TempDir::new("summaries"),
            wall: Duration::ZERO,
        }
    }

    /// A command for `program` with this session's environment: for glibc any inherited
    /// preload is removed, so the baseline is the real glibc; for memward the library is
    /// preloaded and reports to the session's summary directory. Stdin is /dev/null unless
    /// the caller sets it.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.stdin(Stdio::null());
        for var in ["LD_PRELOAD", "MEMWARD_SUMMARY_FILE", "MEMWARD_STATS"] {
            cmd.env_remove(var);
        }
        if self.allocator == Allocator::Memward {
            cmd.env("LD_PRELOAD", &self.lib);
            cmd.env(
                "MEMWARD_SUMMARY_FILE",
                self.summaries.path().join("summary"),
            );
        }
        cmd
    }

    /// Runs `cmd` to completion (killing its process group after `limit`), capturing
    /// stdout and stderr. Does not judge the exit status; see [`Output::expect_success`].
    pub fn run(&mut self, what: &str, cmd: &mut Command, limit: Duration) -> Output {
        use std::os::unix::process::CommandExt;
        // Its own process group, so that on a timeout its descendants die with it and the
        // output pipes close.
        cmd.process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{what}`: {e}"));
        let pid = child.id();
        let out = reader(child.stdout.take().unwrap());
        let err = reader(child.stderr.take().unwrap());
        let status = wait_with_limit(&mut child, limit);
        if status.is_none() {
            kill_group(pid);
            let _ = child.wait();
        }
        let stdout = out.join().unwrap();
        let stderr = err.join().unwrap();
        let Some(status) = status else {
            panic!(
                "[{}] `{what}` did not finish within {limit:?} (deadlock?); killed.\n\
                 --- stdout (end) ---\n{}\n--- stderr (end) ---\n{}",
                self.allocator.name(),
                tail(&stdout, 40),
                tail(&stderr, 40)
            )
        };
        let wall = start.elapsed();
        self.wall += wall;
        if self.allocator == Allocator::Memward {
            let diagnostics: Vec<&str> = stderr
                .lines()
                .filter(|l| l.starts_with("memward:"))
                .collect();
            assert!(
                diagnostics.is_empty(),
                "[memward] `{what}` printed allocator diagnostics:\n{}",
                diagnostics.join("\n")
            );
        }
        Output {
            what: what.to_string(),
            pid,
            status,
            stdout,
            stderr,
            wall,
        }
    }

    /// Starts `cmd` in the background (a server); the caller owns the child.
    pub fn spawn(&self, what: &str, cmd: &mut Command) -> Child {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{what}`: {e}"))
    }

    /// For a memward session: the statistics the library wrote when process `pid` exited,
    /// which must exist and count allocations, proving the process ran on memward. For a
    /// glibc session: checks that no summary was written (nothing was preloaded).
    pub fn expect_summary(&self, pid: u32, what: &str) -> BTreeMap<String, u64> {
        let path = self.summaries.path().join(format!("summary.{pid}"));
        match self.allocator {
            Allocator::Glibc => {
                assert!(
                    !path.exists(),
                    "glibc run of `{what}` wrote a memward summary"
                );
                BTreeMap::new()
            }
            Allocator::Memward => {
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                    panic!(
                        "`{what}` (pid {pid}) left no memward summary ({e}): libmemward.so \
                         was not loaded, or the process did not exit normally"
                    )
                });
                let map: BTreeMap<String, u64> = text
                    .lines()
                    .filter_map(|l| {
                        let (k, v) = l.split_once(' ')?;
                        Some((k.to_string(), v.trim().parse().ok()?))
                    })
                    .collect();
                let allocations = map.get("allocations").copied().unwrap_or(0);
                assert!(
                    allocations > 0,
                    "`{what}` ran under memward but its summary counts no allocations:\n{text}"
                );
                map
            }
        }
    }

    /// How many preloaded processes have written a summary so far (the commands and every
    /// descendant that exited normally).
    pub fn summary_count(&self) -> usize {
        std::fs::read_dir(self.summaries.path())
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

fn reader(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Waits for `child` up to `limit`; `None` if it is still running.
pub fn wait_with_limit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGKILLs process group `pgid` (through the shell's `kill`, which takes a group).
pub fn kill_group(pgid: u32) {
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -KILL -- -{pgid} 2>/dev/null"))
        .status();
}

/// Panics unless the two runs' texts are equal, showing where they first differ.
pub fn assert_same(what: &str, glibc: &str, memward: &str) {
    if glibc == memward {
        return;
    }
    let a: Vec<&str> = glibc.lines().collect();
    let b: Vec<&str> = memward.lines().collect();
    let first = a
        .iter()
        .zip(&b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let from = first.saturating_sub(3);
    let show = |v: &[&str]| -> String {
        v.iter()
            .enumerate()
            .skip(from)
            .take(60)
            .map(|(i, l)| format!("{:>6}{} {l}", i + 1, if i == first { '>' } else { ' ' }))
            .collect::<Vec<_>>()
            .join("\n")
    };
    panic!(
        "{what}: output under memward differs from glibc ({} vs {} lines), first at line {}\n\
         --- glibc ---\n{}\n--- memward ---\n{}",
        a.len(),
        b.len(),
        first + 1,
        show(&a),
        show(&b)
    );
}

/// Prints the run times of both sessions (shown by nextest and by `cargo test -- --nocapture`).
pub fn report_times(what: &str, glibc: &Session, memward: &Session) {
    eprintln!(
        "[{what}] wall time: glibc {:.2} s, memward {:.2} s ({} memward process summaries)",
        glibc.wall.as_secs_f64(),
        memward.wall.as_secs_f64(),
        memward.summary_count()
    );
}

/// Compiles C or C++ `sources` with `compiler` into `out` (on glibc: building is not what
/// is tested). `flags` come before the sources, `libs` after.
pub fn compile(compiler: &str, sources: &[PathBuf], flags: &[&str], libs: &[&str], out: &Path) {
    let mut cmd = Command::new(compiler);
    cmd.env_remove("LD_PRELOAD")
        .args(flags)
        .args(sources)
        .arg("-o")
        .arg(out)
        .args(libs);
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(
        o.status.success(),
        "{compiler} failed to compile {sources:?}:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The test programs shipped in `tests/programs`.
pub fn program_source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/programs")
        .join(name)
}

/// Runs `exe` under glibc, then under memward: each run must exit 0 (the failure message
/// shows all of its output), and the memward run must write its summary; `prepare` adjusts
/// each command and `check` inspects each run. Then both stdouts must match and the times
/// are reported. Shared by the tests of our own C and C++ programs.
pub fn run_under_both(
    what: &str,
    exe: &Path,
    limit: Duration,
    prepare: impl Fn(Allocator, &mut Command),
    check: impl Fn(Allocator, &Session, &Output),
) {
    let mut outputs = Vec::new();
    let mut sessions = Vec::new();
    for allocator in [Allocator::Glibc, Allocator::Memward] {
        let mut s = Session::new(allocator);
        let mut cmd = s.command(exe);
        prepare(allocator, &mut cmd);
        let out = s.run(what, &mut cmd, limit);
        assert!(
            out.status.success(),
            "{what} failed under {} ({}):\n{}\n--- stderr ---\n{}",
            allocator.name(),
            describe(out.status),
            out.stdout,
            out.stderr
        );
        s.expect_summary(out.pid, what);
        check(allocator, &s, &out);
        outputs.push(out.stdout);
        sessions.push(s);
    }
    assert_same(what, &outputs[0], &outputs[1]);
    report_times(what, &sessions[0], &sessions[1]);
}
