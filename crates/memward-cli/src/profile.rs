//! `memward profile`: runs a command with libmemward.so preloaded and the heap profiler
//! recording (`MEMWARD_PROFILE`), passes its stdio and exit status through, then writes
//! `FILE.html` beside the profile and prints the text summary to stderr (both from
//! `memward-report`). The profiles are compacted (events name allocation sites instead of
//! addresses) and gzipped once the command has exited (the recorder writes plain records
//! with addresses, which stay readable if the program is killed).
//!
//! The profile is named after the command's own pid (`memward-profile.<cmd>.<pid>`, as
//! heaptrack and memray name theirs), which is known only after `fork`: the pid is put
//! into the child's `MEMWARD_PROFILE` in the child itself, before `exec`, where memward
//! is still single-threaded. An explicit `-o FILE` is used as given (made absolute, so a
//! command that changes directory still writes there). Processes the command starts
//! (fork, or exec of a program that loads the library) write `FILE.<pid>`.

use crate::args::{path_option, UsageError};
use crate::summary::Ending;
use std::ffi::{CStr, OsStr, OsString};
use std::io::{ErrorKind, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt as _};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// Runs the command under the profiler; returns the exit status to exit with.
pub fn run(a: ProfileArgs) -> i32 {
    let exe = std::env::current_exe().ok();
    let lib = crate::library_or_exit(a.lib.clone(), exe.as_deref());
    let (base, pid_suffix) = match base_path(&a) {
        Ok(b) => b,
        Err(e) => crate::fail(
            crate::EXIT_INTERNAL,
            &format!("cannot find the working directory: {e}"),
        ),
    };
    if !pid_suffix {
        // The first process to create the file owns it; a stale one would send the
        // command's profile to FILE.<pid>.
        match std::fs::remove_file(&base) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => crate::fail(
                crate::EXIT_INTERNAL,
                &format!("cannot replace {}: {e}", base.display()),
            ),
        }
    }
    let program = &a.command[0];
    let mut cmd = Command::new(program);
    cmd.args(&a.command[1..]);
    let preload = crate::preload_value(&lib, std::env::var_os("LD_PRELOAD").as_deref());
    configure(&mut cmd, preload, &base, pid_suffix, a.sample_rate);
    crate::install_signal_handlers();
    // File times come from the kernel's coarse clock, a few ms behind this one.
    let started = SystemTime::now() - std::time::Duration::from_secs(1);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let name = program.to_string_lossy();
            match e.kind() {
                ErrorKind::NotFound => {
                    crate::fail(crate::EXIT_NOT_FOUND, &format!("{name}: command not found"))
                }
                ErrorKind::PermissionDenied => crate::fail(
                    crate::EXIT_CANNOT_EXECUTE,
                    &format!("{name}: permission denied"),
                ),
                _ => crate::fail(
                    crate::EXIT_CANNOT_EXECUTE,
                    &format!("{name}: cannot execute: {e}"),
                ),
            }
        }
    };
    let pid = child.id() as libc::pid_t;
    crate::set_child(pid);
    let status = match crate::wait_for(pid) {
        Ok((status, _)) => status,
        Err(e) => crate::fail(crate::EXIT_INTERNAL, &format!("waiting for pid {pid}: {e}")),
    };
    let ending = Ending::from_wait_status(status);
    let main = if pid_suffix {
        let mut p = base.into_os_string();
        p.push(format!(".{pid}"));
        PathBuf::from(p)
    } else {
        base
    };
    let _ = std::io::stderr().write_all(outcome(&main, started).as_bytes());
    ending.exit_code()
}

