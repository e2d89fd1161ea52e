//! The end-of-run report: what the library wrote at the child's exit (`key value` lines in
//! `$MEMWARD_SUMMARY_FILE.<pid>`), plus what memward measured itself.

use std::fmt::Write;
use std::time::Duration;

/// The allocator's figures for one process, as written by libmemward.so at exit. A key the
/// file lacks stays `None` (printed as unknown), so an older or newer library still works.
#[derive(Debug, Default, PartialEq, Eq, Clone)]
pub struct AllocSummary {
    pub peak_in_use_bytes: Option<u64>,
    pub in_use_bytes: Option<u64>,
    pub allocations: Option<u64>,
    pub frees: Option<u64>,
    pub mapped_bytes: Option<u64>,
    pub peak_mapped_bytes: Option<u64>,
    pub resident_bytes: Option<u64>,
}

impl AllocSummary {
    /// Parses the library's summary file. Unknown keys and malformed lines are ignored:
    /// the summary is informational and must not make a successful run fail.
    pub fn parse(text: &str) -> AllocSummary {
        let mut s = AllocSummary::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(key), Some(value), None) = (words.next(), words.next(), words.next()) else {
                continue;
            };
            let Ok(value) = value.parse::<u64>() else {
                continue;
            };
            let slot = match key {
                "peak_in_use_bytes" => &mut s.peak_in_use_bytes,
                "in_use_bytes" => &mut s.in_use_bytes,
                "allocations" => &mut s.allocations,
                "frees" => &mut s.frees,
                "mapped_bytes" => &mut s.mapped_bytes,
                "peak_mapped_bytes" => &mut s.peak_mapped_bytes,
                "resident_bytes" => &mut s.resident_bytes,
                _ => continue,
            };
            *slot = Some(value);
        }
        s
    }
}

/// How the child ended, decoded from its wait status.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Ending {
    Exited(i32),
    Signalled(i32),
}

impl Ending {
    /// Decodes a `wait4` status.
    pub fn from_wait_status(status: i32) -> Ending {
        if libc::WIFSIGNALED(status) {
            Ending::Signalled(libc::WTERMSIG(status))
        } else {
            Ending::Exited(libc::WEXITSTATUS(status))
        }
    }

    /// memward's own exit status: the child's, or 128+N for signal N as shells report it.
    pub fn exit_code(self) -> i32 {
        match self {
            Ending::Exited(code) => code,
            Ending::Signalled(sig) => 128 + sig,
        }
    }
}

/// Everything the report shows.
#[derive(Debug)]
pub struct Report<'a> {
    pub command: &'a str,
    pub pid: i32,
    pub ending: Ending,
    pub elapsed: Duration,
    /// `ru_maxrss` from `wait4`, in KiB.
    pub max_rss_kib: u64,
    /// The library's figures for the child, if it wrote them.
    pub alloc: Option<AllocSummary>,
    /// How many other processes (the child's descendants) also wrote a summary.
    pub other_processes: usize,
}

impl Report<'_> {
    /// The report as text (a dozen lines), for stderr.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "memward: summary of `{}` (pid {})",
            self.command, self.pid
        );
        let ending = match self.ending {
            Ending::Exited(code) => format!("exited with status {code}"),
            Ending::Signalled(sig) => format!(
                "killed by signal {sig} ({}), status {}",
                signal_name(sig),
                self.ending.exit_code()
            ),
        };
        let _ = writeln!(o, "  {:<15}{ending}", "result");
        let _ = writeln!(o, "  {:<15}{:.3} s", "run time", self.elapsed.as_secs_f64());
        match &self.alloc {
            Some(a) => {
                let rows = [
                    ("peak in use", bytes(a.peak_in_use_bytes)),
                    ("final in use", bytes(a.in_use_bytes)),
                    ("allocations", count(a.allocations)),
                    ("frees", count(a.frees)),
                    ("peak mapped", bytes(a.peak_mapped_bytes)),
                    ("final mapped", bytes(a.mapped_bytes)),
                    ("final resident", bytes(a.resident_bytes)),
                ];
                for (label, value) in rows {
                    let _ = writeln!(o, "  {label:<15}{value}");
                }
            }
            None => {
                let why = match self.ending {
                    Ending::Signalled(_) => "killed by a signal",
                    Ending::Exited(_) => "exited by _exit(), or did not load the library",
                };
                let _ = writeln!(o, "  {:<15}not reported: {why}", "allocator");
            }
        }
        let _ = writeln!(
            o,
            "  {:<15}{}",
            "peak RSS",
            bytes(Some(self.max_rss_kib.saturating_mul(1024)))
        );
        if self.other_processes > 0 {
            let _ = writeln!(
                o,
                "  {:<15}{} more ran on memward (not counted above)",
                "processes", self.other_processes
            );
        }
        o
    }
}

