//! The HTML report: one self-contained file (styles, script and data inline; a content
//! security policy forbids any fetch), with a flamegraph to explore (icicle layout, zoom
//! on click, five metrics, search) and a timeline of heap and RSS with the peak marked.
//!
//! The page's script is plain JavaScript in `html/report.js`, included at compile time,
//! so the report needs no web server and no network. Data is embedded as JSON: interned
//! frame names, and per site its stack (root first) with its five figures. To keep the
//! file small for huge profiles, sites that are under 0.01% of every metric are merged
//! into one "(small sites)" entry, as memray and flamegraph tools prune tiny frames.

use super::text::{bytes, duration, thousands};
use super::Report;
use serde::Serialize;
use std::collections::HashMap;
use std::io::{self, Write};

const TEMPLATE: &str = include_str!("html/report.html");
const CSS: &str = include_str!("html/report.css");
const JS: &str = include_str!("html/report.js");

/// Sites under this share of every metric's total are merged.
const SMALL: f64 = 0.0001;

#[derive(Serialize)]
struct PeakData {
    bytes: u64,
    nanos: u64,
    allocations: u64,
}

#[derive(Serialize)]
struct Data {
    frames: Vec<String>,
    /// [root-first frame indices, peak, allocated, leaked, allocations, temporary]
    sites: Vec<(Vec<usize>, u64, u64, u64, u64, u64)>,
    /// [nanos, allocations, heap bytes, rss bytes]
    timeline: Vec<(u64, u64, u64, u64)>,
    peak: PeakData,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(super) fn write(r: &Report, out: &mut dyn Write) -> io::Result<()> {
    let a = &r.analysis;
    let t = &a.totals;
    let totals = [
        a.peak.bytes,
        t.bytes,
        t.exit_bytes,
        t.blocks,
        t.temporary_blocks,
    ];
    let mut frames = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut sites = Vec::new();
    let mut small = (Vec::new(), 0, 0, 0, 0, 0);
    for (id, s) in a.active_sites() {
        let figures = [
            s.peak_bytes,
            s.total_bytes,
            s.exit_bytes,
            s.total_blocks,
            s.temporary_blocks,
        ];
        let tiny = figures
            .iter()
            .zip(totals)
            .all(|(&v, total)| (v as f64) < total as f64 * SMALL);
        if tiny {
            small.1 += figures[0];
            small.2 += figures[1];
            small.3 += figures[2];
            small.4 += figures[3];
            small.5 += figures[4];
            continue;
        }
        let mut stack: Vec<usize> = r
            .frames(id)
            .map(|(_, f)| {
                let label = f.label();
                *index.entry(label.clone()).or_insert_with(|| {
                    frames.push(label);
                    frames.len() - 1
                })
            })
            .collect();
        stack.reverse();
        sites.push((
            stack, figures[0], figures[1], figures[2], figures[3], figures[4],
        ));
    }
    if small.4 > 0 {
        frames.push("(small sites)".into());
        small.0 = vec![frames.len() - 1];
        sites.push(small);
    }
    let data = Data {
        frames,
        sites,
        timeline: a
            .timeline
            .iter()
            .map(|p| (p.nanos, p.allocations, p.heap_bytes, p.rss_bytes))
            .collect(),
        peak: PeakData {
            bytes: a.peak.bytes,
            nanos: a.peak.nanos,
            allocations: a.peak.allocations,
        },
    };
    // JSON inside <script>: no `<` may close the element early.
    let json = serde_json::to_string(&data)
        .map_err(io::Error::other)?
        .replace('<', "\\u003c");
    let figures: String = [
        (
            "Peak heap",
            format!("{} at {}", bytes(a.peak.bytes), duration(a.peak.nanos)),
        ),
        (
            "Leaked at exit",
            format!(
                "{} in {} blocks",
                bytes(t.exit_bytes),
                thousands(t.exit_blocks)
            ),
        ),
        (
            "Allocations",
            format!("{} ({})", thousands(t.blocks), bytes(t.bytes)),
        ),
        ("Temporary", thousands(t.temporary_blocks)),
        ("Peak RSS", bytes(a.max_rss_bytes)),
        ("Run time", duration(a.duration_nanos)),
    ]
    .iter()
    .map(|(k, v)| format!("<dt>{k}</dt><dd>{}</dd>", escape(v)))
    .collect();
    let title = escape(&a.process.command());
    let page = TEMPLATE
        .replace("{{CSS}}", CSS)
        .replace("{{JS}}", JS)
        .replace("{{TITLE}}", &title)
        .replace("{{FIGURES}}", &figures)
        .replace("{{TEXT}}", &escape(&r.text()))
        .replace("{{DATA}}", &json);
    out.write_all(page.as_bytes())
}
