//! `memward check`: runs a command with libmemward.so preloaded in check mode
//! (`MEMWARD_CHECK=1`), the memory-error checker of `memward-check`.
//!
//! The options only become environment variables (the table in `CHECK-CONTRACT.md` and
//! `memward check --help`); the library reads them in the checked process. Every variable
//! is set (or removed) explicitly, so a run depends only on its command line, not on
//! `MEMWARD_CHECK_*` values left in the caller's environment. Values are validated here,
//! before anything runs: a typo such as `--guard al` must be a usage error, not a run that
//! the library would quietly check with its defaults.
//!
//! memward then *execs* the command instead of spawning it: the checked program keeps
//! memward's pid (so `==PID==` in a report and `--log-file PATH.<pid>` name the process the
//! user started), receives signals directly, and its exit status, the checker's exit code
//! on an error included, is the status of `memward check` itself. Nothing is left to do
//! after the command ends: the checker writes its reports from inside the process.

use crate::args::{option_text, path_option, usage, UsageError};
use std::ffi::OsString;
use std::io::ErrorKind;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where guard pages go (`--guard`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Guard {
    /// A sampled set of blocks, as GWP-ASan does (the default).
    #[default]
    Sample,
    /// Every block against an inaccessible page, freed blocks protected (Electric Fence).
    All,
    /// No guard pages: red zones and poison only, checked at free and exit.
    None,
}

impl Guard {
    /// The value of `MEMWARD_CHECK_GUARD`.
    pub fn as_str(self) -> &'static str {
        match self {
            Guard::Sample => "sample",
            Guard::All => "all",
            Guard::None => "none",
        }
    }
}

/// Arguments of `memward check`.
#[derive(Debug, PartialEq, Eq)]
pub struct CheckArgs {
    /// `--guard sample|all|none`.
    pub guard: Guard,
    /// `--quarantine MIB`: cap on the bytes of freed blocks held back, in MiB (the checker
    /// holds twice the live heap, at least 16 MiB, up to this).
    pub quarantine_mib: u32,
    /// `--no-leaks` clears it: the leak check at exit.
    pub leaks: bool,
    /// `--keep-going`: report each error and continue.
    pub keep_going: bool,
    /// `--exit-code N`: the exit status after an error or a leak.
    pub exit_code: u8,
    /// `--log-file PATH`: the report also goes to `PATH.<pid>`.
    pub log_file: Option<PathBuf>,
    /// `--suppressions FILE`.
    pub suppressions: Option<PathBuf>,
    /// `--lib PATH`: the library to preload.
    pub lib: Option<PathBuf>,
    /// The program and its arguments; never empty.
    pub command: Vec<OsString>,
}

impl Default for CheckArgs {
    fn default() -> Self {
        CheckArgs {
            guard: Guard::Sample,
            quarantine_mib: DEFAULT_QUARANTINE_MIB,
            leaks: true,
            keep_going: false,
            exit_code: 1,
            log_file: None,
            suppressions: None,
            lib: None,
            command: Vec::new(),
        }
    }
}

/// The quarantine bound without `--quarantine` (AddressSanitizer's `quarantine_size_mb`).
pub const DEFAULT_QUARANTINE_MIB: u32 = 256;
/// The largest `--quarantine`: 1 TiB, far more than any machine's memory; larger values
/// are surely typos.
pub const MAX_QUARANTINE_MIB: u32 = 1 << 20;

/// Parses the arguments after `check`; `None` asks for the help text.
pub fn parse(mut args: impl Iterator<Item = OsString>) -> Result<Option<CheckArgs>, UsageError> {
    let mut c = CheckArgs::default();
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        let Some(text) = option_text(&arg) else {
            c.command.push(arg);
            break;
        };
        match text {
            "-h" | "--help" => return Ok(None),
            "--no-leaks" => c.leaks = false,
            "--keep-going" => c.keep_going = true,
            _ => {
                if let Some(v) = value("--guard", text, &mut args)? {
                    c.guard = match v.as_str() {
                        "sample" => Guard::Sample,
                        "all" => Guard::All,
                        "none" => Guard::None,
                        _ => {
                            return Err(usage(format!(
                                "`--guard` takes `sample`, `all` or `none`, not `{v}`"
                            )))
                        }
                    };
                } else if let Some(v) = value("--quarantine", text, &mut args)? {
                    c.quarantine_mib = v
                        .parse::<u32>()
                        .ok()
                        .filter(|m| *m <= MAX_QUARANTINE_MIB)
                        .ok_or_else(|| {
                            usage(format!(
                                "`--quarantine` takes a size in MiB from 0 to {MAX_QUARANTINE_MIB}, not `{v}`"
                            ))
                        })?;
                } else if let Some(v) = value("--exit-code", text, &mut args)? {
                    c.exit_code = v.parse::<u8>().map_err(|_| {
                        usage(format!(
                            "`--exit-code` takes an exit status from 0 to 255, not `{v}`"
                        ))
                    })?;
                } else if let Some(p) = path_option("--log-file", text, &mut args)? {
                    c.log_file = Some(p);
                } else if let Some(p) = path_option("--suppressions", text, &mut args)? {
                    c.suppressions = Some(p);
                } else if let Some(p) = path_option("--lib", text, &mut args)? {
                    c.lib = Some(p);
                } else {
                    return Err(usage(format!(
                        "unknown option `{text}` for `memward check` (put the command after `--` if it starts with `-`)"
                    )));
                }
            }
        }
    }
    c.command.extend(args);
    if c.command.is_empty() {
        return Err(usage(
            "missing command to check (usage: memward check [OPTIONS] [--] CMD [ARGS...])",
        ));
    }
    Ok(Some(c))
}

