//! valgrind massif's output format (`massif.out.PID`), for `ms_print` and
//! massif-visualizer.
//!
//! Massif takes snapshots of the heap during the run; some carry a tree of who holds the
//! memory. The time unit here is massif's `B` (bytes allocated plus bytes freed so far),
//! one of the three units `ms_print` accepts, and deterministic, unlike wall time at the
//! 10 ms resolution of the profile's clock. The snapshots are taken during the analysis'
//! single pass (`analysis/snapshots.rs`, culled as massif culls its own); the peak
//! snapshot, massif's `peak`, comes from the exact per-site figures at the peak and is
//! placed in time order. Trees follow massif's layout: the root, then the functions that
//! called the allocator, then their callers; children sorted by bytes, those under 1% of
//! the snapshot's heap folded into one "below massif's threshold" node; one space of
//! indent per level. `#` is replaced in labels, since `ms_print` cuts lines at `#`.

use super::Report;
use crate::analysis::snapshots::Snapshot;
use std::collections::HashMap;
use std::io::{self, Write};

/// Children below this share of the snapshot's heap are folded together (massif's 1%).
const THRESHOLD: f64 = 0.01;

pub(super) fn write(r: &Report, out: &mut dyn Write) -> io::Result<()> {
    let a = &r.analysis;
    let mut snapshots: Vec<(Snapshot, bool)> =
        a.snapshots.iter().map(|s| (s.clone(), false)).collect();
    if a.peak.bytes > 0 {
        let peak = Snapshot {
            time: a.peak_churn,
            heap: a.peak.bytes,
            sites: Some(
                a.active_sites()
                    .filter(|(_, s)| s.peak_bytes > 0)
                    .map(|(id, s)| (id, s.peak_bytes))
                    .collect(),
            ),
        };
        let at = snapshots.partition_point(|(s, _)| s.time <= peak.time);
        snapshots.insert(at, (peak, true));
    }
    if snapshots.is_empty() {
        snapshots.push((
            Snapshot {
                time: 0,
                heap: 0,
                sites: None,
            },
            false,
        ));
    }
    write_file(r, &snapshots, out)
}

fn write_file(r: &Report, snapshots: &[(Snapshot, bool)], out: &mut dyn Write) -> io::Result<()> {
    let out = &mut io::BufWriter::new(out);
    writeln!(out, "desc: memward profile --time-unit=B")?;
    writeln!(out, "cmd: {}", no_hash(&r.analysis.process.command()))?;
    writeln!(out, "time_unit: B")?;
    for (n, (s, peak)) in snapshots.iter().enumerate() {
        writeln!(out, "#-----------\nsnapshot={n}\n#-----------")?;
        writeln!(out, "time={}", s.time)?;
        writeln!(out, "mem_heap_B={}", s.heap)?;
        writeln!(out, "mem_heap_extra_B=0\nmem_stacks_B=0")?;
        match &s.sites {
            None => writeln!(out, "heap_tree=empty")?,
            Some(sites) => {
                writeln!(out, "heap_tree={}", if *peak { "peak" } else { "detailed" })?;
                let tree = build_tree(r, sites);
                let limit = (s.heap as f64 * THRESHOLD) as u64;
                write_node(
                    out,
                    &tree,
                    "(heap allocation functions) malloc/new/new[], --alloc-fns, etc.",
                    0,
                    limit,
                )?;
            }
        }
    }
    out.flush()
}

#[derive(Default)]
struct Node {
    bytes: u64,
    children: HashMap<String, Node>,
}

/// The allocation tree: root, then innermost frames, then their callers.
fn build_tree(r: &Report, sites: &[(u32, u64)]) -> Node {
    let mut root = Node::default();
    for &(id, bytes) in sites {
        root.bytes += bytes;
        let mut node = &mut root;
        for (address, frame) in r.frames(id) {
            let label = format!("{address:#X}: {}", no_hash(&frame.label()));
            node = node.children.entry(label).or_default();
            node.bytes += bytes;
        }
    }
    root
}

fn write_node(
    out: &mut dyn Write,
    node: &Node,
    label: &str,
    depth: usize,
    limit: u64,
) -> io::Result<()> {
    let mut kids: Vec<(&String, &Node)> = node.children.iter().collect();
    kids.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then(a.0.cmp(b.0)));
    let (big, small): (Vec<_>, Vec<_>) = kids.into_iter().partition(|k| k.1.bytes >= limit.max(1));
    let small_bytes: u64 = small.iter().map(|k| k.1.bytes).sum();
    let count = big.len() + usize::from(!small.is_empty());
    writeln!(out, "{:depth$}n{count}: {} {label}", "", node.bytes)?;
    for (l, k) in big {
        write_node(out, k, l, depth + 1, limit)?;
    }
    if !small.is_empty() {
        let text = if small.len() == 1 {
            "in 1 place, below massif's threshold (1.00%)".to_string()
        } else {
            format!(
                "in {} places, all below massif's threshold (1.00%)",
                small.len()
            )
        };
        writeln!(out, "{:w$}n0: {small_bytes} {text}", "", w = depth + 1)?;
    }
    Ok(())
}

/// `ms_print` drops everything after `#` on a line.
fn no_hash(s: &str) -> String {
    s.replace('#', "_")
}
