//! memward-gc side by side with Rc/Arc, rust-cc, bacon-rajan-cc, dumpster and gc, in one
//! run, interleaved: every round runs every (workload, implementation) pair once, in a
//! rotated order, so that the machine's drift hits all of them alike. Reports medians
//! with min/max and per-round ratios to the workload's baseline; `--pauses` measures
//! how long the thread-safe collectors stall a mutator thread.
//!
//! ```sh
//! cd bench/gc && cargo run --release -- --rounds 7          # the tables
//! cd bench/gc && cargo run --release -- --pauses            # pause measurements
//! cd bench/gc && ./callgrind.sh                             # instructions per operation
//! ```
#![allow(non_local_definitions)] // gc_derive emits impls inside consts

mod baseline;
mod instances;
mod micro;
mod pauses;
mod workloads;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::Instant;

/// Counts live bytes only while `COUNTING` is on (the memory pass), so timed runs pay
/// one relaxed load per call.
struct Counting;
static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to System.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

struct Case {
    workload: &'static str,
    name: &'static str,
    run: Box<dyn Fn() -> u64>,
    /// Run in a child process with a time limit (dumpster's sync collector deadlocks
    /// now and then with two threads; a hang must not stop the whole run).
    isolated: bool,
}

fn case(workload: &'static str, name: &'static str, run: impl Fn() -> u64 + 'static) -> Case {
    Case {
        workload,
        name,
        run: Box::new(run),
        isolated: false,
    }
}

const CHILD_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

