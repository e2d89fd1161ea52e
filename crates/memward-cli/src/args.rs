//! Command-line parsing, by hand: the grammar is small and a parser crate would cost more
//! compile time than this whole tool.
//!
//! ```text
//! memward [-h | --help | -V | --version]
//! memward help [run | install | profile | report | check]
//! memward profile [-o FILE] [--sample-rate BYTES] [--lib PATH] [-h | --help] [--] CMD [ARGS...]
//! memward check [--guard sample|all|none] [--quarantine MIB] [--no-leaks] [--keep-going]
//!               [--exit-code N] [--log-file PATH] [--suppressions FILE] [--lib PATH] [--] CMD ...
//! memward run [--lib PATH] [--stats] [-h | --help] [--] CMD [ARGS...]
//! memward install --prefix DIR [--lib PATH] [-h | --help]
//! ```
//!
//! `run` options are only recognised before the command: everything from the first
//! non-option argument (or after `--`) on belongs to the command, so `memward run ls -l`
//! passes `-l` to `ls`.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::PathBuf;

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Print a help text and exit successfully.
    Help(Topic),
    /// Print the version and exit successfully.
    Version,
    /// Run a command under the allocator.
    Run(RunArgs),
    /// Copy the tool and the library into a prefix.
    Install(InstallArgs),
    /// Run a command with the heap profiler recording.
    Profile(crate::profile::ProfileArgs),
    /// Turn a heap profile into a report (`report.rs`).
    Report(crate::report::ReportArgs),
    /// Run a command under the memory-error checker (`check.rs`).
    Check(crate::check::CheckArgs),
}

/// Which help text to print.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Topic {
    /// The overview (`memward --help`).
    Main,
    /// `memward run --help`.
    Run,
    /// `memward install --help`.
    Install,
    /// `memward profile --help`.
    Profile,
    /// `memward report --help`.
    Report,
    /// `memward check --help`.
    Check,
}

/// Arguments of `memward run`.
#[derive(Debug, PartialEq, Eq, Default)]
pub struct RunArgs {
    /// `--lib PATH`: the library to preload (overrides `MEMWARD_LIB`).
    pub lib: Option<PathBuf>,
    /// `--stats`: also have the library print its detailed statistics (`MEMWARD_STATS=1`).
    pub stats: bool,
    /// The program and its arguments; never empty.
    pub command: Vec<OsString>,
}

/// Arguments of `memward install`.
#[derive(Debug, PartialEq, Eq)]
pub struct InstallArgs {
    /// `--prefix DIR`: the tool goes to `DIR/bin`, the library to `DIR/lib`.
    pub prefix: PathBuf,
    /// `--lib PATH`: the library to install (default: the one `run` would preload).
    pub lib: Option<PathBuf>,
}

/// A command line that cannot be obeyed; the message is one line, without the
/// `memward:` prefix.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

/// Parses the arguments after the program name.
pub fn parse<I>(args: I) -> Result<Action, UsageError>
where
    I: IntoIterator<Item = OsString>,
{
    let mut args = args.into_iter();
    let Some(first) = args.next() else {
        return Err(usage(
            "missing subcommand (try `memward run -- CMD` or `memward --help`)",
        ));
    };
    match first.to_str() {
        Some("-h" | "--help") => Ok(Action::Help(Topic::Main)),
        Some("-V" | "--version") => Ok(Action::Version),
        Some("help") => match args.next() {
            None => Ok(Action::Help(Topic::Main)),
            Some(t) if t == "run" => Ok(Action::Help(Topic::Run)),
            Some(t) if t == "install" => Ok(Action::Help(Topic::Install)),
            Some(t) if t == "profile" => Ok(Action::Help(Topic::Profile)),
            Some(t) if t == "report" => Ok(Action::Help(Topic::Report)),
            Some(t) if t == "check" => Ok(Action::Help(Topic::Check)),
            Some(t) => Err(usage(format!(
                "no help for `{}`: the subcommands are `run`, `install`, `profile`, `report` and `check`",
                t.to_string_lossy()
            ))),
        },
        Some("run") => parse_run(args),
        Some("install") => parse_install(args),
        Some("profile") => {
            Ok(crate::profile::parse(args)?.map_or(Action::Help(Topic::Profile), Action::Profile))
        }
        Some("report") => {
            Ok(crate::report::parse(args)?.map_or(Action::Help(Topic::Report), Action::Report))
        }
        Some("check") => {
            Ok(crate::check::parse(args)?.map_or(Action::Help(Topic::Check), Action::Check))
        }
        _ => Err(usage(format!(
            "unknown subcommand `{}` (try `memward --help`)",
            first.to_string_lossy()
        ))),
    }
}

