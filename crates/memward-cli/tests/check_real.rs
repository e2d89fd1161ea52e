//! Real programs under `memward check` in its default mode (sampled guard pages, red
//! zones, quarantine, the leak check at exit) must run with zero reports and behave
//! exactly as without the checker: sqlite3 building indexes, git making and packing a
//! repository, a part of CPython's regression suite, a C++ program of ours (the standard
//! library, threads, exceptions, aligned new), and redis-server under redis-benchmark.
//!
//! Each run's output is compared with the same command run without the checker (or,
//! for the test suites, must say they passed), and its stderr must not name memward.
//! That the library really checks in these runs is shown by `checking_is_on`: the same
//! harness on a wrong program gets its report.
//!
//! Needs the release library (`cargo build --release`) and Debian's sqlite3, git, python3
//! with libpython3.11-testsuite, g++, redis-server and redis-tools (as `.ci/run` installs).

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::process::CommandExt;
mod library;
use library::library;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A directory removed when dropped (also when the test panics).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let d =
            std::env::temp_dir().join(format!("memward-check-real-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn require(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()));
    assert!(
        found,
        "`{program}` is not installed: apt-get install -y {package}"
    );
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    wall: Duration,
}

/// Runs `argv` (under `memward check` when `checked`) in `dir` with `stdin`, in its own
/// process group, killed whole after `limit`.
fn run(checked: bool, argv: &[&OsStr], dir: &Path, stdin: Option<&[u8]>, limit: Duration) -> Run {
    let mut cmd = if checked {
        let mut c = Command::new(env!("CARGO_BIN_EXE_memward"));
        c.env("MEMWARD_LIB", library()).args(["check", "--"]);
        c
    } else {
        Command::new(argv[0])
    };
    cmd.args(if checked { argv } else { &argv[1..] })
        .current_dir(dir)
        .env_remove("LD_PRELOAD")
        .env("LC_ALL", "C")
        .env("HOME", dir)
        .process_group(0)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let pgid = child.id() as i32;
    if let Some(input) = stdin {
        let mut w = child.stdin.take().unwrap();
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = w.write_all(&input);
        });
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // SAFETY: kill has no memory-safety preconditions; the group is the child's.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            panic!("{argv:?} (checked: {checked}) ran past {limit:?}");
        }
    };
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        wall: start.elapsed(),
    }
}

/// The run succeeded with no report; prints its time for the log.
fn clean(what: &str, r: &Run) {
    assert!(
        !r.stderr.contains("memward"),
        "{what} under memward check reported:\n{}",
        tail(&r.stderr, 80)
    );
    assert_eq!(r.code, Some(0), "{what} failed:\n{}", tail(&r.stderr, 40));
    eprintln!("{what}: {:.2} s under memward check", r.wall.as_secs_f64());
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn os(args: &[&str]) -> Vec<&'static OsStr> {
    args.iter()
        .map(|a| OsStr::new(Box::leak(a.to_string().into_boxed_str())))
        .collect()
}

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn checking_is_on() {
    // The harness and the library as the other tests use them, on a program with a known
    // error: if MEMWARD_CHECK were lost on the way, this would pass silently instead.
    let dir = TempDir::new("on");
    let src = dir.0.join("df.c");
    std::fs::write(
        &src,
        "#include <stdlib.h>\nint main(void){char*volatile p=malloc(7);free(p);free(p);return 0;}\n",
    )
    .unwrap();
    let exe = dir.0.join("df");
    let st = Command::new("cc")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success());
    let r = run(true, &[exe.as_os_str()], &dir.0, None, MINUTE);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("ERROR: memward: attempting double-free"),
        "{}",
        r.stderr
    );
}

#[test]
fn sqlite3_builds_indexes_without_reports() {
    require("sqlite3", "sqlite3");
    let dir = TempDir::new("sqlite");
    let sql = "PRAGMA journal_mode = WAL;
CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT, c TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30000)
INSERT INTO t SELECT i, i * 7919 % 10007, printf('%08d-%s', i * 31 % 100003, hex(i * i)),
                     replace(hex(zeroblob(i % 120)), '00', 'cd') FROM n;
