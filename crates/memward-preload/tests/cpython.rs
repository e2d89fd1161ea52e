//! CPython's own regression suite, in part: about forty modules of `python3 -m test`
//! (json, re, threading, pickle, decimal, ctypes, email, xml, gc, mmap, the asyncio
//! event loop, queues, streams and threads, ...), then the `multiprocessing` tests that
//! use the fork start method (pools, processes, queues, barriers, shared ctypes, managers),
//! then `programs/py_sqlite3.py` for the sqlite3 module (Debian's test package omits
//! CPython's `test_sqlite3`; it is added to the run when the Python in use has it).
//!
//! Why: CPython sends every large object and much of its C extension state through malloc
//! (small objects go through its own pymalloc, which gets its arenas from mmap), runs
//! threads, forks children that keep allocating, and loads C extensions (ctypes with
//! libffi, _decimal with libmpdec, pyexpat, zlib, sqlite) that allocate on their own.
//! The suite checks results in depth, so corruption shows as failures, not just crashes.
//!
//! Each run's outcome is compared between glibc and memward twice over: regrtest's output
//! with timings removed (which lists every module's result), and the JUnit XML report's
//! per-test-case results. Both runs must end with "Tests result: SUCCESS".
//!
//! The Python is `$MEMWARD_TEST_PYTHON`, else `/usr/bin/python3`, else `python3` on PATH:
//! the first one whose `test` package holds the regression tests (on Debian, package
//! `libpython3.11-testsuite`).

mod common;

use common::{assert_same, program_source, report_times, which, Allocator, Session, TempDir};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Regression-test modules: fast (a few seconds at most each) and deterministic, chosen to
/// cover threads, C extensions and allocation-heavy code.
const MODULES: &[&str] = &[
    "test_json",
    "test_re",
    "test_threading",
    "test_thread",
    "test_dict",
    "test_list",
    "test_set",
    "test_bytes",
    "test_unicode",
    "test_collections",
    "test_itertools",
    "test_functools",
    "test_pickle",
    "test_decimal",
    "test_fractions",
    "test_long",
    "test_struct",
    "test_array",
    "test_memoryview",
    "test_heapq",
    "test_deque",
    "test_zlib",
    "test_hashlib",
    "test_csv",
    // Not test_xml_etree: it leaves ElementTree half-swapped between its C and Python
    // versions, and regrtest's JUnit writer (which uses ElementTree) then fails.
    "test_pyexpat",
    "test_minidom",
    "test_email",
    "test_datetime",
    "test_gc",
    "test_mmap",
    "test_ctypes",
    "test_ast",
    "test_enum",
    "test_asyncio.test_queues",
    "test_asyncio.test_locks",
    "test_asyncio.test_futures",
    "test_asyncio.test_streams",
    "test_asyncio.test_threads",
    "test_asyncio.test_pep492",
    "test_asyncio.test_sock_lowlevel",
];

/// Test classes of `test_multiprocessing_fork` (the whole module takes minutes): processes,
/// pools and managers started by fork from a threaded parent.
const MULTIPROCESSING_CLASSES: &[&str] = &[
    "WithProcessesTestProcess",
    "WithProcessesTestPool",
    "WithProcessesTestPoolWorkerLifetime",
    "WithProcessesTestQueue",
    "WithProcessesTestConnection",
    "WithProcessesTestBarrier",
    "WithProcessesTestCondition",
    "WithProcessesTestLock",
    "WithProcessesTestHeap",
    "WithProcessesTestArray",
    "WithProcessesTestValue",
    "WithProcessesTestSharedCTypes",
    "WithManagerTestQueue",
    "WithManagerTestContainers",
];

