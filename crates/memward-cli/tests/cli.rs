//! End-to-end tests of the `memward` binary: help and version, the one-line errors for a
//! missing command or library, exit-status pass-through (including 128+N for a signal),
//! LD_PRELOAD composition, and the summary read from the library in the child.
//!
//! The runs that preload need the release library (`cargo build --release`, or
//! `MEMWARD_LIB`), as the tests of `memward-preload` do.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn memward() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_memward"));
    cmd.env_remove("LD_PRELOAD").env_remove("MEMWARD_LIB");
    cmd
}

/// `$MEMWARD_LIB`, or the release build in this build's target directory, found from
/// the tool under test (`TARGET/debug/memward`, so `TARGET/release/libmemward.so`), which
/// follows `CARGO_TARGET_DIR` and `build.target-dir`; fails with the fix if missing.
fn library() -> PathBuf {
    if let Some(p) = std::env::var_os("MEMWARD_LIB").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "MEMWARD_LIB={} does not exist", p.display());
        return p.canonicalize().unwrap();
    }
    let tool = Path::new(env!("CARGO_BIN_EXE_memward"));
    let candidates: Vec<PathBuf> = tool
        .ancestors()
        .skip(1)
        .take(3)
        .map(|d| d.join("release/libmemward.so"))
        .collect();
    match candidates.iter().find(|p| p.is_file()) {
        Some(p) => p.canonicalize().unwrap(),
        None => panic!(
            "libmemward.so is missing (looked for {candidates:?}): run `cargo build --release` \
             with the same CARGO_TARGET_DIR first (or set MEMWARD_LIB)"
        ),
    }
}