/// Runs one case in a child process; its time in ms, or None on a hang or crash.
fn run_isolated(c: &Case) -> Option<f64> {
    let exe = std::env::current_exe().ok()?;
    let mut child = std::process::Command::new(exe)
        .args(["--child", c.workload, c.name])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().ok()? {
            if !status.success() {
                return None;
            }
            let mut out = String::new();
            std::io::Read::read_to_string(child.stdout.as_mut()?, &mut out).ok()?;
            return out.trim().parse().ok();
        }
        if start.elapsed() > CHILD_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Every case; the first of each workload is its baseline.
fn cases() -> Vec<Case> {
    use instances::*;
    let mut v = vec![
        case("binary trees", "Rc", baseline::binary_trees),
        case("binary trees", "memward-gc", memward::binary_trees),
        case("binary trees", "rust-cc", rust_cc::binary_trees),
        case("binary trees", "bacon-rajan-cc", bacon::binary_trees),
        case("binary trees", "dumpster", dumpster::binary_trees),
        case("binary trees", "gc", rust_gc::binary_trees),
        case("parent pointers", "Rc+Weak", baseline::parent_trees),
        case("parent pointers", "memward-gc", memward::parent_trees),
        case("parent pointers", "rust-cc", rust_cc::parent_trees),
        case("parent pointers", "bacon-rajan-cc", bacon::parent_trees),
        case("parent pointers", "dumpster", dumpster::parent_trees),
        case("parent pointers", "gc", rust_gc::parent_trees),
        case("linked list", "Rc+Weak", baseline::linked_list),
        case("linked list", "memward-gc", memward::linked_list),
        case("linked list", "rust-cc", rust_cc::linked_list),
        case("linked list", "bacon-rajan-cc", bacon::linked_list),
        case("linked list", "dumpster", dumpster::linked_list),
        case("linked list", "gc", rust_gc::linked_list),
        case("stress", "rust-cc", rust_cc::stress),
        case("stress", "memward-gc", memward::stress),
        case("stress", "bacon-rajan-cc", bacon::stress),
        case("stress", "dumpster", dumpster::stress),
        case("stress", "gc", rust_gc::stress),
        case("churn unsync", "dumpster", dumpster::churn),
        case("churn unsync", "memward-gc", memward::churn),
        case("churn unsync", "rust-cc", rust_cc::churn),
        case("churn unsync", "bacon-rajan-cc", bacon::churn),
        case("churn unsync", "gc", rust_gc::churn),
        case("churn unsync", "Rc (leaks)", rc_leaky::churn),
    ];
    for threads in [1, 2] {
        let w: &'static str = if threads == 1 {
            "churn sync, 1 thread"
        } else {
            "churn sync, 2 threads"
        };
        for mut c in [
            case(w, "dumpster sync", move || dumpster_sync::churn(threads)),
            case(w, "memward-gc sync", move || memward_sync::churn(threads)),
            case(w, "Arc (leaks)", move || arc_leaky::churn(threads)),
        ] {
            c.isolated = true;
            v.push(c);
        }
    }
    v
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let c = cases()
            .into_iter()
            .find(|c| c.workload == args[i + 1] && c.name == args[i + 2]);
        let c = c.expect("no such case");
        let start = Instant::now();
        std::hint::black_box((c.run)());
        println!("{}", start.elapsed().as_secs_f64() * 1e3);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--micro") {
        let n = args
            .get(i + 2)
            .and_then(|s| s.parse().ok())
            .unwrap_or(100_000);
        micro::run(&args[i + 1], n);
        return;
    }
    if args.iter().any(|a| a == "--pauses") {
        pauses::run();
        return;
    }
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let only: Option<&String> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1));
    let implementation: Option<&String> = args
        .iter()
        .position(|a| a == "--impl")
        .and_then(|i| args.get(i + 1));
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|c| only.is_none_or(|o| c.workload.contains(o.as_str())))
        .filter(|c| implementation.is_none_or(|o| c.name == o.as_str()))
        .collect();

    // Memory pass (untimed): bytes still allocated after each case returns.
    let mut leftover = Vec::new();
    for c in &cases {
        if c.isolated {
            leftover.push(None);
            continue;
        }
        LIVE.store(0, Ordering::Relaxed);
        COUNTING.store(true, Ordering::SeqCst);
        std::hint::black_box((c.run)());
        // memward-gc keeps its collection buffers between collections: not a leak.
        memward_gc::trim();
        COUNTING.store(false, Ordering::SeqCst);
        leftover.push(Some(LIVE.load(Ordering::Relaxed)));
    }

    let mut times: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut hangs = vec![0usize; cases.len()];
    for round in 0..rounds {
        for k in 0..cases.len() {
            let i = (k + round * 7) % cases.len();
            if cases[i].isolated {
                match run_isolated(&cases[i]) {
                    Some(ms) => times[i].push(ms),
                    None => hangs[i] += 1,
                }
                continue;
            }
            let start = Instant::now();
            std::hint::black_box((cases[i].run)());
            times[i].push(start.elapsed().as_secs_f64() * 1e3);
        }
        eprintln!("round {} of {rounds} done", round + 1);
    }

    println!("| workload | implementation | median ms | min ms | max ms | ratio to baseline: median [min, max] | bytes left after | hung or failed runs |");
    println!("|---|---|---:|---:|---:|---|---:|---:|");
    let mut base = 0;
    for i in 0..cases.len() {
        if i == 0 || cases[i].workload != cases[i - 1].workload {
            base = i;
        }
        let left = leftover[i].map_or("-".to_string(), |b| b.to_string());
        let mut t = times[i].clone();
        if t.is_empty() {
            println!(
                "| {} | {} | - | - | - | - | {left} | {} |",
                cases[i].workload, cases[i].name, hangs[i]
            );
            continue;
        }
        // Ratios per round where both ran (a hung round has no time).
        let mut ratios: Vec<f64> = times[i]
            .iter()
            .zip(&times[base])
            .map(|(t, b)| t / b)
            .collect();
        let (rmin, rmax) = ratios
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
        let med = median(&mut t);
        let ratio = if ratios.is_empty() {
            "- (baseline never finished)".to_string()
        } else {
            format!("{:.2} [{rmin:.2}, {rmax:.2}]", median(&mut ratios))
        };
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {ratio} | {left} | {} |",
            cases[i].workload,
            cases[i].name,
            med,
            t[0],
            t[t.len() - 1],
            hangs[i]
        );
    }
}