fn parse_run(mut args: impl Iterator<Item = OsString>) -> Result<Action, UsageError> {
    let mut run = RunArgs::default();
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        let Some(text) = option_text(&arg) else {
            // The first non-option is the program: it and everything after are its own.
            run.command.push(arg);
            break;
        };
        match text {
            "-h" | "--help" => return Ok(Action::Help(Topic::Run)),
            "--stats" => run.stats = true,
            _ => {
                if let Some(path) = path_option("--lib", text, &mut args)? {
                    run.lib = Some(path);
                } else {
                    return Err(usage(format!(
                        "unknown option `{text}` for `memward run` (put the command after `--` if it starts with `-`)"
                    )));
                }
            }
        }
    }
    run.command.extend(args);
    if run.command.is_empty() {
        return Err(usage(
            "missing command to run (usage: memward run [OPTIONS] [--] CMD [ARGS...])",
        ));
    }
    Ok(Action::Run(run))
}

fn parse_install(mut args: impl Iterator<Item = OsString>) -> Result<Action, UsageError> {
    let mut prefix = None;
    let mut lib = None;
    while let Some(arg) = args.next() {
        let Some(text) = option_text(&arg) else {
            return Err(usage(format!(
                "unexpected argument `{}` for `memward install` (usage: memward install --prefix DIR)",
                arg.to_string_lossy()
            )));
        };
        if matches!(text, "-h" | "--help") {
            return Ok(Action::Help(Topic::Install));
        } else if let Some(dir) = path_option("--prefix", text, &mut args)? {
            prefix = Some(dir);
        } else if let Some(path) = path_option("--lib", text, &mut args)? {
            lib = Some(path);
        } else {
            return Err(usage(format!(
                "unknown option `{text}` for `memward install`"
            )));
        }
    }
    let Some(prefix) = prefix else {
        return Err(usage(
            "missing `--prefix DIR` (usage: memward install --prefix DIR [--lib PATH])",
        ));
    };
    Ok(Action::Install(InstallArgs { prefix, lib }))
}

/// Reads `--name PATH` (the path from the next argument) or `--name=PATH`; `None` if
/// `text` is not this option. An empty path is a usage error.
pub(crate) fn path_option(
    name: &str,
    text: &str,
    args: &mut impl Iterator<Item = OsString>,
) -> Result<Option<PathBuf>, UsageError> {
    let value = if text == name {
        args.next()
    } else if let Some(v) = text.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
        Some(OsString::from(v))
    } else {
        return Ok(None);
    };
    match value {
        Some(v) if !v.is_empty() => Ok(Some(PathBuf::from(v))),
        _ => Err(usage(format!(
            "option `{name}` needs a {}",
            if name == "--prefix" {
                "directory"
            } else {
                "path"
            }
        ))),
    }
}

/// The argument as text if it looks like an option (`-x`, `--xyz`); a lone `-` is an
/// ordinary argument (conventionally "standard input").
pub(crate) fn option_text(arg: &OsStr) -> Option<&str> {
    let bytes = arg.as_encoded_bytes();
    if bytes.len() < 2 || bytes[0] != b'-' {
        return None;
    }
    // A non-UTF-8 option cannot be one of ours; report it readably as unknown.
    Some(arg.to_str().unwrap_or("-?"))
}

/// `memward --help`.
pub const MAIN_HELP: &str = "\
memward: run programs on the memward allocator and summarise their memory use

Usage:
  memward run [OPTIONS] [--] CMD [ARGS...]   run CMD with libmemward.so preloaded
  memward profile [OPTIONS] [--] CMD ...     record every allocation of CMD with its stack
  memward install --prefix DIR               install bin/memward and lib/libmemward.so
  memward report FILE [--format F] [-o OUT]  report on a heap profile (see its --help)
  memward check [OPTIONS] [--] CMD [ARGS...] run CMD under the memory-error checker
  memward help [SUBCOMMAND]                  show this help, or a subcommand's
  memward -h | --help                        show this help
  memward -V | --version                     show the version

`memward run` preloads libmemward.so (memward as the process's malloc, free, calloc,
realloc, ...) into CMD and every program it starts, passes CMD's exit status through,
and prints a short summary to stderr when CMD exits: run time, peak and final bytes in
use, allocations, frees and peak resident memory. See `memward run --help`.

`memward install` puts this tool and libmemward.so where C programs find them: link with
-LDIR/lib -Wl,-rpath,DIR/lib -lmemward, or preload DIR/lib/libmemward.so.
";

/// `memward install --help`.
pub const INSTALL_HELP: &str = "\
memward install: copy memward and libmemward.so into a directory tree

Usage:
  memward install --prefix DIR [--lib PATH]

