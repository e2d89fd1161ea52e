//! Folded stacks and the flamegraph SVG.
//!
//! Folded stacks are the lingua franca of flamegraph tools: one line per distinct stack,
//! root first, frames separated by `;`, then the count. Frames are function names only
//! (inlined ones included), so stacks that differ only in call-site lines merge, as in
//! heaptrack's `-F` output; the lines come out sorted, which inferno and flamegraph.pl
//! expect. The SVG is inferno's rendering of the same lines with the memory palette.

use super::{Metric, Report};
use crate::Error;
use std::collections::BTreeMap;
use std::io::{self, Write};

/// The folded lines (`stack count`), merged and sorted; stacks with a zero count are left
/// out.
pub(crate) fn folded_lines(r: &Report, metric: Metric) -> Vec<String> {
    let mut merged: BTreeMap<String, u64> = BTreeMap::new();
    for (id, site) in r.analysis.active_sites() {
        let count = metric.of(site);
        if count == 0 {
            continue;
        }
        let mut names: Vec<String> = r.frames(id).map(|(_, f)| clean(&f.name)).collect();
        if names.is_empty() {
            names.push("[no stack]".into());
        }
        names.reverse();
        *merged.entry(names.join(";")).or_default() += count;
    }
    merged
        .into_iter()
        .map(|(stack, count)| format!("{stack} {count}"))
        .collect()
}

/// A frame name safe inside a folded line (no `;`, no line breaks).
fn clean(name: &str) -> String {
    name.replace(';', ":").replace(['\n', '\r'], " ")
}

pub(super) fn write_folded(r: &Report, metric: Metric, out: &mut dyn Write) -> io::Result<()> {
    for line in folded_lines(r, metric) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

pub(super) fn write_svg(r: &Report, metric: Metric, out: &mut dyn Write) -> Result<(), Error> {
    use inferno::flamegraph::{color::BasicPalette, Options, Palette};
    let lines = folded_lines(r, metric);
    let mut opts = Options::default();
    opts.title = format!(
        "memward: {} of {}",
        match metric {
            Metric::Peak => "bytes live at the peak",
            Metric::Allocated => "bytes allocated",
            Metric::Leaked => "bytes leaked",
            Metric::Allocations => "allocations",
            Metric::Temporary => "temporary allocations",
        },
        r.analysis.process.command()
    );
    opts.count_name = metric.unit().to_owned();
    opts.colors = Palette::Basic(BasicPalette::Mem);
    if lines.is_empty() {
        // inferno refuses empty input; an empty profile still gets a valid SVG.
        return write_empty_svg(&opts.title, out).map_err(|e| Error::write(None, e));
    }
    inferno::flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), out)
        .map_err(|e| Error::write(None, io::Error::other(e.to_string())))
}

fn write_empty_svg(title: &str, out: &mut dyn Write) -> io::Result<()> {
    let title = title.replace('&', "&amp;").replace('<', "&lt;");
    write!(
        out,
        "<?xml version=\"1.0\" standalone=\"no\"?>\n<svg version=\"1.1\" width=\"1200\" height=\"60\" \
         xmlns=\"http://www.w3.org/2000/svg\"><text x=\"600\" y=\"24\" text-anchor=\"middle\">{title}</text>\
         <text x=\"600\" y=\"48\" text-anchor=\"middle\">no samples</text></svg>\n"
    )
}
