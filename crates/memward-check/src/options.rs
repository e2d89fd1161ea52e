//! The checker's options, read once from the `MEMWARD_CHECK*` environment variables that
//! `memward check` sets (the table is in the crate README).
//!
//! Parsing is a pure function of a variable lookup, so it is tested without touching the
//! process environment. A value that does not parse is not silently replaced: the
//! checker prints one line naming the variable, the value and what it used instead, and
//! goes on (a checker that refuses to start would hide the program's own errors). A
//! suppressions file that cannot be read or parsed is different: running without the
//! suppressions the user asked for would report what they chose to hide, so that ends
//! the process with a message, as AddressSanitizer does.

use crate::suppress::Suppressions;

/// Where guard pages go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardMode {
    /// No guard pages.
    None,
    /// A sampled set of blocks (one allocation in `guard_rate` on average).
    Sample,
    /// Every block.
    All,
}

/// Everything the environment sets.
#[derive(Debug)]
pub struct Options {
    pub guard: GuardMode,
    /// Mean number of allocations between two guarded ones in `sample` mode.
    pub guard_rate: u32,
    /// Quarantine bound in bytes.
    pub quarantine_bytes: usize,
    pub leaks: bool,
    pub keep_going: bool,
    pub exit_code: i32,
    /// Base path of the log file (the report goes to `PATH.<pid>`).
    pub log_file: Option<String>,
    pub suppressions: Suppressions,
    /// Most frames kept per allocation or free stack.
    pub depth: usize,
    /// Bytes of a new block filled with `FILL_NEW` (from its start; the rest is left as
    /// the backing gave it).
    pub malloc_fill_max: usize,
    /// Bytes of a freed block filled whole with `FILL_FREED` (and checked when it leaves
    /// quarantine); beyond them, up to 64 KiB, only stripes (`block::poison_ranges`).
    pub free_fill_max: usize,
}

/// Default mean allocation count between guarded blocks in `sample` mode (GWP-ASan's is
/// 5,000; see docs/memward-check-design.md for what 64, 256 and 1,024 cost).
pub const DEFAULT_GUARD_RATE: u32 = 1024;
/// Default stack depth (AddressSanitizer's `malloc_context_size`).
pub const DEFAULT_DEPTH: usize = 30;
/// Default bytes filled in a new block (AddressSanitizer's `max_malloc_fill_size`): a
/// program that allocates a large buffer and uses its start pays for no more.
pub const DEFAULT_MALLOC_FILL_MAX: usize = 4096;
/// Default bytes poisoned whole at the start of a freed block; stripes cover the rest up
/// to 64 KiB. AddressSanitizer fills none (its shadow memory catches the access); here
/// the poison is how writes after free are found, but poisoning 64 KiB whole was a fifth
/// of `git log -p`'s checked instructions (its freed blocks average 13 KB).
pub const DEFAULT_FREE_FILL_MAX: usize = 4096;

impl Default for Options {
    fn default() -> Self {
        Options {
            guard: GuardMode::Sample,
            guard_rate: DEFAULT_GUARD_RATE,
            quarantine_bytes: 256 << 20,
            leaks: true,
            keep_going: false,
            exit_code: 1,
            log_file: None,
            suppressions: Suppressions::default(),
            depth: DEFAULT_DEPTH,
            malloc_fill_max: DEFAULT_MALLOC_FILL_MAX,
            free_fill_max: DEFAULT_FREE_FILL_MAX,
        }
    }
}