Options:
  --prefix DIR   install DIR/bin/memward and DIR/lib/libmemward.so (DIR is created)
  --lib PATH     the library to install (default: the one `memward run` would preload:
                 $MEMWARD_LIB, else libmemward.so next to this memward or in ../lib)
  -h, --help     show this help

Files are replaced by rename, so programs running on an older copy keep it. Then run
programs with DIR/bin/memward run -- CMD, or link C programs with
  cc prog.c -LDIR/lib -Wl,-rpath,DIR/lib -lmemward
(without the rpath, list DIR/lib in /etc/ld.so.conf.d/ and run ldconfig). There is no
header: libmemward.so exports the C library's malloc family (<stdlib.h>, <malloc.h>).

Exit status: 0 when both files are installed; 125 if a file cannot be read or written;
2 for a command-line error (including a --lib that is not a loadable library).
";

/// `memward run --help`.
pub const RUN_HELP: &str = "\
memward run: run a command with libmemward.so preloaded, then summarise its memory use

Usage:
  memward run [OPTIONS] [--] CMD [ARGS...]

Options (only before CMD; everything from CMD on is passed to CMD unchanged):
  --lib PATH   preload this library instead of the one found automatically
  --stats      also print the allocator's detailed statistics at exit (MEMWARD_STATS=1)
  -h, --help   show this help

The library is, in order: --lib PATH; $MEMWARD_LIB; libmemward.so next to the memward
executable; ../lib/libmemward.so relative to it. It must be an ELF shared library
for this machine that defines malloc (the loader would silently skip anything else). It
is put first in LD_PRELOAD (an existing LD_PRELOAD is kept after it), so programs CMD
starts use memward too.

When CMD exits, memward prints to stderr: run time, peak and final bytes in use and
the numbers of allocations and frees (reported by the library in CMD's process, not
its children), and the peak resident set size of CMD or the largest process it waited
for (from wait4). The allocator figures are missing when CMD did not exit normally (a
signal, _exit) or did not load the library (statically linked or setuid programs).

Exit status: CMD's own; 128+N if CMD was killed by signal N; 125 if memward itself
failed (library not found, temporary directory); 126 if CMD cannot be executed; 127 if
CMD was not found; 2 for a command-line error (including a --lib that is not a
loadable library).

