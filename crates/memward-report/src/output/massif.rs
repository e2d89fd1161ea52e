//! valgrind massif's output format (`massif.out.PID`), for `ms_print` and
//! massif-visualizer.
//!
//! Massif takes snapshots of the heap during the run; some carry a tree of who holds the
//! memory. The time unit here is massif's `B` (bytes allocated plus bytes freed so far),
//! one of the three units `ms_print` accepts, and deterministic, unlike wall time at the
//! 10 ms resolution of the profile's clock. Snapshots need the per-site live bytes at
//! chosen moments, which only a replay can give, so this writer reads the profile a
//! second time: 50 snapshots evenly spaced in `B`, every tenth detailed, plus the peak as
//! massif's `peak` snapshot, in time order. Trees follow massif's layout: the root, then
//! the functions that called the allocator, then their callers; children sorted by bytes,
//! those under 1% of the snapshot's heap folded into one "below massif's threshold" node;
//! one space of indent per level. `#` is replaced in labels, since `ms_print` cuts lines
//! at `#`.

use super::Report;
use crate::analysis::pipeline::for_each_record;
use crate::analysis::replay::{Block, Heap, Observer, Replay};
use crate::Error;
use memward_profile_format::Reader;
use std::collections::HashMap;
use std::io::{self, Write};

/// Snapshots besides the peak.
const SNAPSHOTS: u64 = 50;
/// One snapshot in this many is detailed.
const DETAILED_EVERY: usize = 10;
/// Children below this share of the snapshot's heap are folded together (massif's 1%).
const THRESHOLD: f64 = 0.01;

struct Snapshot {
    time: u64,
    heap: u64,
    peak: bool,
    /// (stack id, live bytes) for detailed snapshots.
    sites: Option<Vec<(u32, u64)>>,
}

/// The second-pass observer.
struct Snapshotter {
    curr: Vec<u64>,
    step: u64,
    next_time: u64,
    peak_allocation: u64,
    snapshots: Vec<Snapshot>,
}

impl Snapshotter {
    fn take(&mut self, heap: &Heap, peak: bool) {
        let detailed =
            peak || self.snapshots.iter().filter(|s| !s.peak).count() % DETAILED_EVERY == 0;
        let sites = detailed.then(|| {
            self.curr
                .iter()
                .enumerate()
                .filter(|(_, b)| **b > 0)
                .map(|(i, b)| (i as u32, *b))
                .collect()
        });
        self.snapshots.push(Snapshot {
            time: heap.churn,
            heap: heap.bytes,
            peak,
            sites,
        });
    }

    fn after_change(&mut self, heap: &Heap) {
        // One snapshot per change at most: a single huge allocation crosses many steps.
        if heap.churn >= self.next_time {
            self.take(heap, false);
            self.next_time = (heap.churn / self.step + 1) * self.step;
        }
    }
}

impl Observer for Snapshotter {
    fn alloc(&mut self, heap: &Heap, block: &Block, _size: u64) {
        let i = block.stack as usize;
        if i >= self.curr.len() {
            self.curr.resize(i + 1, 0);
        }
        self.curr[i] += block.bytes;
        if heap.allocations == self.peak_allocation {
            self.take(heap, true);
        }
        self.after_change(heap);
    }

    fn free(&mut self, heap: &Heap, block: &Block, _temporary: bool) {
        self.curr[block.stack as usize] -= block.bytes;
        self.after_change(heap);
    }
}

pub(super) fn write(r: &Report, out: &mut dyn Write) -> Result<(), Error> {
    let Some(path) = &r.path else {
        return Err(Error::usage(
            "massif output replays the profile: open it from a file",
        ));
    };
    let a = &r.analysis;
    let file = std::fs::File::open(path).map_err(|e| Error::open(path, e))?;
    let reader = Reader::new(io::BufReader::with_capacity(1 << 20, file))
        .map_err(|e| Error::from(e).in_file(path))?;
    let mut replay = Replay::new(a.process.sample_rate);
    let step = a.churn_bytes.div_ceil(SNAPSHOTS).max(1);
    let mut snap = Snapshotter {
        curr: Vec::new(),
        step,
        next_time: 0,
        peak_allocation: if a.peak.bytes > 0 {
            a.peak.allocations
        } else {
            u64::MAX
        },
        snapshots: Vec::new(),
    };
    for_each_record(reader, |record| replay.apply(record, &mut snap))
        .map_err(|e| e.in_file(path))?;
    if snap.snapshots.is_empty() {
        snap.take(&replay.heap, false);
    }
    write_file(r, &snap.snapshots, out).map_err(|e| Error::write(None, e))
}

fn write_file(r: &Report, snapshots: &[Snapshot], out: &mut dyn Write) -> io::Result<()> {
    let out = &mut io::BufWriter::new(out);
    writeln!(out, "desc: memward profile --time-unit=B")?;
    writeln!(out, "cmd: {}", no_hash(&r.analysis.process.command()))?;
    writeln!(out, "time_unit: B")?;
    for (n, s) in snapshots.iter().enumerate() {
        writeln!(out, "#-----------\nsnapshot={n}\n#-----------")?;
        writeln!(out, "time={}", s.time)?;
        writeln!(out, "mem_heap_B={}", s.heap)?;
        writeln!(out, "mem_heap_extra_B=0\nmem_stacks_B=0")?;
        match &s.sites {
            None => writeln!(out, "heap_tree=empty")?,
            Some(sites) => {
                writeln!(
                    out,
                    "heap_tree={}",
                    if s.peak { "peak" } else { "detailed" }
                )?;
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