/// What the run left: the profile, the files of other processes, and what to do next.
fn outcome(main: &Path, started: SystemTime) -> String {
    let (exists, others) = written_files(main);
    let others: Vec<PathBuf> = others
        .into_iter()
        .filter(|p| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= started)
        })
        .collect();
    let mut out = String::new();
    if !exists {
        out.push_str(&format!(
            "memward profile: no profile at {}: the command did not load libmemward.so \
             (statically linked or setuid) or never allocated\n",
            main.display()
        ));
        return out;
    }
    // The recorder writes plain records with addresses (readable if the program is
    // killed); once it is done they are rewritten to name allocation sites instead and
    // gzipped (the reader reads both forms).
    let raw = std::fs::metadata(main).map_or(0, |m| m.len());
    for p in std::iter::once(main).chain(others.iter().map(PathBuf::as_path)) {
        if let Err(e) = memward_profile_format::compact_file(p) {
            out.push_str(&format!(
                "memward profile: cannot compact {} (left as it is): {e}\n",
                p.display()
            ));
        }
    }
    let size = std::fs::metadata(main).map_or(0, |m| m.len());
    out.push_str(&format!(
        "memward profile: wrote {} ({} compacted and gzipped, {} as recorded)\n",
        main.display(),
        crate::summary::bytes(Some(size)),
        crate::summary::bytes(Some(raw))
    ));
    if !others.is_empty() {
        out.push_str(&format!(
            "memward profile: {} more from child processes:",
            others.len()
        ));
        for p in others.iter().take(8) {
            out.push_str(&format!(" {}", p.display()));
        }
        if others.len() > 8 {
            out.push_str(" ...");
        }
        out.push('\n');
    }
    // The HTML page beside the profile, and the text summary (memward-report).
    let mut html = main.as_os_str().to_os_string();
    html.push(".html");
    let html = PathBuf::from(html);
    match memward_report::Report::open(main) {
        Ok(report) => {
            out.push_str(&report.text());
            match std::fs::File::create(&html)
                .map_err(|e| e.to_string())
                .and_then(|mut f| {
                    report
                        .write(
                            memward_report::Format::Html,
                            memward_report::Metric::Peak,
                            &mut f,
                        )
                        .map_err(|e| e.to_string())
                }) {
                Ok(()) => out.push_str(&format!(
                    "memward profile: HTML report: {}\n",
                    html.display()
                )),
                Err(e) => out.push_str(&format!(
                    "memward profile: cannot write {}: {e}\n",
                    html.display()
                )),
            }
        }
        Err(e) => out.push_str(&format!(
            "memward profile: cannot analyse the profile: {e}\n"
        )),
    }
    out.push_str(&format!(
        "memward profile: more: memward report {} --format text|html|massif|dhat|pprof|folded|flamegraph\n",
        main.display()
    ));
    out
}

/// Arguments of `memward profile`.
#[derive(Debug, PartialEq, Eq, Default)]
pub struct ProfileArgs {
    /// `-o FILE`: where the profile goes.
    pub output: Option<PathBuf>,
    /// `--sample-rate BYTES`: Poisson sampling by bytes (`None`: every allocation).
    pub sample_rate: Option<u64>,
    /// `--lib PATH`: the library to preload.
    pub lib: Option<PathBuf>,
    /// The program and its arguments; never empty.
    pub command: Vec<OsString>,
}

/// `memward profile --help`.
pub const PROFILE_HELP: &str = "\
memward profile: record every allocation of a command, with its stack

Usage:
  memward profile [-o FILE] [--sample-rate BYTES] [--lib PATH] [--] CMD [ARGS...]

Options (only before CMD; everything from CMD on is passed to CMD unchanged):
  -o, --output FILE     write the profile to FILE
                        (default: memward-profile.<cmd>.<pid> in this directory)
  --sample-rate BYTES   record a sample, one allocation per BYTES allocated on average
                        (Poisson by bytes; reports scale the figures back up)
  --lib PATH            preload this library instead of the one found automatically
  -h, --help            show this help

