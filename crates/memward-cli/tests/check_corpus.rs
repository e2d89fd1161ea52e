//! The checker corpus under `memward check`: every program of `tests/check/errors` must
//! produce the one report its header expects (the error kind, the key phrases, symbolised
//! frames, the exit status), and every program of `tests/check/clean` must run silently and
//! exit with status 0. The format of the expectations is in `tests/check/README.md`;
//! `bench/check/corpus.py` reads the same headers for the memcheck/ASan comparison.
//!
//! Also the options that change what a run does: `--keep-going`, `--log-file`,
//! `--no-leaks`, `--exit-code` (in the corpus: `free_global.c`).
//!
//! Needs the release library (`cargo build --release`, or `MEMWARD_LIB`) and a C and C++
//! compiler (`cc`, `c++`).

mod library;
use library::library;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check")
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "memward-check-corpus-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// One corpus program and what its header expects.
#[derive(Debug, Default)]
struct Program {
    path: PathBuf,
    name: String,
    options: Vec<String>,
    build_options: Vec<String>,
    error: Option<String>,
    summary: Option<String>,
    phrases: Vec<String>,
    frames: Vec<String>,
    exit: i32,
    no_report: bool,
    stdout: Option<String>,
}

impl Program {
    fn load(path: &Path) -> Program {
        let clean = path.parent().unwrap().ends_with("clean");
        let mut p = Program {
            path: path.to_path_buf(),
            name: path.file_stem().unwrap().to_string_lossy().into_owned(),
            no_report: clean,
            ..Program::default()
        };
        let mut exit = None;
        let text = std::fs::read_to_string(path).unwrap();
        for line in text.lines() {
            let Some(d) = line.strip_prefix("//") else {
                break;
            };
            let d = d.trim();
            let (key, value) = d.split_once(':').unwrap_or((d, ""));
            let value = value.trim().to_string();
            match key {
                "check-options" => p.options = value.split_whitespace().map(String::from).collect(),
                "build-options" => {
                    p.build_options = value.split_whitespace().map(String::from).collect()
                }
                "expect-error" => p.error = Some(value),
                "expect-summary" => p.summary = Some(value),
                "expect" => p.phrases.push(value),
                "expect-frame" => p.frames.push(value),
                "expect-exit" => exit = Some(value.parse().expect("expect-exit: N")),
                "expect-stdout-memward" => p.stdout = Some(value),
                "expect-no-report" => p.no_report = true,
                _ => {}
            }
        }
        p.exit = exit.unwrap_or(if p.no_report { 0 } else { 1 });
        assert!(
            p.no_report || p.error.is_some(),
            "{}: an error program needs `expect-error:`",
            path.display()
        );
        p
    }

    /// Compiles the program into `dir` as the comparison script does (-O0 -g, then the
    /// program's own build options).
    fn build(&self, dir: &Path) -> PathBuf {
        let exe = dir.join(&self.name);
        let cxx = self.path.extension().is_some_and(|e| e == "cpp");
        let mut cmd = Command::new(if cxx { "c++" } else { "cc" });
        if cxx {
            cmd.arg("-std=c++17");
        }
        let o = cmd
            .args(["-O0", "-g", "-pthread", "-w"])
            .args(&self.build_options)
            .arg("-o")
            .arg(&exe)
            .arg(&self.path)
            .output()
            .expect("a C and C++ compiler (cc, c++: Debian's build-essential)");
        assert!(
            o.status.success(),
            "compiling {}: {}",
            self.path.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        exe
    }

    /// What is wrong with a run's outcome; empty when every expectation holds.
    fn judge(&self, run: &Run) -> Vec<String> {
        let mut wrong = Vec::new();
        if run.code != Some(self.exit) {
            wrong.push(format!(
                "exit status {:?} (signal {:?}), expected {}",
                run.code, run.signal, self.exit
            ));
        }
        let errors = error_lines(&run.stderr);
        if let Some(want) = &self.stdout {
            if !run.stdout.contains(want.as_str()) {
                wrong.push(format!("stdout lacks `{want}`: {:?}", run.stdout));
            }
        }
        if self.no_report {
            if run.stderr.contains("memward") {
                wrong.push("stderr names memward (a report where none is due)".into());
            }
            return wrong;
        }
        match errors.as_slice() {
            [] => {
                wrong.push("no `==PID==ERROR: memward:` line".into());
                return wrong;
            }
            [one] => {
                let want = self.error.as_deref().unwrap_or_default();
                if !one.starts_with(want) {
                    wrong.push(format!("ERROR line `{one}`, expected `{want}...`"));
                }
            }
            more => wrong.push(format!(
                "{} reports, expected one (it should stop at the first): {more:?}",
                more.len()
            )),
        }
        if let Some(want) = &self.summary {
            let summary = run
                .stderr
                .lines()
                .find_map(|l| l.strip_prefix("SUMMARY: memward: "));
            if !summary.is_some_and(|s| s.starts_with(want.as_str())) {
                wrong.push(format!("SUMMARY `{summary:?}`, expected `{want}...`"));
            }
        }
        for phrase in &self.phrases {
            if !run.stderr.contains(phrase.as_str()) {
                wrong.push(format!("missing `{phrase}`"));
            }
        }
        for f in &self.frames {
            if !has_frame(&run.stderr, f) {
                wrong.push(format!("no stack frame `in {f}`"));
            }
        }
        wrong
    }
}

/// The text after `ERROR: memward: ` of each `==PID==ERROR: memward: ...` line.
fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("==")?;
            let (pid, rest) = rest.split_once("==")?;
            if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            rest.strip_prefix("ERROR: memward: ")
        })
        .collect()
}