CREATE INDEX ta ON t(a);
CREATE INDEX tb ON t(b, a);
CREATE UNIQUE INDEX tcid ON t(c, id);
SELECT count(*), sum(a), max(length(c)) FROM t;
SELECT a % 13, count(*), min(b) FROM t GROUP BY 1 ORDER BY 1;
UPDATE t SET a = a + 1 WHERE id % 7 = 0;
DELETE FROM t WHERE id % 11 = 0;
SELECT length(group_concat(b, ',')) FROM (SELECT b FROM t ORDER BY b);
PRAGMA integrity_check;
VACUUM;
REINDEX;
PRAGMA integrity_check;
";
    let argv = os(&["sqlite3", "db.sqlite"]);
    let plain = run(false, &argv, &dir.0, Some(sql.as_bytes()), MINUTE);
    let _ = std::fs::remove_file(dir.0.join("db.sqlite"));
    let _ = std::fs::remove_file(dir.0.join("db.sqlite-wal"));
    let _ = std::fs::remove_file(dir.0.join("db.sqlite-shm"));
    let checked = run(true, &argv, &dir.0, Some(sql.as_bytes()), 5 * MINUTE);
    clean("sqlite3", &checked);
    assert_eq!(checked.stdout, plain.stdout);
    let oks = checked.stdout.lines().filter(|l| *l == "ok").count();
    assert_eq!(oks, 2, "two integrity checks: {}", checked.stdout);
}

#[test]
fn git_makes_and_packs_a_repository_without_reports() {
    require("git", "git");
    // Every git command runs checked (`$G`), and the git processes it starts (gc's repack
    // and pack-objects) with it; the shell and coreutils do not: coreutils leak on purpose
    // at exit (`tail` leaks 96 bytes, which memcheck reports as definitely lost too) and
    // close stderr before the leak report could say so. Fixed dates and identity make the
    // hashes the same in both runs.
    let script = r#"set -e
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.org GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.org
export GIT_AUTHOR_DATE='2026-01-01T00:00:00Z' GIT_COMMITTER_DATE='2026-01-01T00:00:00Z'
export GIT_CONFIG_NOSYSTEM=1
rm -rf repo && $G init -q -b main repo && cd repo
for i in $(seq 1 120); do seq $i $((i * 40)) > f$i.txt; done
$G add . && $G commit -q -m first
for i in $(seq 1 120 | awk 'NR % 3 == 0'); do echo change >> f$i.txt; done
$G mv f1.txt moved.txt && $G rm -q f2.txt
$G commit -q -am second
$G checkout -q -b side HEAD~1 && echo side >> f5.txt && $G commit -q -am side
$G checkout -q main && $G merge -q --no-edit side
$G log --stat --format='%H %s' > log.txt && head -50 log.txt
$G diff HEAD~2 --stat > diff.txt && tail -3 diff.txt
$G blame -s f6.txt > blame.txt && head -3 blame.txt
$G gc -q
$G fsck --full --strict 2>&1
$G count-objects -v > count.txt && grep -v size count.txt
"#;
    let dir = TempDir::new("git");
    let git = |checked: bool| {
        let g = if checked {
            format!("G={} check -- git", env!("CARGO_BIN_EXE_memward"))
        } else {
            "G=git".to_string()
        };
        let lib = format!("MEMWARD_LIB={}", library().display());
        let argv = os(&["env", &g, &lib, "sh", "-c", script]);
        run(false, &argv, &dir.0, None, 5 * MINUTE)
    };
    let plain = git(false);
    assert_eq!(plain.code, Some(0), "{}", plain.stderr);
    let checked = git(true);
    clean("git", &checked);
    assert_eq!(checked.stdout, plain.stdout);
    assert!(checked.stdout.contains("in-pack: "), "{}", checked.stdout);
}