CMD runs with libmemward.so preloaded and MEMWARD_PROFILE set; its input, output and
exit status pass through. Stacks are unwound with .eh_frame, so programs built without
frame pointers (Debian's) get whole stacks. Child processes write FILE.<pid>. A program
killed or ending with _exit leaves a profile readable up to its last 10 ms.

Then: memward report FILE [--format text|html|massif|dhat|pprof|folded|flamegraph]
";

/// Parses the arguments after `profile`.
pub fn parse(mut args: impl Iterator<Item = OsString>) -> Result<Option<ProfileArgs>, UsageError> {
    let mut p = ProfileArgs::default();
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        let Some(text) = crate::args::option_text(&arg) else {
            p.command.push(arg);
            break;
        };
        if matches!(text, "-h" | "--help") {
            return Ok(None);
        }
        if let Some(path) = path_option("--lib", text, &mut args)? {
            p.lib = Some(path);
        } else if let Some(path) = path_option("--output", text, &mut args)? {
            p.output = Some(path);
        } else if text == "-o" {
            match args.next() {
                Some(v) if !v.is_empty() => p.output = Some(PathBuf::from(v)),
                _ => return Err(UsageError("option `-o` needs a path".into())),
            }
        } else if let Some(v) = value_option("--sample-rate", text, &mut args) {
            let rate = v
                .to_str()
                .and_then(|s| s.parse::<u64>().ok())
                .filter(|r| *r > 0)
                .ok_or_else(|| {
                    UsageError(format!(
                        "`--sample-rate` needs a positive number of bytes, not `{}`",
                        v.to_string_lossy()
                    ))
                })?;
            p.sample_rate = Some(rate);
        } else {
            return Err(UsageError(format!(
                "unknown option `{text}` for `memward profile` (put the command after `--` if it starts with `-`)"
            )));
        }
    }
    p.command.extend(args);
    if p.command.is_empty() {
        return Err(UsageError(
            "missing command to profile (usage: memward profile [OPTIONS] [--] CMD [ARGS...])"
                .into(),
        ));
    }
    Ok(Some(p))
}

/// `--name VALUE` or `--name=VALUE`; `None` if `text` is not this option. A missing
/// value reads as empty (rejected by the caller's check).
fn value_option(
    name: &str,
    text: &str,
    args: &mut impl Iterator<Item = OsString>,
) -> Option<OsString> {
    if text == name {
        Some(args.next().unwrap_or_default())
    } else {
        text.strip_prefix(name)
            .and_then(|r| r.strip_prefix('='))
            .map(OsString::from)
    }
}

/// The default profile name's stem: `memward-profile.<basename of cmd>`.
pub fn default_stem(program: &OsStr) -> OsString {
    let base = Path::new(program)
        .file_name()
        .map_or_else(|| program.to_os_string(), OsStr::to_os_string);
    let mut s = OsString::from("memward-profile.");
    s.push(base);
    s
}