While CMD runs, memward ignores SIGINT and SIGQUIT (Ctrl-C reaches CMD, and the summary
is still printed) and passes SIGTERM and SIGHUP on to CMD.
";

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Action, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    fn run(args: &[&str]) -> RunArgs {
        match p(args) {
            Ok(Action::Run(r)) => r,
            other => panic!("{args:?} parsed as {other:?}, expected a run"),
        }
    }

    fn cmd(r: &RunArgs) -> Vec<&str> {
        r.command.iter().map(|a| a.to_str().unwrap()).collect()
    }

    fn err(args: &[&str]) -> String {
        match p(args) {
            Err(UsageError(m)) => m,
            other => panic!("{args:?} parsed as {other:?}, expected an error"),
        }
    }

    #[test]
    fn top_level_help_and_version() {
        assert_eq!(p(&["--help"]), Ok(Action::Help(Topic::Main)));
        assert_eq!(p(&["-h"]), Ok(Action::Help(Topic::Main)));
        assert_eq!(p(&["help"]), Ok(Action::Help(Topic::Main)));
        assert_eq!(p(&["help", "run"]), Ok(Action::Help(Topic::Run)));
        assert_eq!(p(&["--version"]), Ok(Action::Version));
        assert_eq!(p(&["-V"]), Ok(Action::Version));
    }

    #[test]
    fn top_level_errors_are_one_line() {
        for args in [&[][..], &["frobnicate"], &["--bogus"], &["help", "frob"]] {
            let m = err(args);
            assert!(!m.is_empty() && !m.contains('\n'), "{args:?}: {m:?}");
        }
        assert!(err(&[]).contains("missing subcommand"));
        assert!(err(&["frobnicate"]).contains("`frobnicate`"));
    }

    #[test]
    fn run_with_and_without_separator() {
        let a = run(&["run", "--", "ls", "-l", "/"]);
        assert_eq!(cmd(&a), ["ls", "-l", "/"]);
        let b = run(&["run", "ls", "-l", "/"]);
        assert_eq!(a, b);
        assert!(!a.stats && a.lib.is_none());
    }

    #[test]
    fn options_after_the_command_belong_to_it() {
        let r = run(&["run", "prog", "--help", "--stats", "--lib", "x", "--"]);
        assert_eq!(cmd(&r), ["prog", "--help", "--stats", "--lib", "x", "--"]);
        assert!(!r.stats && r.lib.is_none());
    }

    #[test]
    fn separator_allows_commands_that_look_like_options() {
        let r = run(&["run", "--", "--weird-name", "a"]);
        assert_eq!(cmd(&r), ["--weird-name", "a"]);
        // Only the first `--` separates; later ones are the command's.
        let r = run(&["run", "--", "echo", "--", "x"]);
        assert_eq!(cmd(&r), ["echo", "--", "x"]);
    }

    #[test]
    fn run_options() {
        let r = run(&["run", "--stats", "--lib", "/opt/l.so", "--", "true"]);
        assert!(r.stats);
        assert_eq!(r.lib, Some(PathBuf::from("/opt/l.so")));
        assert_eq!(cmd(&r), ["true"]);
        let r = run(&["run", "--lib=/x/y.so", "true"]);
        assert_eq!(r.lib, Some(PathBuf::from("/x/y.so")));
        // The later of two --lib wins, as with most tools.
        let r = run(&["run", "--lib", "a", "--lib=b", "true"]);
        assert_eq!(r.lib, Some(PathBuf::from("b")));
    }

    #[test]
    fn run_help() {
        assert_eq!(p(&["run", "--help"]), Ok(Action::Help(Topic::Run)));
        assert_eq!(p(&["run", "-h", "ignored"]), Ok(Action::Help(Topic::Run)));
        assert_eq!(p(&["run", "--stats", "-h"]), Ok(Action::Help(Topic::Run)));
    }

    #[test]
    fn lone_dash_is_a_command_argument() {
        let r = run(&["run", "-", "x"]);
        assert_eq!(cmd(&r), ["-", "x"]);
    }

    #[test]
    fn run_errors() {
        assert!(err(&["run"]).contains("missing command"));
        assert!(err(&["run", "--"]).contains("missing command"));
        assert!(err(&["run", "--stats"]).contains("missing command"));
        assert!(err(&["run", "--stats", "--"]).contains("missing command"));
        assert!(err(&["run", "--lib"]).contains("needs a path"));
        assert!(err(&["run", "--lib="]).contains("needs a path"));
        assert!(err(&["run", "--lib", "", "true"]).contains("needs a path"));
        assert!(err(&["run", "-x", "true"]).contains("unknown option `-x`"));
        assert!(err(&["run", "--verbose", "true"]).contains("unknown option `--verbose`"));
    }

    #[test]
    fn install_arguments() {
        let want = |prefix: &str, lib: Option<&str>| {
            Ok(Action::Install(InstallArgs {
                prefix: PathBuf::from(prefix),
                lib: lib.map(PathBuf::from),
            }))
        };
        assert_eq!(
            p(&["install", "--prefix", "/opt/mw"]),
            want("/opt/mw", None)
        );
        assert_eq!(p(&["install", "--prefix=rel/dir"]), want("rel/dir", None));
        assert_eq!(
            p(&["install", "--lib", "x.so", "--prefix", "/p"]),
            want("/p", Some("x.so"))
        );
        assert_eq!(p(&["install", "--help"]), Ok(Action::Help(Topic::Install)));
        assert_eq!(p(&["help", "install"]), Ok(Action::Help(Topic::Install)));
        assert!(err(&["install"]).contains("missing `--prefix DIR`"));
        assert!(err(&["install", "--prefix"]).contains("needs a directory"));
        assert!(err(&["install", "--prefix="]).contains("needs a directory"));
        assert!(err(&["install", "--lib=", "--prefix", "/p"]).contains("needs a path"));
        assert!(err(&["install", "/p"]).contains("unexpected argument `/p`"));
        assert!(err(&["install", "--prefixx", "/p"]).contains("unknown option `--prefixx`"));
        assert!(err(&["install", "--stats", "--prefix", "/p"]).contains("unknown option"));
    }

    #[test]
    fn non_utf8_arguments_pass_through() {
        use std::os::unix::ffi::OsStringExt;
        let odd = OsString::from_vec(vec![b'f', 0xff, b'o']);
        let a = parse([OsString::from("run"), OsString::from("cat"), odd.clone()]);
        match a {
            Ok(Action::Run(r)) => assert_eq!(r.command, [OsString::from("cat"), odd]),
            other => panic!("{other:?}"),
        }
        let bad_opt = OsString::from_vec(vec![b'-', b'-', 0xff]);
        assert!(parse([OsString::from("run"), bad_opt, "x".into()]).is_err());
    }

    #[test]
    fn help_texts_fit_a_screen() {
        for text in [MAIN_HELP, RUN_HELP, INSTALL_HELP] {
            assert!(text.lines().count() <= 40);
            assert!(text.lines().all(|l| l.len() <= 90), "{text}");
        }
    }
}