/// `memward run ARGS...` with the library, in a private TMPDIR (to check clean-up).
fn run(args: &[&str], tmp: &Path) -> Output {
    memward()
        .env("MEMWARD_LIB", library())
        .env("TMPDIR", tmp)
        .arg("run")
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("memward-cli-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn help_and_version() {
    for args in [&["--help"][..], &["-h"], &["help"]] {
        let o = memward().args(args).output().unwrap();
        assert!(o.status.success());
        let out = text(&o.stdout);
        assert!(out.contains("memward run [OPTIONS] [--] CMD"), "{out}");
    }
    for args in [&["run", "--help"][..], &["help", "run"]] {
        let o = memward().args(args).output().unwrap();
        assert!(o.status.success());
        let out = text(&o.stdout);
        assert!(
            out.contains("MEMWARD_LIB") && out.contains("Exit status"),
            "{out}"
        );
    }
    let o = memward().arg("--version").output().unwrap();
    assert!(o.status.success());
    assert_eq!(
        text(&o.stdout),
        format!("memward {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_are_one_line() {
    for args in [
        &[][..],
        &["run"],
        &["run", "--"],
        &["bogus"],
        &["run", "--nope", "x"],
    ] {
        let o = memward().args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = text(&o.stderr);
        assert!(
            err.starts_with("memward: ") && err.lines().count() == 1,
            "{args:?}: {err}"
        );
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn missing_library_is_one_line() {
    let o = memward()
        .env("MEMWARD_LIB", "/nonexistent/libmemward.so")
        .args(["run", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125));
    let err = text(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("/nonexistent/libmemward.so") && err.contains("MEMWARD_LIB"),
        "{err}"
    );
}

#[test]
fn missing_or_unexecutable_command() {
    let tmp = temp_dir("missing");
    let o = run(&["--", "no-such-command-memward-test"], &tmp);
    assert_eq!(o.status.code(), Some(127));
    let err = text(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no-such-command-memward-test: command not found"),
        "{err}"
    );

    let not_exec = tmp.join("data.txt");
    std::fs::write(&not_exec, "x").unwrap();
    let o = run(&[not_exec.to_str().unwrap()], &tmp);
    assert_eq!(o.status.code(), Some(126));
    assert_eq!(text(&o.stderr).lines().count(), 1);
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn exit_status_and_signals_pass_through() {
    let tmp = temp_dir("status");
    for code in [0, 1, 7, 255] {
        let o = run(&["sh", "-c", &format!("exit {code}")], &tmp);
        assert_eq!(o.status.code(), Some(code), "{}", text(&o.stderr));
        assert!(text(&o.stderr).contains(&format!("exited with status {code}")));
    }
    let o = run(&["--", "sh", "-c", "kill -TERM $$"], &tmp);
    assert_eq!(o.status.code(), Some(128 + 15));
    let err = text(&o.stderr);
    assert!(
        err.contains("killed by signal 15 (SIGTERM), status 143"),
        "{err}"
    );
    assert!(err.contains("not reported: killed by a signal"), "{err}");
    // Nothing left behind in TMPDIR.
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn summary_comes_from_the_library_in_the_child() {
    let tmp = temp_dir("summary");
    // sort allocates, exits through exit() and runs no other program.
    let input = tmp.join("in.txt");
    let lines: String = (0..20000)
        .map(|i| format!("{}\n", (i * 7919) % 10007))
        .collect();
    std::fs::write(&input, lines).unwrap();
    let o = run(&["sort", "-n", input.to_str().unwrap()], &tmp);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout).lines().count(),
        20000,
        "the command's stdout passes through"
    );
    let err = text(&o.stderr);
    assert!(err.starts_with("memward: summary of `sort -n "), "{err}");
    let value = |label: &str| -> u64 {
        let line = err
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no {label:?} line in\n{err}"));
        // "  allocations    1,234" or "  peak in use    1.2 MiB (1,234 bytes)"
        let rest = line.trim_start()[label.len()..].trim();
        let digits = match rest.find('(') {
            Some(i) => &rest[i + 1..],
            None => rest,
        };
        let n: String = digits
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == ',')
            .filter(|c| *c != ',')
            .collect();
        n.parse()
            .unwrap_or_else(|_| panic!("no number in {line:?}"))
    };
    assert!(value("allocations") > 0, "{err}");
    assert!(value("frees") > 0, "{err}");
    assert!(value("peak in use") >= value("final in use"), "{err}");
    assert!(value("peak in use") > 0, "{err}");
    assert!(value("peak RSS") > 0, "{err}");
    assert!(err.contains("run time"), "{err}");
    assert!(!err.contains("not reported"), "{err}");
    std::fs::remove_file(&input).unwrap();
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "summary files left behind"
    );
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn existing_preload_is_kept_after_ours() {
    let tmp = temp_dir("preload");
    let lib = library();
    let o = memward()
        .env("MEMWARD_LIB", &lib)
        .env("TMPDIR", &tmp)
        .env("LD_PRELOAD", "libc.so.6")
        .args(["run", "--", "sh", "-c", "printf %s \"$LD_PRELOAD\""])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), format!("{}:libc.so.6", lib.display()));
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn stats_option_asks_the_library_for_statistics() {
    let tmp = temp_dir("stats");
    // --stats hands MEMWARD_STATS=1 to the command; the library's printing itself is the
    // library's to test (and invisible with coreutils, which close stderr before exit).
    let o = run(&["--stats", "--", "sh", "-c", "exec env"], &tmp);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).lines().any(|l| l == "MEMWARD_STATS=1"),
        "{}",
        text(&o.stdout)
    );
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn sigterm_to_memward_reaches_the_command() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let tmp = temp_dir("sigterm");
    let mut child = memward()
        .env("MEMWARD_LIB", library())
        .env("TMPDIR", &tmp)
        .args(["run", "--", "sh", "-c", "echo ready; exec sleep 20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the command prints, memward has spawned it and installed its handlers.
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    let killed = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()
        .unwrap();
    assert!(killed.success());
    let o = child.wait_with_output().unwrap();
    // sleep died of the forwarded SIGTERM; memward reported it and exited 128+15.
    assert_eq!(o.status.code(), Some(143), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("killed by signal 15 (SIGTERM)"));
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn a_lib_that_is_not_a_library_is_refused() {
    let tmp = temp_dir("badlib");
    // The loader would print a warning and run the command on glibc's malloc; memward
    // refuses before running anything.
    let o = memward()
        .env("TMPDIR", &tmp)
        .args(["run", "--lib", "/etc/passwd", "--", "sh", "-c", "echo ran"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(o.stdout.is_empty(), "the command must not run");
    let err = text(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("memward: library /etc/passwd (from --lib) cannot be preloaded")
            && err.contains("not an ELF shared library"),
        "{err}"
    );
    // An ELF file that is no malloc library (the memward executable itself) is refused
    // too; named through MEMWARD_LIB it is an environment error, not a usage error.
    let o = memward()
        .env("MEMWARD_LIB", env!("CARGO_BIN_EXE_memward"))
        .env("TMPDIR", &tmp)
        .args(["run", "--", "sh", "-c", "echo ran"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125), "{}", text(&o.stderr));
    assert!(o.stdout.is_empty(), "the command must not run");
    assert!(text(&o.stderr).contains("(from MEMWARD_LIB) cannot be preloaded"));
    // The real library passes the same check.
    let o = memward()
        .env("TMPDIR", &tmp)
        .arg("run")
        .arg("--lib")
        .arg(library())
        .args(["--", "sh", "-c", "echo ran"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "ran\n");
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// Where the C compiler is; a missing one fails the test with the package to install.
fn c_compiler() -> &'static str {
    let found = Command::new("cc").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "`cc` is not installed; install the Debian package `build-essential` \
         (apt-get install -y build-essential)"
    );
    "cc"
}

#[test]
fn install_puts_a_working_tool_and_library_in_the_prefix() {
    let tmp = temp_dir("install");
    let prefix = tmp.join("prefix");
    let o = memward()
        .env("MEMWARD_LIB", library())
        .arg("install")
        .arg("--prefix")
        .arg(&prefix)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let notes = text(&o.stdout);
    let tool = prefix.join("bin/memward");
    let lib = prefix.join("lib/libmemward.so");
    assert!(
        notes.contains(&format!("installed {}", tool.display())),
        "{notes}"
    );
    assert!(notes.contains("-lmemward"), "{notes}");
    assert_eq!(
        std::fs::read(&lib).unwrap(),
        std::fs::read(library()).unwrap()
    );

    // The installed tool finds the installed library (../lib) without MEMWARD_LIB.
    let run_tmp = tmp.join("run");
    std::fs::create_dir_all(&run_tmp).unwrap();
    let o = Command::new(&tool)
        .env_remove("MEMWARD_LIB")
        .env_remove("LD_PRELOAD")
        .env("TMPDIR", &run_tmp)
        .args(["run", "--", "sh", "-c", "printf %s \"$LD_PRELOAD\""])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        lib.canonicalize().unwrap().to_str().unwrap()
    );
    // ... and the library reports from the child (sort allocates and exits through exit()).
    let input = tmp.join("numbers.txt");
    std::fs::write(&input, "3\n1\n2\n").unwrap();
    let o = Command::new(&tool)
        .env_remove("MEMWARD_LIB")
        .env_remove("LD_PRELOAD")
        .env("TMPDIR", &run_tmp)
        .args(["run", "--", "sort", "-n"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "1\n2\n3\n");
    let err = text(&o.stderr);
    assert!(
        err.contains("allocations") && !err.contains("not reported"),
        "{err}"
    );

    // A C program linked against the installed library uses memward's malloc: the
    // library's exit hook writes its summary file, with this program's allocations.
    let src = tmp.join("prog.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n\
         int main(int argc, char **argv) {\n\
           char *p = malloc(100 + argc);\n\
           strcpy(p, argv[0]);\n\
           puts(strrchr(p, '/') + 1);\n\
           free(p);\n\
           return 0;\n\
         }\n",
    )
    .unwrap();
    let exe = tmp.join("prog");
    let lib_dir = prefix.join("lib");
    let cc = Command::new(c_compiler())
        .arg("-O0")
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", lib_dir.display()))
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg("-lmemward")
        .output()
        .unwrap();
    assert!(cc.status.success(), "{}", text(&cc.stderr));
    let summary = tmp.join("summary");
    let child = Command::new(&exe)
        .env_remove("LD_PRELOAD")
        .env("MEMWARD_SUMMARY_FILE", &summary)
        .spawn()
        .unwrap();
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    let written = std::fs::read_to_string(format!("{}.{pid}", summary.display()))
        .expect("the linked program ran on libmemward.so and wrote its summary");
    let allocations: u64 = written
        .lines()
        .find_map(|l| l.strip_prefix("allocations "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no allocations in {written}"));
    assert!(allocations >= 1, "{written}");

    // Installing again over the same prefix works (files are replaced, not appended to).
    let o = memward()
        .env("MEMWARD_LIB", library())
        .args(["install", "--prefix"])
        .arg(&prefix)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    // A bad --lib is refused before anything is copied.
    let other = tmp.join("other-prefix");
    let o = memward()
        .args(["install", "--lib", "/etc/passwd", "--prefix"])
        .arg(&other)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(!other.exists());
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// The text of the README's fenced block that starts with the line `$ COMMAND`.
fn readme_block(command: &str) -> String {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(readme).unwrap();
    let opening = format!("```text\n$ {command}\n");
    let start = readme
        .find(&opening)
        .unwrap_or_else(|| panic!("README.md has no block opening with `$ {command}`"))
        + opening.len();
    let len = readme[start..].find("```").expect("the block is closed");
    readme[start..start + len].to_string()
}

#[test]
fn readme_shows_the_real_help() {
    for (command, args) in [
        ("memward --help", &["--help"][..]),
        ("memward install --help", &["install", "--help"]),
    ] {
        let o = memward().args(args).output().unwrap();
        assert!(o.status.success());
        assert_eq!(
            readme_block(command),
            text(&o.stdout),
            "README.md's `{command}` block differs from the tool's output; paste the output"
        );
    }
}
