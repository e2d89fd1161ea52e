//! `memward report`: turns a heap profile into text, HTML, massif, DHAT, pprof, folded
//! stacks or a flamegraph SVG, or compares two profiles (`--diff`). The work is in the
//! `memward-report` crate; this module parses the subcommand's arguments (by hand, as
//! `args.rs` does) and writes the result where `-o` says.

use crate::args::{usage, UsageError};
use memward_report::{Format, Metric, Report};
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `memward report`.
#[derive(Debug, PartialEq, Eq)]
pub struct ReportArgs {
    /// What to read: one profile, or two to compare.
    pub input: Input,
    /// `--format`.
    pub format: Format,
    /// `--metric` (folded stacks and the flamegraph SVG).
    pub metric: Metric,
    /// `-o OUT` (default: standard output).
    pub output: Option<PathBuf>,
}

/// The profile(s) `memward report` reads.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    /// `memward report FILE`.
    One(PathBuf),
    /// `memward report --diff OLD NEW`.
    Diff(PathBuf, PathBuf),
}

/// `memward report --help`.
pub const REPORT_HELP: &str = "\
memward report: turn a heap profile from `memward profile` into a report

Usage:
  memward report FILE [--format FORMAT] [--metric METRIC] [-o OUT]
  memward report --diff OLD NEW [-o OUT]

Formats (--format, default text):
  text        peak heap and when, top peak consumers, leaks with their sites, most
              allocations, most temporary allocations, block sizes
  html        one self-contained page: explorable flamegraph and heap/RSS timeline
  massif      valgrind massif's format (ms_print, massif-visualizer)
  dhat        valgrind DHAT's JSON (open it in dh_view.html)
  pprof       gzipped profile.proto (go tool pprof -top OUT)
  folded      folded stacks, one `root;...;leaf COUNT` line per stack
  flamegraph  a flamegraph SVG

Metrics for folded and flamegraph (--metric, default peak): peak (bytes live at the
peak), allocated (bytes), leaked (bytes live at exit), allocations, temporary.

--diff compares two profiles site by site (matched by function names) and lists what
grew. Output goes to standard output unless -o OUT names a file.

Exit status: 0 on success; 1 if a profile cannot be read or the output written; 2 for
a command-line error.
";

fn path_value(name: &str, v: Option<OsString>) -> Result<PathBuf, UsageError> {
    match v {
        Some(v) if !v.is_empty() => Ok(PathBuf::from(v)),
        _ => Err(usage(format!("option `{name}` needs a path"))),
    }
}

/// Parses the arguments after `report`; `Ok(None)` means `--help`.
pub fn parse(mut args: impl Iterator<Item = OsString>) -> Result<Option<ReportArgs>, UsageError> {
    let mut files = Vec::new();
    let mut diff = false;
    let mut format = None;
    let mut metric = None;
    let mut output = None;
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str().filter(|t| t.len() > 1 && t.starts_with('-')) else {
            files.push(PathBuf::from(arg));
            continue;
        };
        let (name, inline) = match text.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(OsString::from(v))),
            _ => (text.to_owned(), None),
        };
        let mut value = || inline.clone().or_else(|| args.next());
        match name.as_str() {
            "-h" | "--help" => return Ok(None),
            "--diff" => diff = true,
            "-o" | "--output" => output = Some(path_value(&name, value())?),
            "--format" => {
                let v = value().unwrap_or_default();
                let v = v.to_string_lossy();
                format = Some(Format::from_name(&v).ok_or_else(|| {
                    usage(format!(
                        "unknown format `{v}` (text, html, massif, dhat, pprof, folded, flamegraph)"
                    ))
                })?);
            }
            "--metric" => {
                let v = value().unwrap_or_default();
                let v = v.to_string_lossy();
                metric = Some(Metric::from_name(&v).ok_or_else(|| {
                    usage(format!(
                        "unknown metric `{v}` (peak, allocated, leaked, allocations, temporary)"
                    ))
                })?);
            }
            "--" => files.extend(args.by_ref().map(PathBuf::from)),
            _ => {
                return Err(usage(format!(
                    "unknown option `{text}` for `memward report`"
                )))
            }
        }
    }
    let input = match (diff, files.len()) {
        (false, 1) => Input::One(files.remove(0)),
        (true, 2) => Input::Diff(files.remove(0), files.remove(0)),
        (false, 0) => {
            return Err(usage(
                "missing profile (usage: memward report FILE [--format FORMAT] [-o OUT])",
            ))
        }
        (false, _) => {
            return Err(usage(
                "one profile at a time (to compare two: memward report --diff OLD NEW)",
            ))
        }
        (true, _) => {
            return Err(usage(
                "--diff takes two profiles: memward report --diff OLD NEW",
            ))
        }
    };
    if diff && format.is_some_and(|f| f != Format::Text) {
        return Err(usage("--diff writes text only"));
    }
    Ok(Some(ReportArgs {
        input,
        format: format.unwrap_or(Format::Text),
        metric: metric.unwrap_or(Metric::Peak),
        output,
    }))
}