/// Sets the child's environment: the library first in `LD_PRELOAD`, the profile path and
/// the sampling rate. With `pid_suffix`, the child appends its own pid to the path.
///
/// All of it is set in the child itself, after fork and before exec (memward is
/// single-threaded there, so libc's `setenv` is safe): `Command::env` would make std
/// exec with an environment captured before fork, which the child can no longer change.
/// (std's own `set_var` cannot be used either: spawn holds std's environment lock across
/// fork, so the child would wait for it forever.)
pub fn configure(
    cmd: &mut Command,
    preload: OsString,
    path: &Path,
    pid_suffix: bool,
    sample_rate: Option<u64>,
) {
    let mut vars: Vec<(&'static CStr, Vec<u8>)> = vec![
        (c"LD_PRELOAD", preload.into_vec()),
        (c"MEMWARD_PROFILE", path.as_os_str().as_bytes().to_vec()),
    ];
    if let Some(rate) = sample_rate {
        vars.push((
            c"MEMWARD_PROFILE_SAMPLE_RATE",
            rate.to_string().into_bytes(),
        ));
    }
    // SAFETY (of the closure's contract): runs in the forked child of a single-threaded
    // process before exec, where libc's setenv (which may allocate) is safe.
    unsafe {
        cmd.pre_exec(move || {
            for (name, value) in &vars {
                let mut value = value.clone();
                if pid_suffix && name.to_bytes() == b"MEMWARD_PROFILE" {
                    value.push(b'.');
                    value.extend_from_slice(std::process::id().to_string().as_bytes());
                }
                value.push(0);
                // SAFETY: both strings are NUL-terminated; the process is single-threaded.
                if libc::setenv(name.as_ptr(), value.as_ptr().cast(), 1) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// The profile path before the pid (default) or as given (`-o`), made absolute.
pub fn base_path(args: &ProfileArgs) -> std::io::Result<(PathBuf, bool)> {
    let cwd = std::env::current_dir()?;
    Ok(match &args.output {
        Some(p) => (cwd.join(p), false),
        None => (cwd.join(default_stem(&args.command[0])), true),
    })
}

/// The files the run wrote: the main profile, if present, and those of other processes
/// (`FILE.<pid>`), sorted.
pub fn written_files(main: &Path) -> (bool, Vec<PathBuf>) {
    let exists = main.exists();
    let mut others = Vec::new();
    if let (Some(dir), Some(name)) = (main.parent(), main.file_name()) {
        let mut prefix = name.as_bytes().to_vec();
        prefix.push(b'.');
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let n = e.file_name();
                let b = n.as_bytes();
                if b.len() > prefix.len()
                    && b.starts_with(&prefix)
                    && b[prefix.len()..].iter().all(u8::is_ascii_digit)
                {
                    others.push(e.path());
                }
            }
        }
    }
    others.sort();
    (exists, others)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Option<ProfileArgs>, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn options_before_the_command() {
        let a = p(&["-o", "out.prof", "--sample-rate", "4096", "ls", "-l"])
            .unwrap()
            .unwrap();
        assert_eq!(a.output, Some(PathBuf::from("out.prof")));
        assert_eq!(a.sample_rate, Some(4096));
        assert_eq!(a.command, [OsString::from("ls"), OsString::from("-l")]);
        let a = p(&["--output=x", "--sample-rate=1", "--", "-weird"])
            .unwrap()
            .unwrap();
        assert_eq!(a.output, Some(PathBuf::from("x")));
        assert_eq!(a.command, [OsString::from("-weird")]);
        assert_eq!(p(&["--help"]).unwrap(), None);
        let a = p(&["--lib", "/l.so", "true"]).unwrap().unwrap();
        assert_eq!(a.lib, Some(PathBuf::from("/l.so")));
    }

    #[test]
    fn bad_options_are_explained() {
        let err = |a: &[&str]| p(a).unwrap_err().0;
        assert!(err(&[]).contains("missing command"));
        assert!(err(&["-o"]).contains("needs a path"));
        assert!(err(&["--sample-rate", "lots", "true"]).contains("positive number"));
        assert!(err(&["--sample-rate", "0", "true"]).contains("positive number"));
        assert!(err(&["--sample-rate"]).contains("positive number"));
        assert!(err(&["--bogus", "true"]).contains("unknown option `--bogus`"));
    }

    #[test]
    fn default_names_use_the_program_basename() {
        assert_eq!(
            default_stem(OsStr::new("/usr/bin/python3")),
            "memward-profile.python3"
        );
        assert_eq!(default_stem(OsStr::new("ls")), "memward-profile.ls");
    }

    #[test]
    fn finds_the_files_of_child_processes() {
        let dir = std::env::temp_dir().join(format!("mw-prof-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let main = dir.join("p");
        for n in ["p", "p.12", "p.7", "p.html", "p.1x", "q.3"] {
            std::fs::write(dir.join(n), b"").unwrap();
        }
        let (exists, others) = written_files(&main);
        assert!(exists);
        assert_eq!(others, [dir.join("p.12"), dir.join("p.7")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn help_fits_a_screen() {
        assert!(PROFILE_HELP.lines().count() <= 40);
        assert!(PROFILE_HELP.lines().all(|l| l.len() <= 90));
    }
}