/// `12.3 MiB (12,897,484 bytes)`, or `?` if unknown.
pub fn bytes(n: Option<u64>) -> String {
    let Some(n) = n else {
        return "?".to_string();
    };
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {} ({} bytes)", UNITS[unit], group(n))
}

fn count(n: Option<u64>) -> String {
    n.map_or_else(|| "?".to_string(), group)
}

/// Digits grouped by thousands: `1,234,567`.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The conventional name of a signal, for the report.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => "signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_library_format() {
        let text = "peak_in_use_bytes 1000\nin_use_bytes 10\nallocations 5\nfrees 4\n\
                    mapped_bytes 4194304\npeak_mapped_bytes 8388608\nresident_bytes 65536\n";
        let s = AllocSummary::parse(text);
        assert_eq!(
            s,
            AllocSummary {
                peak_in_use_bytes: Some(1000),
                in_use_bytes: Some(10),
                allocations: Some(5),
                frees: Some(4),
                mapped_bytes: Some(4194304),
                peak_mapped_bytes: Some(8388608),
                resident_bytes: Some(65536),
            }
        );
    }

    #[test]
    fn tolerates_unknown_missing_and_malformed_lines() {
        let s =
            AllocSummary::parse("future_key 7\nallocations x\nfrees 3 4\n\n  in_use_bytes   9  \n");
        assert_eq!(s.in_use_bytes, Some(9));
        assert_eq!(s.allocations, None);
        assert_eq!(s.frees, None);
        assert_eq!(s.peak_in_use_bytes, None);
    }

    #[test]
    fn exit_codes() {
        // Linux wait status layout: exit code in bits 8..16; signal in the low 7 bits.
        assert_eq!(Ending::from_wait_status(0), Ending::Exited(0));
        assert_eq!(Ending::from_wait_status(3 << 8), Ending::Exited(3));
        assert_eq!(Ending::from_wait_status(255 << 8).exit_code(), 255);
        let segv = Ending::from_wait_status(libc::SIGSEGV);
        assert_eq!(segv, Ending::Signalled(libc::SIGSEGV));
        assert_eq!(segv.exit_code(), 139);
        // Core-dump flag (0x80) does not change the signal.
        assert_eq!(
            Ending::from_wait_status(libc::SIGABRT | 0x80).exit_code(),
            128 + libc::SIGABRT
        );
    }

    #[test]
    fn formats_numbers() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
        assert_eq!(bytes(None), "?");
        assert_eq!(bytes(Some(1023)), "1023 bytes");
        assert_eq!(bytes(Some(1536)), "1.5 KiB (1,536 bytes)");
        assert_eq!(bytes(Some(3 << 20)), "3.0 MiB (3,145,728 bytes)");
        assert_eq!(
            bytes(Some(u64::MAX)),
            "16.0 EiB (18,446,744,073,709,551,615 bytes)"
        );
    }

    fn report(alloc: Option<AllocSummary>, ending: Ending, others: usize) -> String {
        Report {
            command: "prog a b",
            pid: 42,
            ending,
            elapsed: Duration::from_millis(1500),
            max_rss_kib: 2048,
            alloc,
            other_processes: others,
        }
        .render()
    }

    #[test]
    fn renders_a_full_report() {
        let a = AllocSummary::parse(
            "peak_in_use_bytes 2048\nin_use_bytes 0\nallocations 12\nfrees 12\n",
        );
        let r = report(Some(a), Ending::Exited(0), 2);
        assert!(
            r.starts_with("memward: summary of `prog a b` (pid 42)\n"),
            "{r}"
        );
        for want in [
            "exited with status 0",
            "run time       1.500 s",
            "peak in use    2.0 KiB (2,048 bytes)",
            "final in use   0 bytes",
            "allocations    12",
            "frees          12",
            "peak mapped    ?",
            "peak RSS       2.0 MiB (2,097,152 bytes)",
            "processes      2 more ran on memward",
        ] {
            assert!(r.contains(want), "missing {want:?} in\n{r}");
        }
        assert!(r.lines().count() <= 24, "{r}");
    }

    #[test]
    fn renders_missing_allocator_figures() {
        let r = report(None, Ending::Signalled(libc::SIGKILL), 0);
        assert!(
            r.contains("killed by signal 9 (SIGKILL), status 137"),
            "{r}"
        );
        assert!(r.contains("not reported: killed by a signal"), "{r}");
        assert!(!r.contains("more ran"), "{r}");
        let r = report(None, Ending::Exited(0), 1);
        assert!(r.contains("did not load the library"), "{r}");
        assert!(r.contains("1 more ran on memward"), "{r}");
        assert!(r.lines().all(|l| l.len() <= 80), "{r}");
    }
}