/// Reads the options through `var` (a lookup of one environment variable). Warnings
/// about values it could not use go to `warn`; an unusable suppressions file is `Err`.
pub fn parse(
    var: impl Fn(&str) -> Option<String>,
    mut warn: impl FnMut(String),
) -> Result<Options, String> {
    let mut o = Options::default();
    let mut number = |name: &str, max: u64, default: u64| -> u64 {
        match var(name) {
            None => default,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n <= max => n,
                _ => {
                    warn(format!(
                        "{name}={v}: expected a whole number up to {max}; using {default}"
                    ));
                    default
                }
            },
        }
    };
    o.quarantine_bytes = (number("MEMWARD_CHECK_QUARANTINE_MIB", 1 << 30, 256) as usize) << 20;
    o.exit_code = number("MEMWARD_CHECK_EXIT_CODE", 255, 1) as i32;
    o.guard_rate = number(
        "MEMWARD_CHECK_GUARD_RATE",
        u32::MAX as u64,
        DEFAULT_GUARD_RATE as u64,
    )
    .max(1) as u32;
    o.depth = number(
        "MEMWARD_CHECK_STACK_DEPTH",
        memward_profile::shared::MAX_FRAMES as u64,
        DEFAULT_DEPTH as u64,
    ) as usize;
    o.malloc_fill_max = number(
        "MEMWARD_CHECK_MALLOC_FILL_MAX",
        u64::MAX,
        DEFAULT_MALLOC_FILL_MAX as u64,
    ) as usize;
    o.free_fill_max = number(
        "MEMWARD_CHECK_FREE_FILL_MAX",
        u64::MAX,
        DEFAULT_FREE_FILL_MAX as u64,
    ) as usize;
    let mut flag = |name: &str, default: bool| -> bool {
        match var(name).as_deref().map(str::trim) {
            None => default,
            Some("1") => true,
            Some("0") => false,
            Some(v) => {
                warn(format!(
                    "{name}={v}: expected 0 or 1; using {}",
                    default as u8
                ));
                default
            }
        }
    };
    o.leaks = flag("MEMWARD_CHECK_LEAKS", true);
    o.keep_going = flag("MEMWARD_CHECK_KEEP_GOING", false);
    o.guard = match var("MEMWARD_CHECK_GUARD").as_deref().map(str::trim) {
        None | Some("sample") => GuardMode::Sample,
        Some("all") => GuardMode::All,
        Some("none") => GuardMode::None,
        Some(v) => {
            warn(format!(
                "MEMWARD_CHECK_GUARD={v}: expected sample, all or none; using sample"
            ));
            GuardMode::Sample
        }
    };
    o.log_file = var("MEMWARD_CHECK_LOG_FILE").filter(|p| !p.is_empty());
    if let Some(path) = var("MEMWARD_CHECK_SUPPRESSIONS").filter(|p| !p.is_empty()) {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read the suppressions file {path}: {e}"))?;
        o.suppressions = Suppressions::parse(&text).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)]) -> (Result<Options, String>, Vec<String>) {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut warnings = Vec::new();
        let o = parse(|k| map.get(k).cloned(), |w| warnings.push(w));
        (o, warnings)
    }

    #[test]
    fn defaults_match_the_table() {
        let (o, w) = with(&[]);
        let o = o.unwrap();
        assert!(w.is_empty());
        assert_eq!(o.guard, GuardMode::Sample);
        assert_eq!(o.quarantine_bytes, 256 << 20);
        assert!(o.leaks && !o.keep_going);
        assert_eq!(o.exit_code, 1);
        assert_eq!(o.log_file, None);
        assert_eq!(o.depth, 30);
        assert_eq!((o.malloc_fill_max, o.free_fill_max), (4096, 4096));
    }

    #[test]
    fn reads_every_variable() {
        let (o, w) = with(&[
            ("MEMWARD_CHECK_GUARD", "all"),
            ("MEMWARD_CHECK_QUARANTINE_MIB", "3"),
            ("MEMWARD_CHECK_LEAKS", "0"),
            ("MEMWARD_CHECK_KEEP_GOING", "1"),
            ("MEMWARD_CHECK_EXIT_CODE", "42"),
            ("MEMWARD_CHECK_LOG_FILE", "/tmp/x"),
            ("MEMWARD_CHECK_GUARD_RATE", "5"),
            ("MEMWARD_CHECK_STACK_DEPTH", "8"),
            ("MEMWARD_CHECK_MALLOC_FILL_MAX", "0"),
            ("MEMWARD_CHECK_FREE_FILL_MAX", "1000000"),
        ]);
        let o = o.unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(o.guard, GuardMode::All);
        assert_eq!(o.quarantine_bytes, 3 << 20);
        assert!(!o.leaks && o.keep_going);
        assert_eq!(o.exit_code, 42);
        assert_eq!(o.log_file.as_deref(), Some("/tmp/x"));
        assert_eq!((o.guard_rate, o.depth), (5, 8));
        assert_eq!((o.malloc_fill_max, o.free_fill_max), (0, 1_000_000));
        let (o, _) = with(&[("MEMWARD_CHECK_GUARD", "none")]);
        assert_eq!(o.unwrap().guard, GuardMode::None);
    }

    #[test]
    fn bad_values_warn_and_fall_back() {
        let (o, w) = with(&[
            ("MEMWARD_CHECK_GUARD", "most"),
            ("MEMWARD_CHECK_EXIT_CODE", "-3"),
            ("MEMWARD_CHECK_KEEP_GOING", "yes"),
        ]);
        let o = o.unwrap();
        assert_eq!(o.guard, GuardMode::Sample);
        assert_eq!(o.exit_code, 1);
        assert!(!o.keep_going);
        assert_eq!(w.len(), 3);
        assert!(w[0].contains("MEMWARD_CHECK_EXIT_CODE=-3"), "{w:?}");
    }

    #[test]
    fn an_unreadable_suppressions_file_is_an_error() {
        let (o, _) = with(&[("MEMWARD_CHECK_SUPPRESSIONS", "/nonexistent/supp.txt")]);
        let e = o.unwrap_err();
        assert!(
            e.contains("cannot read the suppressions file /nonexistent/supp.txt"),
            "{e}"
        );
    }
}