fn imports(python: &Path, module: &str) -> bool {
    Command::new(python)
        .args(["-c", &format!("import {module}")])
        .env_remove("LD_PRELOAD")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The Python to test with (see the module docs). Panics naming the package to install.
fn python() -> PathBuf {
    let suite = "test.libregrtest, test.test_json, test.test_multiprocessing_fork";
    if let Some(p) = std::env::var_os("MEMWARD_TEST_PYTHON") {
        let p = PathBuf::from(p);
        assert!(
            imports(&p, suite),
            "MEMWARD_TEST_PYTHON={} has no regression test suite (test package)",
            p.display()
        );
        return p;
    }
    let mut candidates = vec![PathBuf::from("/usr/bin/python3")];
    candidates.extend(which("python3"));
    for p in &candidates {
        if imports(p, suite) {
            return p.clone();
        }
    }
    let version = candidates
        .iter()
        .find_map(|p| {
            let o = Command::new(p)
                .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
                .output()
                .ok()?;
            o.status
                .success()
                .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
        })
        .unwrap_or_else(|| "3.11".to_string());
    panic!(
        "no Python 3 with CPython's regression test suite found (tried {candidates:?}); \
         install the Debian packages `python3` and `libpython{version}-testsuite` \
         (apt-get install -y python3 libpython{version}-testsuite)"
    );
}

/// regrtest's output without what varies from run to run: the elapsed-time and load
/// prefix of progress lines, the "-- previous test passed in N sec" notes, durations,
/// blank lines, and what a module that altered the execution environment adds (its count
/// in the progress lines' third field, the "N tests OK." count, the "altered the
/// execution environment" list). Such a module passed all its test cases (the JUnit
/// comparison holds them) but left, say, a thread running a little past its end, which
/// happens under load with any allocator; [`env_changed`] lists them for the log.
fn normalise(stdout: &str) -> String {
    let mut out = String::new();
    let mut in_env_list = false;
    for line in stdout.lines() {
        if in_env_list && line.starts_with("    ") {
            continue;
        }
        in_env_list = line.ends_with("altered the execution environment:");
        if in_env_list {
            continue;
        }
        let mut l = line;
        // "0:01:02 load avg: 1.23 [ 3/40] test_x": drop the clock and the load average.
        if let Some((clock, rest)) = l.split_once(' ') {
            if clock.len() >= 7 && clock.chars().all(|c| c.is_ascii_digit() || c == ':') {
                l = rest;
                if let Some(rest) = l.strip_prefix("load avg: ") {
                    l = rest.split_once(' ').map_or("", |(_, r)| r);
                }
            }
        }
        if let Some((before, _)) = l.split_once(" -- ") {
            l = before;
        }
        let words: Vec<&str> = l.split_whitespace().collect();
        let timing = l.starts_with("Total duration")
            || (words.len() >= 4 && words[1] == "passed" && words[2] == "in");
        if timing || words.is_empty() {
            continue;
        }
        if l.ends_with(" tests OK.") {
            out.push_str("tests OK.\n");
            continue;
        }
        // "[ 3/40/1] test_x": the third field counts failed and environment-altering
        // modules; failures are listed at the end.
        if let Some(rest) = l.strip_prefix('[') {
            if let Some((counter, name)) = rest.split_once(']') {
                let mut fields = counter.split('/');
                if let (Some(i), Some(n)) = (fields.next(), fields.next()) {
                    out.push_str(&format!("[{i}/{n}]{name}\n"));
                    continue;
                }
            }
        }
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// The modules regrtest lists as having altered the execution environment.
fn env_changed(stdout: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_list = false;
    for line in stdout.lines() {
        if in_list && line.starts_with("    ") {
            names.extend(line.split_whitespace().map(str::to_string));
            continue;
        }
        in_list = line.ends_with("altered the execution environment:");
    }
    names
}

/// One line per test case of a JUnit XML report: name, status, result and outcome
/// (passed / skipped / failure / error); durations and messages left out.
fn junit_outcomes(xml: &str) -> String {
    let attr = |tag: &str, name: &str| -> String {
        let key = format!(" {name}=\"");
        tag.find(&key)
            .map(|i| {
                let rest = &tag[i + key.len()..];
                rest[..rest.find('"').unwrap_or(rest.len())].to_string()
            })
            .unwrap_or_default()
    };
    let mut out = String::new();
    for chunk in xml.split("<testcase ").skip(1) {
        let tag_end = chunk.find('>').unwrap_or(chunk.len());
        let tag = format!(" {}", &chunk[..tag_end]);
        let body = if chunk[..tag_end].ends_with('/') {
            ""
        } else {
            &chunk[tag_end..chunk.find("</testcase>").unwrap_or(chunk.len())]
        };
        let outcome = if body.contains("<error") {
            "error"
        } else if body.contains("<failure") {
            "failure"
        } else if body.contains("<skipped") {
            "skipped"
        } else {
            "passed"
        };
        out.push_str(&format!(
            "{} {} {} {outcome}\n",
            attr(&tag, "name"),
            attr(&tag, "status"),
            attr(&tag, "result")
        ));
    }
    out
}

struct RunResult {
    /// Normalised regrtest output and the JUnit outcomes, per regrtest invocation; then
    /// the sqlite3 script's output.
    texts: Vec<(String, String)>,
}

fn run(allocator: Allocator, py: &Path, with_sqlite_tests: bool) -> (RunResult, Session) {
    let mut s = Session::new(allocator);
    let work = TempDir::new(&format!("cpython-{}", allocator.name()));
    let mut texts = Vec::new();

    let mut modules: Vec<&str> = MODULES.to_vec();
    if with_sqlite_tests {
        modules.push("test_sqlite3");
    }
    let mp_args: Vec<String> = std::iter::once("test_multiprocessing_fork".to_string())
        .chain(
            MULTIPROCESSING_CLASSES
                .iter()
                .map(|c| format!("--match={c}")),
        )
        .collect();
    let invocations: [(&str, Vec<String>); 2] = [
        ("regrtest", modules.iter().map(|m| m.to_string()).collect()),
        ("regrtest multiprocessing", mp_args),
    ];
    for (i, (what, args)) in invocations.iter().enumerate() {
        let xml = work.path().join(format!("junit{i}.xml"));
        let mut cmd = python_command(&s, py, work.path());
        // --timeout: a hung test dumps its traceback and fails instead of waiting for the
        // harness's limit.
        cmd.args(["-m", "test", "--timeout=300", "--junit-xml"])
            .arg(&xml)
            .args(args);
        let out = s.run(what, &mut cmd, Duration::from_secs(600));
        out.expect_success(allocator);
        s.expect_summary(out.pid, what);
        assert!(
            out.stdout.contains("Tests result: SUCCESS"),
            "{what} under {} did not succeed:\n{}",
            allocator.name(),
            common::tail(&out.stdout, 40)
        );
        let report = std::fs::read_to_string(&xml).expect("regrtest wrote no JUnit report");
        let outcomes = junit_outcomes(&report);
        let cases = outcomes.lines().count();
        assert!(
            cases >= 100,
            "{what}: only {cases} test cases in the JUnit report"
        );
        let passed = outcomes.lines().filter(|l| l.ends_with(" passed")).count();
        eprintln!(
            "[cpython] {what} under {}: {cases} test cases, {passed} passed, {:.1} s",
            allocator.name(),
            out.wall.as_secs_f64()
        );
        let altered = env_changed(&out.stdout);
        if !altered.is_empty() {
            eprintln!(
                "[cpython] {what} under {}: altered the execution environment (not compared): {}",
                allocator.name(),
                altered.join(" ")
            );
        }
        texts.push((normalise(&out.stdout), outcomes));
    }

    let mut cmd = python_command(&s, py, work.path());
    cmd.arg(program_source("py_sqlite3.py"));
    let out = s.run("py_sqlite3.py", &mut cmd, Duration::from_secs(120));
    out.expect_success(allocator);
    s.expect_summary(out.pid, "py_sqlite3.py");
    texts.push((out.stdout, String::new()));
    (RunResult { texts }, s)
}

/// `python` in `dir` with an environment that makes runs comparable: a fixed hash seed
/// (set and dict orders), C-like locale and UTC, no user site or startup file, and
/// temporary files kept inside `dir`.
fn python_command(s: &Session, py: &Path, dir: &Path) -> Command {
    let mut cmd = s.command(py);
    for var in [
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "PYTHONWARNINGS",
        "PYTHONDEVMODE",
    ] {
        cmd.env_remove(var);
    }
    cmd.current_dir(dir)
        .env("PYTHONHASHSEED", "0")
        .env("PYTHONNOUSERSITE", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("LC_ALL", "C.UTF-8")
        .env("TZ", "UTC")
        .env("TMPDIR", dir);
    cmd
}

#[test]
fn cpython_regression_suite_subset() {
    let py = python();
    let with_sqlite_tests = imports(&py, "test.test_sqlite3");
    eprintln!(
        "[cpython] using {}{}",
        py.display(),
        if with_sqlite_tests {
            " (with test_sqlite3)"
        } else {
            " (its test package has no test_sqlite3; py_sqlite3.py covers the module)"
        }
    );
    let (glibc, gs) = run(Allocator::Glibc, &py, with_sqlite_tests);
    let (memward, ms) = run(Allocator::Memward, &py, with_sqlite_tests);
    for (i, (g, m)) in glibc.texts.iter().zip(&memward.texts).enumerate() {
        assert_same(&format!("cpython output #{i}"), &g.0, &m.0);
        assert_same(&format!("cpython test-case results #{i}"), &g.1, &m.1);
    }
    report_times("cpython", &gs, &ms);
}

#[test]
fn normalise_drops_what_varies() {
    let raw = "0:00:00 load avg: 1.40 Run tests sequentially\n\
               0:00:01 load avg: 0.47 [ 2/40] test_re -- test_json passed in 31.2 sec\n\
               0:01:52 [48/50/2] test_io\n\
               test_io passed in 36.8 sec\n\
               \n\
               39 tests OK.\n\
               \n\
               1 test altered the execution environment:\n\
               \x20   test_functools\n\
               \n\
               Total duration: 1 min 2 sec\n\
               Tests result: SUCCESS\n";
    assert_eq!(
        normalise(raw),
        "Run tests sequentially\n[ 2/40] test_re\n[48/50] test_io\ntests OK.\nTests result: SUCCESS\n"
    );
    assert_eq!(env_changed(raw), ["test_functools"]);
}

#[test]
fn junit_outcomes_reads_each_case() {
    let xml = r#"<testsuites><testsuite start="x" tests="3"><testcase name="a.b" status="run" result="completed" time="0.1" /><testcase name="a.c" status="run" result="completed" time="0.2"><skipped>no</skipped></testcase><testcase name="a.d" status="run" result="completed" time="0.3"><failure message="x">tb</failure></testcase></testsuite></testsuites>"#;
    assert_eq!(
        junit_outcomes(xml),
        "a.b run completed passed\na.c run completed skipped\na.d run completed failure\n"
    );
}