/// Is there a frame line `#N 0xADDR in FUNC` (FUNC followed by a space, `(` or the end)?
fn has_frame(stderr: &str, func: &str) -> bool {
    stderr.lines().any(|l| {
        let Some(rest) = l.trim_start().strip_prefix('#') else {
            return false;
        };
        let Some((n, rest)) = rest.split_once(' ') else {
            return false;
        };
        let Some(rest) = rest.strip_prefix("0x") else {
            return false;
        };
        let Some((_, rest)) = rest.split_once(" in ") else {
            return false;
        };
        n.bytes().all(|b| b.is_ascii_digit())
            && rest
                .strip_prefix(func)
                .is_some_and(|after| after.is_empty() || after.starts_with([' ', '(']))
    })
}

fn programs(group: &str) -> Vec<Program> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(corpus_dir().join(group))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "c" || e == "cpp"))
        .collect();
    paths.sort();
    paths.iter().map(|p| Program::load(p)).collect()
}

/// A finished command.
struct Run {
    pid: u32,
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `memward check OPTIONS -- EXE`, killed after a minute (a hang must fail, not stall CI).
fn check(exe: &Path, options: &[String]) -> Run {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let mut child = Command::new(env!("CARGO_BIN_EXE_memward"))
        .env("MEMWARD_LIB", library())
        .env_remove("LD_PRELOAD")
        .arg("check")
        .args(options)
        .arg("--")
        .arg(exe)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "{} under memward check ran for over a minute",
                exe.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        pid,
        code: status.code(),
        signal: status.signal(),
        stdout: String::from_utf8_lossy(&out_reader.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned(),
    }
}

/// Builds and checks every program of `group` on two threads; panics listing every
/// program that missed an expectation, with its stderr.
fn run_group(group: &str) {
    let progs = programs(group);
    let dir = temp_dir(group);
    let next = Mutex::new(0usize);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap();
                    *n += 1;
                    *n - 1
                };
                let Some(p) = progs.get(i) else { break };
                let exe = p.build(&dir);
                let run = check(&exe, &p.options);
                let wrong = p.judge(&run);
                if !wrong.is_empty() {
                    failures.lock().unwrap().push(format!(
                        "--- {group}/{} ({}):\n  {}\n  stderr:\n{}",
                        p.name,
                        p.options.join(" "),
                        wrong.join("\n  "),
                        run.stderr
                    ));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "{} of {} programs in {group}/ missed their expectations:\n{}",
        failures.len(),
        progs.len(),
        failures.join("\n")
    );
}

#[test]
fn every_wrong_program_gets_its_report() {
    run_group("errors");
}

#[test]
fn legal_programs_run_silently() {
    run_group("clean");
}

#[test]
fn the_corpus_covers_every_kind_of_error() {
    let errors = programs("errors");
    assert!(errors.len() >= 30, "only {} wrong programs", errors.len());
    let kinds: Vec<String> = errors.iter().filter_map(|p| p.error.clone()).collect();
    for kind in [
        "attempting double-free",
        "attempting free on address which was not malloc()-ed",
        "alloc-dealloc-mismatch (malloc vs operator delete)",
        "alloc-dealloc-mismatch (operator new vs free)",
        "alloc-dealloc-mismatch (operator new [] vs operator delete)",
        "new-delete-type-mismatch",
        "heap-buffer-overflow",
        "heap-use-after-free",
        "detected memory leaks",
    ] {
        assert!(
            kinds.iter().any(|k| k.starts_with(kind)),
            "no program for `{kind}`"
        );
    }
    let all = |pred: &dyn Fn(&Program) -> bool| errors.iter().any(pred);
    // Reads after free and reads past the end need guard pages; writes are caught without.
    assert!(all(&|p| p.options.contains(&"all".to_string())
        && p.phrases.iter().any(|s| s.starts_with("READ of"))));
    assert!(all(&|p| p
        .phrases
        .iter()
        .any(|s| s.contains("bytes before"))));
    assert!(all(&|p| p
        .phrases
        .iter()
        .any(|s| s.starts_with("Indirect leak"))));
    assert!(all(&|p| p.name.starts_with("realloc_")));
    let clean = programs("clean");
    for name in [
        "calloc_overflow",
        "reallocarray_overflow",
        "other_thread_stack",
        "aligned_new",
    ] {
        assert!(
            clean.iter().any(|p| p.name == name),
            "clean/{name} is missing"
        );
    }
}

