//! The text summary: what `memward profile` prints at exit and `memward report` prints
//! by default. It follows the order people look in (heaptrack_print's sections, DHAT's
//! totals): the run in numbers, then who held memory at the peak, what leaked, who
//! allocates most often, who allocates only to free at once, and the sizes. Figures are
//! exact integers with a human-readable unit beside them, so a test can compare them.

use super::Report;
use crate::Site;
use std::fmt::Write;

/// Sites listed per section.
const TOP: usize = 10;
/// Frames shown per site.
const DEPTH: usize = 6;

pub(super) fn summary(r: &Report) -> String {
    let a = &r.analysis;
    let t = &a.totals;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "memward profile of `{}` (pid {}){}",
        a.process.command(),
        a.process.pid,
        if a.complete {
            String::new()
        } else {
            ", cut short (no end marker): figures cover what was recorded".into()
        }
    );
    if a.process.sample_rate > 0 {
        let _ = writeln!(
            s,
            "  sampled every {} bytes on average: counts and bytes are estimates",
            thousands(a.process.sample_rate)
        );
    }
    let _ = writeln!(s, "  run time:        {}", duration(a.duration_nanos));
    let _ = writeln!(
        s,
        "  allocations:     {} ({} allocated, {} reallocs), {} frees",
        thousands(t.calls),
        bytes(t.bytes),
        thousands(t.reallocs),
        thousands(t.frees)
    );
    let _ = writeln!(
        s,
        "  temporary:       {} allocations freed before any other allocation ({})",
        thousands(t.temporary_blocks),
        percent(t.temporary_blocks, t.blocks)
    );
    let _ = writeln!(
        s,
        "  peak heap:       {} in {} at {} (allocation {})",
        bytes(a.peak.bytes),
        count(a.peak.blocks, "block"),
        duration(a.peak.nanos),
        thousands(a.peak.allocations)
    );
    if a.max_rss_bytes > 0 {
        let _ = writeln!(s, "  peak RSS:        {}", bytes(a.max_rss_bytes));
    }
    let _ = writeln!(
        s,
        "  leaked at exit:  {} in {}",
        bytes(t.exit_bytes),
        count(t.exit_blocks, "block")
    );
    if t.unknown_frees > 0 {
        let _ = writeln!(
            s,
            "  ignored:         {} frees of blocks allocated before recording",
            thousands(t.unknown_frees)
        );
    }

    section(
        r,
        &mut s,
        "PEAK MEMORY CONSUMERS (live at the peak)",
        |x| x.peak_bytes,
        |x| {
            format!(
                "{} in {} ({} of the peak)",
                bytes(x.peak_bytes),
                count(x.peak_blocks, "block"),
                percent(x.peak_bytes, a.peak.bytes)
            )
        },
    );
    section(
        r,
        &mut s,
        "LEAKS (live at exit)",
        |x| x.exit_bytes,
        |x| {
            format!(
                "{} in {}",
                bytes(x.exit_bytes),
                count(x.exit_blocks, "block")
            )
        },
    );
    section(
        r,
        &mut s,
        "MOST ALLOCATIONS",
        |x| x.total_blocks,
        |x| {
            format!(
                "{}, {} in all",
                count(x.total_blocks, "allocation"),
                bytes(x.total_bytes)
            )
        },
    );
    section(
        r,
        &mut s,
        "MOST TEMPORARY ALLOCATIONS",
        |x| x.temporary_blocks,
        |x| {
            format!(
                "{} temporary of {}",
                thousands(x.temporary_blocks),
                count(x.total_blocks, "allocation")
            )
        },
    );
    let _ = writeln!(s, "\nBLOCK SIZES (requested bytes: allocations)");
    for b in a.histogram.buckets() {
        let range = if b.min == b.max {
            thousands(b.min)
        } else {
            format!("{}-{}", thousands(b.min), thousands(b.max))
        };
        let _ = writeln!(s, "  {range:>27}: {}", thousands(b.blocks));
    }
    s
}

/// Writes the top sites by `key` (those with a non-zero figure) with their stacks.
fn section(
    r: &Report,
    s: &mut String,
    title: &str,
    key: impl Fn(&Site) -> u64,
    describe: impl Fn(&Site) -> String,
) {
    let mut sites: Vec<(u32, &Site)> = r
        .analysis
        .active_sites()
        .filter(|(_, x)| key(x) > 0)
        .collect();
    let _ = writeln!(s, "\n{title}");
    if sites.is_empty() {
        let _ = writeln!(s, "  (none)");
        return;
    }
    sites.sort_by(|x, y| key(y.1).cmp(&key(x.1)).then(x.0.cmp(&y.0)));
    for (id, site) in sites.iter().take(TOP) {
        let _ = writeln!(s, "  {}", describe(site));
        let mut frames = r.frames(*id).peekable();
        if frames.peek().is_none() {
            let _ = writeln!(s, "      (no stack recorded)");
        }
        for (_, f) in frames.by_ref().take(DEPTH) {
            let _ = writeln!(s, "      at {}", f.label());
        }
        let more = frames.count();
        if more > 0 {
            let _ = writeln!(s, "      ... {more} more frames");
        }
    }
    if sites.len() > TOP {
        let rest: u64 = sites[TOP..].iter().map(|x| key(x.1)).sum();
        let _ = writeln!(
            s,
            "  ... and {} more sites ({} together)",
            sites.len() - TOP,
            thousands(rest)
        );
    }
}

/// `1 block`, `1,000 blocks`.
pub(crate) fn count(n: u64, noun: &str) -> String {
    format!("{} {noun}{}", thousands(n), if n == 1 { "" } else { "s" })
}

/// `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
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

/// `67,108,864 bytes (64.0 MiB)`: exact, with a readable unit above 1 KiB.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{} bytes ({v:.1} {})", thousands(n), UNITS[unit])
}

pub(crate) fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0%".into();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

/// `1.234 s`, `12.3 ms`.
pub(crate) fn duration(nanos: u64) -> String {
    if nanos >= 1_000_000_000 {
        format!("{:.3} s", nanos as f64 / 1e9)
    } else {
        format!("{:.1} ms", nanos as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(bytes(48), "48 bytes");
        assert_eq!(bytes(64 << 20), "67,108,864 bytes (64.0 MiB)");
        assert_eq!(percent(1, 4), "25.0%");
        assert_eq!(duration(2_000_000), "2.0 ms");
        assert_eq!(duration(1_500_000_000), "1.500 s");
    }
}