/// `--name VALUE` or `--name=VALUE` as UTF-8 text; `None` if `text` is not this option.
/// A missing or empty value is a usage error naming the option.
fn value(
    name: &str,
    text: &str,
    args: &mut impl Iterator<Item = OsString>,
) -> Result<Option<String>, UsageError> {
    let v = if text == name {
        args.next()
    } else if let Some(v) = text.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
        Some(OsString::from(v))
    } else {
        return Ok(None);
    };
    match v {
        Some(v) if !v.is_empty() => Ok(Some(v.to_string_lossy().into_owned())),
        _ => Err(usage(format!("option `{name}` needs a value"))),
    }
}

/// The environment of the checked command: `(name, Some(value))` to set, `(name, None)`
/// to remove. Paths must already be absolute (see [`resolve_paths`]).
pub fn environment(c: &CheckArgs) -> Vec<(&'static str, Option<OsString>)> {
    let flag = |on: bool| Some(OsString::from(if on { "1" } else { "0" }));
    vec![
        ("MEMWARD_CHECK", Some("1".into())),
        ("MEMWARD_CHECK_GUARD", Some(c.guard.as_str().into())),
        (
            "MEMWARD_CHECK_QUARANTINE_MIB",
            Some(c.quarantine_mib.to_string().into()),
        ),
        ("MEMWARD_CHECK_LEAKS", flag(c.leaks)),
        ("MEMWARD_CHECK_KEEP_GOING", flag(c.keep_going)),
        (
            "MEMWARD_CHECK_EXIT_CODE",
            Some(c.exit_code.to_string().into()),
        ),
        (
            "MEMWARD_CHECK_LOG_FILE",
            c.log_file.as_ref().map(|p| p.clone().into_os_string()),
        ),
        (
            "MEMWARD_CHECK_SUPPRESSIONS",
            c.suppressions.as_ref().map(|p| p.clone().into_os_string()),
        ),
    ]
}

/// Makes `--log-file` and `--suppressions` absolute (the command may change directory
/// before its first error) and checks them: the suppressions file must be readable, the
/// log file's directory must exist. The error is one line for the user.
pub fn resolve_paths(c: &mut CheckArgs, cwd: &Path) -> Result<(), UsageError> {
    if let Some(log) = &c.log_file {
        let log = cwd.join(log);
        let dir = log.parent().unwrap_or(Path::new("/"));
        if !dir.is_dir() {
            return Err(usage(format!(
                "`--log-file {}`: the directory {} does not exist",
                log.display(),
                dir.display()
            )));
        }
        if log.is_dir() {
            return Err(usage(format!(
                "`--log-file {}` is a directory; give a file name (the report goes to NAME.<pid>)",
                log.display()
            )));
        }
        c.log_file = Some(log);
    }
    if let Some(sup) = &c.suppressions {
        let sup = cwd.join(sup);
        if let Err(e) = std::fs::File::open(&sup).and_then(|f| {
            if f.metadata()?.is_file() {
                Ok(())
            } else {
                Err(std::io::Error::other("not a regular file"))
            }
        }) {
            return Err(usage(format!(
                "cannot read the suppressions file {}: {e}",
                sup.display()
            )));
        }
        c.suppressions = Some(sup);
    }
    Ok(())
}

/// Runs the command under the checker by exec; returns only on failure, with the exit
/// status to exit with.
pub fn run(mut c: CheckArgs) -> i32 {
    let exe = std::env::current_exe().ok();
    let lib = crate::library_or_exit(c.lib.take(), exe.as_deref());
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => crate::fail(
            crate::EXIT_INTERNAL,
            &format!("cannot find the working directory: {e}"),
        ),
    };
    if let Err(e) = resolve_paths(&mut c, &cwd) {
        crate::fail(crate::EXIT_USAGE, &e.0);
    }
    let program = &c.command[0];
    let mut cmd = Command::new(program);
    cmd.args(&c.command[1..]).env(
        "LD_PRELOAD",
        crate::preload_value(&lib, std::env::var_os("LD_PRELOAD").as_deref()),
    );
    for (name, value) in environment(&c) {
        match value {
            Some(v) => cmd.env(name, v),
            None => cmd.env_remove(name),
        };
    }
    // exec returns only if it failed.
    let e = cmd.exec();
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

