//! How long do the thread-safe collectors stall other threads?
//!
//! One mutator thread runs small operations (allocate a node, link it under a lock,
//! drop old ones) and records each operation's latency, while another thread
//! repeatedly builds a 100 000-node garbage graph of cycles, drops it and calls the
//! collector. Reported: the collector's duration (the collecting thread's own pause) and
//! the mutator's latency percentiles alone (the other thread sleeps) and with that
//! garbage being built and collected. The mutator's own allocations also trigger the
//! collectors' automatic collections in both runs (memward-gc runs those on its
//! collector thread; dumpster on the allocating thread).
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::workloads::Rng;

const GARBAGE: usize = 100_000;
const ROUNDS: usize = 20;

macro_rules! pause_experiment {
    ($name:ident, $P:path, $collect:path, [$(#[$derive:meta])*]) => {
        pub mod $name {
            use super::*;
            use $P as P;
            $(#[$derive])*
            pub struct Node {
                pub edges: Mutex<Vec<P<Node>>>,
            }
            fn node() -> P<Node> {
                P::new(Node { edges: Mutex::new(Vec::new()) })
            }

            /// Returns (collection durations, mutator latencies while collecting).
            pub fn run(collecting: bool) -> (Vec<Duration>, Vec<Duration>) {
                let stop = AtomicBool::new(false);
                std::thread::scope(|s| {
                    let mutator = std::thread::Builder::new().stack_size(256 << 20).spawn_scoped(s, || {
                        let mut lat = Vec::with_capacity(1 << 20);
                        let mut mine: Vec<P<Node>> = Vec::new();
                        let mut rng = Rng(99);
                        while !stop.load(Ordering::Relaxed) {
                            let t = Instant::now();
                            let n = node();
                            if let Some(last) = mine.last() {
                                last.edges.lock().unwrap().push(n.clone());
                            }
                            mine.push(n);
                            if mine.len() > 64 {
                                let i = rng.below(mine.len());
                                mine.swap_remove(i);
                            }
                            lat.push(t.elapsed());
                        }
                        lat
                    }).unwrap();
                    let mut collections = Vec::new();
                    let mut rng = Rng(7);
                    for _ in 0..ROUNDS {
                        if !collecting {
                            // Baseline: the mutator alone.
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                        let nodes: Vec<P<Node>> = (0..GARBAGE).map(|_| node()).collect();
                        for i in 0..GARBAGE {
                            let j = rng.below(GARBAGE);
                            nodes[i].edges.lock().unwrap().push(nodes[j].clone());
                            nodes[i].edges.lock().unwrap().push(nodes[(i + 1) % GARBAGE].clone());
                        }
                        drop(nodes);
                        let t = Instant::now();
                        $collect();
                        collections.push(t.elapsed());
                    }
                    stop.store(true, Ordering::Relaxed);
                    (collections, mutator.join().unwrap())
                })
            }
        }
    };
}

pause_experiment!(memward, memward_gc::sync::Gc, memward_gc::sync::collect, [#[derive(memward_gc::Trace)]]);
pause_experiment!(
    dumpster,
    ::dumpster::sync::Gc,
    ::dumpster::sync::collect,
    []
);

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    v[((v.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6
}

pub fn run() {
    // dumpster recurses deeply on long cycles: give everything a big stack.
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(run_inner)
        .unwrap()
        .join()
        .unwrap();
}

fn run_inner() {
    println!("| collector | collect() of 100k garbage, ms: median [max] | mutator op µs, alone: p50 / p99.9 / max | while collecting: p50 / p99.9 / max |");
    println!("|---|---|---|---|");
    for (name, f) in [
        ("memward-gc sync", memward::run as fn(bool) -> _),
        ("dumpster sync", dumpster::run),
    ] {
        let (_, mut quiet) = f(false);
        let (mut coll, mut busy) = f(true);
        coll.sort();
        println!(
            "| {name} | {:.1} [{:.1}] | {:.2} / {:.1} / {:.0} | {:.2} / {:.1} / {:.0} |",
            coll[coll.len() / 2].as_secs_f64() * 1e3,
            coll[coll.len() - 1].as_secs_f64() * 1e3,
            pct(&mut quiet, 0.5),
            pct(&mut quiet, 0.999),
            pct(&mut quiet, 1.0),
            pct(&mut busy, 0.5),
            pct(&mut busy, 0.999),
            pct(&mut busy, 1.0),
        );
    }
}