/// Runs `memward report`; returns a one-line error message on failure.
pub fn run(a: &ReportArgs) -> Result<(), String> {
    let mut bytes = Vec::new();
    match &a.input {
        Input::One(path) => {
            let report = Report::open(path).map_err(|e| e.to_string())?;
            report
                .write(a.format, a.metric, &mut bytes)
                .map_err(|e| e.to_string())?;
        }
        Input::Diff(old, new) => {
            let old = Report::open(old).map_err(|e| e.to_string())?;
            let new = Report::open(new).map_err(|e| e.to_string())?;
            bytes = memward_report::diff(&old, &new).into_bytes();
        }
    }
    match &a.output {
        Some(out) => {
            std::fs::write(out, &bytes).map_err(|e| format!("{}: cannot write: {e}", out.display()))
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(&bytes).and_then(|()| stdout.flush()) {
                // `memward report p | head` is fine.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                r => r.map_err(|e| format!("cannot write to standard output: {e}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Option<ReportArgs>, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn formats_outputs_and_diff() {
        let a = p(&["prof", "--format", "dhat", "-o", "out.json"])
            .unwrap()
            .unwrap();
        assert_eq!(a.input, Input::One("prof".into()));
        assert_eq!(a.format, Format::Dhat);
        assert_eq!(a.output, Some("out.json".into()));
        let a = p(&["--format=folded", "--metric=leaked", "prof"])
            .unwrap()
            .unwrap();
        assert_eq!((a.format, a.metric), (Format::Folded, Metric::Leaked));
        let a = p(&["prof"]).unwrap().unwrap();
        assert_eq!(
            (a.format, a.metric, a.output),
            (Format::Text, Metric::Peak, None)
        );
        let a = p(&["--diff", "old", "new"]).unwrap().unwrap();
        assert_eq!(a.input, Input::Diff("old".into(), "new".into()));
        assert_eq!(p(&["--help"]).unwrap(), None);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = |args: &[&str]| p(args).unwrap_err().0;
        assert!(e(&[]).contains("missing profile"));
        assert!(e(&["a", "b"]).contains("one profile at a time"));
        assert!(e(&["--diff", "a"]).contains("two profiles"));
        assert!(e(&["a", "--format", "svg"]).contains("unknown format `svg`"));
        assert!(e(&["a", "--metric", "x"]).contains("unknown metric"));
        assert!(e(&["a", "-o"]).contains("needs a path"));
        assert!(e(&["a", "--bogus"]).contains("unknown option `--bogus`"));
        assert!(e(&["--diff", "a", "b", "--format", "html"]).contains("text only"));
    }

    #[test]
    fn help_fits_a_screen() {
        assert!(REPORT_HELP.lines().count() <= 40);
        assert!(REPORT_HELP.lines().all(|l| l.len() <= 90));
    }
}