#[test]
fn cpython_regression_tests_pass_without_reports() {
    // Debian's Python, whose test package libpython3.11-testsuite provides (another
    // python3 on PATH may lack it), or $MEMWARD_TEST_PYTHON.
    let python = std::env::var("MEMWARD_TEST_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| {
            if Path::new("/usr/bin/python3").is_file() {
                "/usr/bin/python3".into()
            } else {
                require("python3", "python3");
                "python3".into()
            }
        });
    let dir = TempDir::new("python");
    // About 20 s without the checker: JSON, regular expressions, dicts, sets, struct,
    // zlib (a C library allocating through malloc) and queues between threads. Not
    // test_thread: a child it forks leaks 64 bytes in 2 blocks at exit, a real leak that
    // memward and memcheck both report (same allocation stack).
    let argv = os(&[
        &python,
        "-m",
        "test",
        "-q",
        "test_json",
        "test_re",
        "test_dict",
        "test_set",
        "test_struct",
        "test_zlib",
        "test_queue",
    ]);
    let checked = run(true, &argv, &dir.0, None, 8 * MINUTE);
    clean("python3 -m test", &checked);
    assert!(
        checked.stdout.contains("Tests result: SUCCESS"),
        "{}",
        tail(&checked.stdout, 30)
    );
}

#[test]
fn cxx_workload_runs_without_reports() {
    require("g++", "g++");
    let dir = TempDir::new("cxx");
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../memward-preload/tests/programs/cxx_workload.cpp");
    let exe = dir.0.join("cxx_workload");
    let st = Command::new("g++")
        .args(["-O2", "-g", "-std=c++17", "-pthread", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success(), "compiling {}", src.display());
    let plain = run(false, &[exe.as_os_str()], &dir.0, None, MINUTE);
    assert_eq!(plain.code, Some(0), "{}", plain.stderr);
    let checked = run(true, &[exe.as_os_str()], &dir.0, None, 5 * MINUTE);
    clean("cxx_workload", &checked);
    assert_eq!(checked.stdout, plain.stdout);
}

#[test]
fn redis_server_serves_a_benchmark_without_reports() {
    require("redis-server", "redis-server");
    require("redis-benchmark", "redis-tools");
    let dir = TempDir::new("redis");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    // The server runs checked; the clients run plain. SHUTDOWN ends it through exit(),
    // so the leak check at exit runs too.
    let script = format!(
        r#"set -e
MEMWARD_LIB='{lib}' '{memward}' check -- redis-server --port {port} --bind 127.0.0.1 \
    --save '' --appendonly no --io-threads 2 --io-threads-do-reads yes --dir . > server.log &
server=$!
for i in $(seq 1 200); do redis-cli -p {port} ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
redis-benchmark -p {port} -q -n 3000 -P 16 -c 10 -d 100 -r 1000 -t set,get,incr,lpush,rpop,sadd,hset,zadd,lrange_100 > bench.log
redis-cli -p {port} set key value > /dev/null
redis-cli -p {port} rpush list a b c > /dev/null
redis-cli -p {port} get key
redis-cli -p {port} lrange list 0 -1
redis-cli -p {port} shutdown nosave > /dev/null 2>&1 || true
wait $server
"#,
        lib = library().display(),
        memward = env!("CARGO_BIN_EXE_memward"),
    );
    let argv = os(&["sh", "-c", &script]);
    let r = run(false, &argv, &dir.0, None, 5 * MINUTE);
    let log = std::fs::read_to_string(dir.0.join("server.log")).unwrap_or_default();
    assert!(
        !r.stderr.contains("memward"),
        "redis-server under memward check reported:\n{}",
        tail(&r.stderr, 80)
    );
    assert_eq!(
        r.code,
        Some(0),
        "{}\n--- server log ---\n{}",
        r.stderr,
        tail(&log, 30)
    );
    assert_eq!(r.stdout, "value\na\nb\nc\n");
    let bench = std::fs::read_to_string(dir.0.join("bench.log")).unwrap();
    assert!(
        bench.contains("SET") && bench.contains("LRANGE_100"),
        "{bench}"
    );
}
