//! `memward report --diff OLD NEW`: what grew between two runs.
//!
//! Addresses differ between runs (ASLR, rebuilds), so sites are matched by their
//! symbolised stack: the function names, innermost first, inlined frames included, without
//! lines (an edit elsewhere in a file moves lines but not the site). Sites with the same
//! names within one run are added together. The table lists the sites whose peak, leaked
//! or allocated bytes changed most, signed (`+` grew).

use super::text::{bytes, thousands};
use super::Report;
use crate::Site;
use std::collections::HashMap;
use std::fmt::Write;

/// Sites listed.
const TOP: usize = 20;

#[derive(Default, Clone, Copy)]
struct Figures {
    peak: u64,
    leaked: u64,
    allocated: u64,
    calls: u64,
}

impl Figures {
    fn add(&mut self, s: &Site) {
        self.peak += s.peak_bytes;
        self.leaked += s.exit_bytes;
        self.allocated += s.total_bytes;
        self.calls += s.total_blocks;
    }
}

fn by_stack(r: &Report) -> HashMap<Vec<String>, Figures> {
    let mut map: HashMap<Vec<String>, Figures> = HashMap::new();
    for (id, s) in r.analysis.active_sites() {
        let key: Vec<String> = r.frames(id).map(|(_, f)| f.name.clone()).collect();
        map.entry(key).or_default().add(s);
    }
    map
}

fn delta(old: u64, new: u64) -> i128 {
    i128::from(new) - i128::from(old)
}

fn signed(d: i128) -> String {
    let sign = if d > 0 {
        "+"
    } else if d < 0 {
        "-"
    } else {
        " "
    };
    format!("{sign}{}", thousands(d.unsigned_abs() as u64))
}

/// The differences between two profiles as text.
///
/// ```no_run
/// use memward_report::{diff, Report};
/// let old = Report::open("before.profile".as_ref())?;
/// let new = Report::open("after.profile".as_ref())?;
/// print!("{}", diff(&old, &new));
/// # Ok::<(), memward_report::Error>(())
/// ```
pub fn diff(old: &Report, new: &Report) -> String {
    let (a, b) = (&old.analysis, &new.analysis);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "memward diff: `{}` (old) -> `{}` (new)",
        a.process.command(),
        b.process.command()
    );
    let row = |s: &mut String, what: &str, o: u64, n: u64, as_bytes: bool| {
        let f = |v| if as_bytes { bytes(v) } else { thousands(v) };
        let _ = writeln!(
            s,
            "  {what:<16} {:>32} -> {:>32}  ({})",
            f(o),
            f(n),
            signed(delta(o, n))
        );
    };
    row(&mut s, "peak heap", a.peak.bytes, b.peak.bytes, true);
    row(
        &mut s,
        "leaked at exit",
        a.totals.exit_bytes,
        b.totals.exit_bytes,
        true,
    );
    row(
        &mut s,
        "bytes allocated",
        a.totals.bytes,
        b.totals.bytes,
        true,
    );
    row(
        &mut s,
        "allocations",
        a.totals.blocks,
        b.totals.blocks,
        false,
    );
    row(
        &mut s,
        "temporary",
        a.totals.temporary_blocks,
        b.totals.temporary_blocks,
        false,
    );

    let olds = by_stack(old);
    let news = by_stack(new);
    let mut keys: Vec<&Vec<String>> = olds
        .keys()
        .chain(news.keys().filter(|k| !olds.contains_key(*k)))
        .collect();
    let change = |k: &Vec<String>| {
        let o = olds.get(k).copied().unwrap_or_default();
        let n = news.get(k).copied().unwrap_or_default();
        (o, n)
    };
    let weight = |k: &Vec<String>| {
        let (o, n) = change(k);
        (
            delta(o.peak, n.peak).unsigned_abs() + delta(o.leaked, n.leaked).unsigned_abs(),
            delta(o.allocated, n.allocated).unsigned_abs(),
            delta(o.calls, n.calls).unsigned_abs(),
        )
    };
    keys.retain(|k| weight(k) != (0, 0, 0));
    keys.sort_by(|x, y| weight(y).cmp(&weight(x)).then(x.cmp(y)));
    let _ = writeln!(s, "\nSITES THAT CHANGED MOST (new - old)");
    if keys.is_empty() {
        let _ = writeln!(s, "  (no site changed)");
    }
    for k in keys.iter().take(TOP) {
        let (o, n) = change(k);
        let _ = writeln!(
            s,
            "  peak {} bytes, leaked {} bytes, allocated {} bytes in {} allocations{}",
            signed(delta(o.peak, n.peak)),
            signed(delta(o.leaked, n.leaked)),
            signed(delta(o.allocated, n.allocated)),
            signed(delta(o.calls, n.calls)),
            if o.calls == 0 {
                " (new site)"
            } else if n.calls == 0 {
                " (gone)"
            } else {
                ""
            }
        );
        for name in k.iter().take(5) {
            let _ = writeln!(s, "      at {name}");
        }
        if k.is_empty() {
            let _ = writeln!(s, "      (no stack recorded)");
        }
    }
    if keys.len() > TOP {
        let _ = writeln!(s, "  ... and {} more sites changed", keys.len() - TOP);
    }
    s
}