#[test]
fn keep_going_reports_every_error_and_log_file_gets_a_copy() {
    let dir = temp_dir("options");
    let prog = Program::load(&corpus_dir().join("options/two_errors.c"));
    let exe = prog.build(&dir);
    // Default: stop at the first error.
    let run = check(&exe, &["--no-leaks".into()]);
    assert_eq!(error_lines(&run.stderr).len(), 1, "{}", run.stderr);
    assert!(!run.stdout.contains("reached the end"), "{}", run.stdout);
    assert_eq!(run.code, Some(1));
    // --keep-going: both errors, the program runs to its end, then exits with the
    // error status.
    let log = dir.join("report");
    let run = check(
        &exe,
        &[
            "--no-leaks".into(),
            "--keep-going".into(),
            "--log-file".into(),
            log.to_str().unwrap().into(),
        ],
    );
    let errors = error_lines(&run.stderr);
    assert_eq!(errors.len(), 2, "{}", run.stderr);
    assert!(
        errors[0].starts_with("attempting double-free"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("attempting free on address which was not malloc()-ed"),
        "{errors:?}"
    );
    assert!(run.stdout.contains("reached the end"), "{}", run.stdout);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    // The log file (PATH.<pid>, the pid of the program memward exec'd) has the reports.
    let logged = std::fs::read_to_string(dir.join(format!("report.{}", run.pid)))
        .unwrap_or_else(|e| panic!("no report.{}: {e}", run.pid));
    assert_eq!(error_lines(&logged), errors);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_leaks_turns_the_leak_check_off() {
    let dir = temp_dir("no-leaks");
    let prog = Program::load(&corpus_dir().join("errors/leak_direct.c"));
    let exe = prog.build(&dir);
    let run = check(&exe, &["--no-leaks".into()]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(!run.stderr.contains("memward"), "{}", run.stderr);
    let run = check(&exe, &["--exit-code".into(), "9".into()]);
    assert_eq!(run.code, Some(9), "{}", run.stderr);
    assert!(
        run.stderr.contains("Direct leak of 100 byte(s)"),
        "{}",
        run.stderr
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_judge_catches_what_it_should() {
    // The rules above must be able to fail: a report that names the wrong kind, lacks a
    // phrase, or comes twice is refused; a silent program with a stray report too.
    let p = Program::load(&corpus_dir().join("errors/double_free.c"));
    let run = |stderr: &str, code| Run {
        pid: 1,
        code: Some(code),
        signal: None,
        stdout: String::new(),
        stderr: stderr.into(),
    };
    let good = "==7==ERROR: memward: attempting double-free on 0x6020 in thread T0:\n\
        \x20   #0 0x4005 in free\n    #1 0x4006 in release /x/double_free.c:12:3\n\
        0x6020 is located 0 bytes inside of 13-byte region [0x6020,0x602d)\n\
        freed by thread T0 here:\npreviously allocated by thread T0 here:\n\
        SUMMARY: memward: double-free /x/double_free.c:12:3 in release\n";
    assert_eq!(p.judge(&run(good, 1)), Vec::<String>::new());
    assert_eq!(p.judge(&run(good, 0)).len(), 1);
    assert!(!p
        .judge(&run(&good.replace("double-free on", "bad-free on"), 1))
        .is_empty());
    assert!(!p
        .judge(&run(&good.replace("13-byte", "12-byte"), 1))
        .is_empty());
    assert!(!p
        .judge(&run(&good.replace("in release", "in other"), 1))
        .is_empty());
    assert!(!p.judge(&run(&format!("{good}{good}"), 1)).is_empty());
    let c = Program::load(&corpus_dir().join("clean/realloc_chain.c"));
    assert!(c.judge(&run("", 0)).is_empty());
    assert!(!c.judge(&run(good, 0)).is_empty());
}

#[test]
fn suppressions_silence_only_what_they_name() {
    // The format of memward-check's README: `KIND:PATTERN` per line, PATTERN matched
    // against the frames' function, source file or module (here the program's path).
    let dir = temp_dir("suppressions");
    let prog = Program::load(&corpus_dir().join("errors/malloc_delete.cpp"));
    let exe = prog.build(&dir);
    let sup = |text: &str| {
        let f = dir.join("sup.txt");
        std::fs::write(&f, text).unwrap();
        vec![
            "--suppressions".to_string(),
            f.to_str().unwrap().to_string(),
        ]
    };
    let run = check(
        &exe,
        &sup("# a comment\nalloc-dealloc-mismatch:malloc_delete\n"),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(error_lines(&run.stderr).is_empty(), "{}", run.stderr);
    // Another kind, or a pattern no frame matches, suppresses nothing.
    for text in [
        "heap-buffer-overflow:malloc_delete\n",
        "alloc-dealloc-mismatch:no_such_frame_anywhere\n",
    ] {
        let run = check(&exe, &sup(text));
        assert_eq!(run.code, Some(1), "{text}: {}", run.stderr);
        assert!(
            prog.judge(&run).is_empty(),
            "{text}: {:?}",
            prog.judge(&run)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
