//! Rust workloads for the allocator benchmark. Each binary in `src/bin` installs one
//! allocator as `#[global_allocator]` and calls [`main`], so the workload code is
//! identical for every allocator and only the allocator differs.
//!
//! usage: `rust-<allocator> maps ENTRIES ROUNDS | parallel THREADS CHUNKS WORDS | json RECORDS ROUNDS`
//!
//! Every workload prints `checksum: <hex>`, which depends only on the arguments; bench/run
//! compares it across allocators to catch one that corrupts memory.

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::process::exit;
use std::sync::mpsc;

/// The same splitmix64 generator as the C workloads: deterministic, seedable per thread.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d).wrapping_add(1))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

/// FNV-1a, so that the hash maps iterate in the same order in every run: the standard
/// library's `RandomState` is seeded per process, which would make the work (probe
/// sequences, resize timing) differ between runs for reasons that are not the allocator.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FnvBuild = BuildHasherDefault<Fnv>;

fn usage() -> ! {
    eprintln!(
        "usage: {} maps ENTRIES ROUNDS | parallel THREADS CHUNKS WORDS | json RECORDS ROUNDS",
        std::env::args()
            .next()
            .unwrap_or_else(|| "rust-bench".into())
    );
    exit(2)
}

fn arg(args: &[String], i: usize) -> u64 {
    match args.get(i).map(|a| a.parse::<u64>()) {
        Some(Ok(v)) => v,
        _ => usage(),
    }
}

/// Runs the workload named on the command line and prints its checksum.
pub fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sum = match args.get(1).map(String::as_str) {
        Some("maps") => maps(arg(&args, 2), arg(&args, 3)),
        Some("parallel") => parallel(arg(&args, 2), arg(&args, 3), arg(&args, 4)),
        Some("json") => json(arg(&args, 2), arg(&args, 3)),
        _ => usage(),
    };
    println!("checksum: {sum:016x}");
}

/// Builds and drops large maps of strings: a `HashMap<String, String>` (insert, look up
/// every key, remove half) and a `BTreeMap<String, Vec<u32>>` (insert in scrambled order,
/// iterate), ROUNDS times. This is the allocation profile of indexes, caches and symbol
/// tables: many small strings, node and table growth, and a mass free at the end.
fn maps(entries: u64, rounds: u64) -> u64 {
    let mut sum = 0u64;
    for round in 0..rounds {
        let mut h: HashMap<String, String, FnvBuild> = HashMap::default();
        for i in 0..entries {
            h.insert(format!("key-{i:08}-{round}"), format!("value-{}", i * 7));
        }
        for i in 0..entries {
            let v = &h[&format!("key-{i:08}-{round}")];
            sum = sum.wrapping_add(v.len() as u64);
        }
        for i in (0..entries).step_by(2) {
            h.remove(&format!("key-{i:08}-{round}"));
        }
        sum = sum.wrapping_add(h.len() as u64);
        drop(h);

        let mut rng = Rng::new(round);
        let mut b: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for i in 0..entries {
            let k = rng.next();
            let v: Vec<u32> = (0..(k % 8) as u32).collect();
            b.insert(format!("{k:x}/{i}"), v);
        }
        for (k, v) in &b {
            sum = sum.wrapping_add(k.len() as u64 + v.iter().map(|&x| u64::from(x)).sum::<u64>());
        }
    }
    sum
}