/// `memward check --help`.
pub const CHECK_HELP: &str = "\
memward check: run a command under memward's memory-error checker

Usage:
  memward check [OPTIONS] [--] CMD [ARGS...]

Options (only before CMD; everything from CMD on is passed to CMD unchanged):
  --guard sample|all|none  guard pages: on a sample of blocks (default), on every block
                           (reads after free, accesses past the end at the instruction;
                           slow, a page or two per block), or on none
  --quarantine MIB         cap on freed memory held back before reuse (default 256;
                           below it, twice the live heap and at least 16 MiB)
  --no-leaks               no leak check at exit
  --keep-going             report each error and continue (default: stop at the first)
  --exit-code N            exit status after an error or a leak (default 1)
  --log-file PATH          also write the reports to PATH.<pid>
  --suppressions FILE      errors and leaks not to report (format: memward-check README)
  --lib PATH               preload this library instead of the one found automatically
  -h, --help               show this help

Reports name errors as AddressSanitizer does (heap-use-after-free, heap-buffer-overflow,
double-free, bad-free, alloc-dealloc-mismatch, new-delete-type-mismatch, leaks), with
the stacks of the access, the free and the allocation. Programs need no rebuild.

Exit status: CMD's own, or N (--exit-code) after an error or a leak; 2 for a
command-line error; 125 if the library is not found; 126 if CMD cannot be executed;
127 if CMD was not found.
";

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Option<CheckArgs>, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    fn ok(args: &[&str]) -> CheckArgs {
        p(args).unwrap().unwrap()
    }

    fn err(args: &[&str]) -> String {
        match p(args) {
            Err(UsageError(m)) => m,
            other => panic!("{args:?} parsed as {other:?}, expected an error"),
        }
    }

    fn env_of(c: &CheckArgs) -> Vec<(String, Option<String>)> {
        environment(c)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.map(|v| v.into_string().unwrap())))
            .collect()
    }

    fn get(env: &[(String, Option<String>)], name: &str) -> Option<String> {
        env.iter()
            .find(|(k, _)| k == name)
            .unwrap_or_else(|| panic!("{name} neither set nor removed"))
            .1
            .clone()
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = ok(&["prog"]);
        assert_eq!(c.command, [OsString::from("prog")]);
        let env = env_of(&c);
        assert_eq!(get(&env, "MEMWARD_CHECK").as_deref(), Some("1"));
        assert_eq!(get(&env, "MEMWARD_CHECK_GUARD").as_deref(), Some("sample"));
        assert_eq!(
            get(&env, "MEMWARD_CHECK_QUARANTINE_MIB").as_deref(),
            Some("256")
        );
        assert_eq!(get(&env, "MEMWARD_CHECK_LEAKS").as_deref(), Some("1"));
        assert_eq!(get(&env, "MEMWARD_CHECK_KEEP_GOING").as_deref(), Some("0"));
        assert_eq!(get(&env, "MEMWARD_CHECK_EXIT_CODE").as_deref(), Some("1"));
        // Not given: removed, so a value from the caller's environment cannot leak in.
        assert_eq!(get(&env, "MEMWARD_CHECK_LOG_FILE"), None);
        assert_eq!(get(&env, "MEMWARD_CHECK_SUPPRESSIONS"), None);
    }

    #[test]
    fn every_option_becomes_its_variable() {
        let c = ok(&[
            "--guard",
            "all",
            "--quarantine",
            "16",
            "--no-leaks",
            "--keep-going",
            "--exit-code",
            "23",
            "--log-file",
            "/tmp/report",
            "--suppressions",
            "/etc/sup",
            "--lib",
            "/l.so",
            "--",
            "prog",
            "-x",
        ]);
        assert_eq!(c.lib, Some(PathBuf::from("/l.so")));
        assert_eq!(c.command, [OsString::from("prog"), OsString::from("-x")]);
        let env = env_of(&c);
        assert_eq!(get(&env, "MEMWARD_CHECK_GUARD").as_deref(), Some("all"));
        assert_eq!(
            get(&env, "MEMWARD_CHECK_QUARANTINE_MIB").as_deref(),
            Some("16")
        );
        assert_eq!(get(&env, "MEMWARD_CHECK_LEAKS").as_deref(), Some("0"));
        assert_eq!(get(&env, "MEMWARD_CHECK_KEEP_GOING").as_deref(), Some("1"));
        assert_eq!(get(&env, "MEMWARD_CHECK_EXIT_CODE").as_deref(), Some("23"));
        assert_eq!(
            get(&env, "MEMWARD_CHECK_LOG_FILE").as_deref(),
            Some("/tmp/report")
        );
        assert_eq!(
            get(&env, "MEMWARD_CHECK_SUPPRESSIONS").as_deref(),
            Some("/etc/sup")
        );
    }

    #[test]
    fn equals_forms_and_guard_values() {
        for g in ["sample", "all", "none"] {
            let c = ok(&[&format!("--guard={g}"), "prog"]);
            assert_eq!(c.guard.as_str(), g);
        }
        let c = ok(&["--quarantine=0", "--exit-code=0", "prog"]);
        assert_eq!((c.quarantine_mib, c.exit_code), (0, 0));
        let c = ok(&["--quarantine", "1048576", "prog"]);
        assert_eq!(c.quarantine_mib, MAX_QUARANTINE_MIB);
        let c = ok(&["--log-file=r", "--suppressions=s", "prog"]);
        assert_eq!(c.log_file, Some(PathBuf::from("r")));
        assert_eq!(c.suppressions, Some(PathBuf::from("s")));
    }

    #[test]
    fn options_after_the_command_belong_to_it() {
        let c = ok(&["prog", "--guard", "all", "--no-leaks"]);
        assert_eq!(c.guard, Guard::Sample);
        assert!(c.leaks);
        assert_eq!(c.command.len(), 4);
        let c = ok(&["--", "--odd-name", "--"]);
        assert_eq!(
            c.command,
            [OsString::from("--odd-name"), OsString::from("--")]
        );
    }

    #[test]
    fn bad_values_are_explained_in_one_line() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "missing command to check"),
            (&["--no-leaks"], "missing command"),
            (
                &["--guard", "al", "prog"],
                "`sample`, `all` or `none`, not `al`",
            ),
            (&["--guard"], "`--guard` needs a value"),
            (&["--guard=", "prog"], "`--guard` needs a value"),
            (
                &["--quarantine", "-1", "prog"],
                "from 0 to 1048576, not `-1`",
            ),
            (&["--quarantine", "1048577", "prog"], "not `1048577`"),
            (&["--quarantine", "12M", "prog"], "size in MiB"),
            (&["--exit-code", "256", "prog"], "from 0 to 255, not `256`"),
            (&["--exit-code", "x", "prog"], "exit status"),
            (&["--exit-code"], "needs a value"),
            (&["--log-file"], "`--log-file` needs a path"),
            (
                &["--suppressions=", "prog"],
                "`--suppressions` needs a path",
            ),
            (&["--guard-all", "prog"], "unknown option `--guard-all`"),
            (&["--leaks", "prog"], "unknown option `--leaks`"),
            (&["-x", "prog"], "put the command after `--`"),
        ];
        for (args, want) in cases {
            let m = err(args);
            assert!(m.contains(want) && !m.contains('\n'), "{args:?}: {m:?}");
        }
    }

    #[test]
    fn help() {
        assert_eq!(p(&["--help"]).unwrap(), None);
        assert_eq!(p(&["--no-leaks", "-h", "prog"]).unwrap(), None);
        assert!(CHECK_HELP.lines().count() <= 40);
        assert!(CHECK_HELP.lines().all(|l| l.len() <= 90), "{CHECK_HELP}");
    }

    #[test]
    fn paths_are_made_absolute_and_checked() {
        let dir = crate::private_temp_dir().unwrap();
        let sup = dir.join("sup.txt");
        std::fs::write(&sup, "leak:foo\n").unwrap();
        let mut c = ok(&["--log-file", "rep", "--suppressions", "sup.txt", "prog"]);
        resolve_paths(&mut c, &dir).unwrap();
        assert_eq!(c.log_file, Some(dir.join("rep")));
        assert_eq!(c.suppressions, Some(sup.clone()));

        let mut c = ok(&["--log-file", "no/such/dir/rep", "prog"]);
        let e = resolve_paths(&mut c, &dir).unwrap_err().0;
        assert!(e.contains("does not exist"), "{e}");
        let mut c = ok(&["--log-file", ".", "prog"]);
        let e = resolve_paths(&mut c, &dir).unwrap_err().0;
        assert!(e.contains("is a directory"), "{e}");
        let mut c = ok(&["--suppressions", "missing.txt", "prog"]);
        let e = resolve_paths(&mut c, &dir).unwrap_err().0;
        assert!(
            e.contains("cannot read the suppressions file") && e.contains("missing.txt"),
            "{e}"
        );
        let mut c = ok(&["--suppressions", ".", "prog"]);
        let e = resolve_paths(&mut c, &dir).unwrap_err().0;
        assert!(e.contains("suppressions"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