/// Word counting over all cores with the partial results handed between threads: each of
/// THREADS threads generates CHUNKS chunks of WORDS words, counts each chunk into a
/// `HashMap<String, u64>` and sends that map to the next thread, which merges it into its
/// `BTreeMap` of totals and drops it. So every thread allocates at full speed while
/// freeing maps that another thread allocated, as in map-reduce and pipeline code.
fn parallel(threads: u64, chunks: u64, words: u64) -> u64 {
    let threads = threads.max(1) as usize;
    // A fixed vocabulary of 4096 words of 1..16 letters, as owned strings that every
    // thread clones from: the clones are the allocations.
    let mut rng = Rng::new(99);
    let vocab: Vec<String> = (0..4096)
        .map(|_| {
            let n = 1 + rng.below(16);
            (0..n)
                .map(|_| (b'a' + rng.below(26) as u8) as char)
                .collect()
        })
        .collect();

    let (senders, receivers): (Vec<_>, Vec<_>) = (0..threads)
        .map(|_| mpsc::channel::<HashMap<String, u64, FnvBuild>>())
        .unzip();
    let totals: Vec<BTreeMap<String, u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = receivers
            .into_iter()
            .enumerate()
            .map(|(t, rx)| {
                let tx = senders[(t + 1) % threads].clone();
                let vocab = &vocab;
                s.spawn(move || {
                    let mut rng = Rng::new(t as u64 + 1000);
                    let mut totals = BTreeMap::new();
                    let merge = |totals: &mut BTreeMap<String, u64>, m: HashMap<_, u64, _>| {
                        for (w, c) in m {
                            *totals.entry(w).or_insert(0) += c;
                        }
                    };
                    let mut received = 0;
                    for _ in 0..chunks {
                        let text: Vec<String> = (0..words)
                            .map(|_| vocab[rng.below(vocab.len() as u64) as usize].clone())
                            .collect();
                        let mut counts: HashMap<String, u64, FnvBuild> = HashMap::default();
                        for w in text {
                            *counts.entry(w).or_insert(0) += 1;
                        }
                        tx.send(counts)
                            .expect("receiver alive until all chunks arrive");
                        while let Ok(m) = rx.try_recv() {
                            merge(&mut totals, m);
                            received += 1;
                        }
                    }
                    while received < chunks {
                        let m = rx.recv().expect("every sender sends CHUNKS maps");
                        merge(&mut totals, m);
                        received += 1;
                    }
                    totals
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker panicked"))
            .collect()
    });
    let mut sum = 0u64;
    for t in &totals {
        for (w, c) in t {
            sum = sum.wrapping_add((w.len() as u64 + 1).wrapping_mul(*c));
        }
    }
    let hasher = FnvBuild::default();
    sum ^ hasher.hash_one(totals.iter().map(|t| t.len()).sum::<usize>())
}

/// Parses and drops a large JSON document with serde_json: a document of RECORDS records
/// (strings, integers, nested arrays and objects; about 150 bytes each) is generated and
/// serialized once, then parsed into a `serde_json::Value` tree, walked and dropped ROUNDS
/// times. A `Value` tree is a storm of small allocations (strings, vectors, maps) freed
/// all at once, the profile of every program that handles JSON.
fn json(records: u64, rounds: u64) -> u64 {
    use serde_json::{json, Value};
    let mut rng = Rng::new(7);
    let doc: Value = (0..records)
        .map(|i| {
            let tags: Vec<String> = (0..rng.below(6))
                .map(|k| format!("tag{}", (i + k) % 97))
                .collect();
            json!({
                "id": i,
                "name": format!("user-{:x}", rng.next() >> 20),
                "active": i % 3 == 0,
                "tags": tags,
                "scores": (0..rng.below(8)).map(|_| rng.below(1000)).collect::<Vec<_>>(),
                "address": {"city": format!("city{}", rng.below(500)), "zip": rng.below(100_000)},
            })
        })
        .collect();
    let text = serde_json::to_string(&doc).expect("a Value always serializes");
    drop(doc);

    fn walk(v: &Value) -> u64 {
        match v {
            Value::Null => 1,
            Value::Bool(b) => 2 + u64::from(*b),
            Value::Number(n) => n.as_u64().unwrap_or(3),
            Value::String(s) => s.len() as u64,
            Value::Array(a) => a.iter().map(walk).fold(5, u64::wrapping_add),
            Value::Object(o) => o
                .iter()
                .map(|(k, v)| (k.len() as u64).wrapping_add(walk(v)))
                .fold(7, u64::wrapping_add),
        }
    }
    let mut sum = text.len() as u64;
    for _ in 0..rounds {
        let v: Value = serde_json::from_str(&text).expect("the document parses");
        sum = sum.wrapping_add(walk(&v));
    }
    sum
}
