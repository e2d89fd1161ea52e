//! The analyses on profiles written with the format's own writer, with answers known in
//! advance: the scenario of issue 9's exact-figure program (a leak, a big block held at
//! the peak, temporaries, a second thread, a buffer grown by realloc), the recorder's
//! realloc race, sampled profiles, and random event sequences against a naive model that
//! snapshots every site at every new peak.

use memward_profile_format::{IoSink, Writer};
use memward_report::{Analysis, Site};
use proptest::prelude::*;

/// Builds a profile in memory.
struct Profile {
    w: Writer<Vec<u8>, IoSink<Vec<u8>>>,
    nodes: u32,
}

impl Profile {
    fn new(sample_rate: u64) -> Self {
        let mut w = Writer::new(vec![0u8; 1 << 16], IoSink(Vec::new()));
        w.header(
            100,
            1,
            0,
            sample_rate,
            b"/bin/prog",
            [&b"prog"[..], &b"-x"[..]],
        );
        Profile { w, nodes: 0 }
    }

    /// A new one-frame stack; returns its id.
    fn stack(&mut self, address: u64) -> u32 {
        self.nodes += 1;
        self.w.stack_node(self.nodes, 0, address);
        self.nodes
    }

    fn analyse(mut self, end: Option<u64>) -> Analysis {
        if let Some(nanos) = end {
            self.w.end(nanos, 0, 0);
        }
        self.w.flush();
        Analysis::from_reader(&self.w.into_sink().0[..]).unwrap()
    }
}

const MAIN: u32 = 100;
const WORKER: u32 = 101;
const MIB64: u64 = 64 << 20;

#[test]
fn the_exact_figure_scenario() {
    let mut p = Profile::new(0);
    let leak = p.stack(0x1000);
    let big = p.stack(0x2000);
    let temp = p.stack(0x3000);
    let grow_first = p.stack(0x4000);
    let grow = p.stack(0x5000);
    let worker = p.stack(0x6000);
    let w = &mut p.w;

    // 1,000 leaked blocks of 48 bytes.
    for i in 0..1000u64 {
        w.alloc(MAIN, 0x10_0000 + i * 64, 48, leak);
    }
    w.time(1_000_000, 0, 0);
    // A second thread allocates ten 1000-byte blocks and frees five of them; the others
    // stay live through the peak and are freed at the end.
    for i in 0..10u64 {
        w.alloc(WORKER, 0x20_0000 + i * 1024, 1000, worker);
    }
    for i in 0..5u64 {
        w.free(WORKER, 0x20_0000 + i * 1024);
    }
    // 64 MiB held at the peak, then freed.
    w.time(2_000_000, 0, 0);
    w.alloc(MAIN, 0x4000_0000, MIB64, big);
    w.time(3_000_000, 0, 0);
    w.free(MAIN, 0x4000_0000);
    // 100,000 temporary allocations of 32 bytes.
    for _ in 0..100_000 {
        w.alloc(MAIN, 0x30_0000, 32, temp);
        w.free(MAIN, 0x30_0000);
    }
    // A buffer grown by realloc from 16 to 4096 bytes (9 reallocs), then freed.
    w.alloc(MAIN, 0x50_0000, 16, grow_first);
    let mut at = 0x50_0000u64;
    let mut size = 16u64;
    while size < 4096 {
        size *= 2;
        let new = at + 0x1_0000;
        w.realloc(MAIN, at, new, size, grow);
        at = new;
    }
    w.free(MAIN, at);
    for i in 5..10u64 {
        w.free(WORKER, 0x20_0000 + i * 1024);
    }
    // A free of a block the profile never saw is ignored.
    w.free(MAIN, 0xdead_0000);
    let a = p.analyse(Some(5_000_000));

    assert!(a.complete);
    assert_eq!(a.duration_nanos, 5_000_000);
    assert_eq!(a.process.command(), "prog -x");
    let peak_bytes = 48_000 + 5 * 1000 + MIB64;
    assert_eq!(a.peak.bytes, peak_bytes);
    assert_eq!(a.peak.blocks, 1000 + 5 + 1);
    assert_eq!(a.peak.nanos, 2_000_000);
    assert_eq!(a.peak.allocations, 1000 + 10 + 1);

    let site = |id: u32| a.sites[id as usize].clone();
    let leaks = site(leak);
    assert_eq!(
        (leaks.calls, leaks.total_blocks, leaks.total_bytes),
        (1000, 1000, 48_000)
    );
    assert_eq!((leaks.peak_blocks, leaks.peak_bytes), (1000, 48_000));
    assert_eq!((leaks.exit_blocks, leaks.exit_bytes), (1000, 48_000));
    assert_eq!((leaks.max_blocks, leaks.max_bytes), (1000, 48_000));
    assert_eq!(leaks.temporary_blocks, 0);
    assert_eq!(leaks.sizes, Some((48, 48)));
    // Allocated before 1 ms, live to 5 ms.
    assert_eq!(leaks.lifetime_nanos, 1000 * 5_000_000);

    let b = site(big);
    assert_eq!((b.total_blocks, b.total_bytes), (1, MIB64));
    assert_eq!((b.peak_blocks, b.peak_bytes), (1, MIB64));
    assert_eq!((b.exit_blocks, b.exit_bytes), (0, 0));
    assert_eq!(b.lifetime_nanos, 1_000_000);
    assert_eq!(b.temporary_blocks, 1, "freed before any other allocation");

    let t = site(temp);
    assert_eq!((t.calls, t.total_bytes), (100_000, 3_200_000));
    assert_eq!(t.temporary_blocks, 100_000);
    assert_eq!((t.peak_blocks, t.exit_blocks, t.max_blocks), (0, 0, 1));

    let wk = site(worker);
    assert_eq!(
        (wk.total_blocks, wk.peak_blocks, wk.exit_blocks),
        (10, 5, 0)
    );
    assert_eq!((wk.max_blocks, wk.max_bytes), (10, 10_000));
    assert_eq!(wk.temporary_blocks, 0);

    // Each realloc frees the previous block right after it was allocated: heaptrack
    // counts all ten as temporary, and so do we; the last block's free follows its
    // realloc directly too.
    let g0 = site(grow_first);
    assert_eq!((g0.calls, g0.total_bytes, g0.temporary_blocks), (1, 16, 1));
    let g = site(grow);
    assert_eq!(g.calls, 8);
    assert_eq!(
        g.total_bytes,
        32 + 64 + 128 + 256 + 512 + 1024 + 2048 + 4096
    );
    assert_eq!(g.temporary_blocks, 8);
    assert_eq!((g.max_blocks, g.max_bytes), (1, 4096));
    assert_eq!(g.sizes, Some((32, 4096)));

    let tot = &a.totals;
    assert_eq!(tot.calls, 1000 + 10 + 1 + 100_000 + 1 + 8);
    assert_eq!(tot.reallocs, 8);
    assert_eq!(tot.blocks, tot.calls);
    assert_eq!(tot.frees, 10 + 1 + 100_000 + 8 + 1);
    assert_eq!(tot.temporary_blocks, 1 + 100_000 + 1 + 8);
    assert_eq!((tot.exit_blocks, tot.exit_bytes), (1000, 48_000));
    assert_eq!(tot.unknown_frees, 1);
    assert_eq!(
        tot.bytes,
        48_000 + 10_000 + MIB64 + 3_200_000 + 16 + g.total_bytes
    );
    assert_eq!(a.active_sites().count(), 6);

    // The histogram: 48-byte blocks in [48, 55], 32-byte ones in [32, 39].
    let h: Vec<_> = a.histogram.buckets().collect();
    let bucket = |size: u64| *h.iter().find(|b| b.min <= size && size <= b.max).unwrap();
    assert_eq!(bucket(48).blocks, 1000);
    assert_eq!(bucket(32).blocks, 100_000 + 1, "and the realloc to 32");
    assert_eq!(bucket(MIB64).blocks, 1);
    assert_eq!(h.iter().map(|b| b.blocks).sum::<u64>(), tot.blocks);
    assert_eq!(h.iter().map(|b| b.bytes).sum::<u64>(), tot.bytes);

    // The timeline keeps the peak and stays bounded.
    assert!(a.timeline.len() <= 2048);
    assert_eq!(
        a.timeline.iter().map(|p| p.heap_bytes).max(),
        Some(peak_bytes)
    );
}

#[test]
fn a_profile_cut_short_keeps_what_was_recorded() {
    let mut p = Profile::new(0);
    let s = p.stack(0x1000);
    p.w.alloc(MAIN, 0x1000, 10, s);
    p.w.alloc(MAIN, 0x2000, 20, s);
    p.w.free(MAIN, 0x1000);
    let a = p.analyse(None);
    assert!(!a.complete);
    assert_eq!((a.peak.bytes, a.totals.exit_bytes), (30, 20));
}

#[test]
fn an_address_reused_before_the_realloc_that_moved_it_is_recorded() {
    // Thread A reallocs p to q; thread B gets p from malloc before A's realloc is
    // recorded. The stream: alloc p (A), alloc p (B), realloc p -> q (A).
    let mut p = Profile::new(0);
    let (sa, sb, sr) = (p.stack(0x1), p.stack(0x2), p.stack(0x3));
    p.w.alloc(MAIN, 0x1000, 100, sa);
    p.w.alloc(WORKER, 0x1000, 7, sb);
    p.w.realloc(MAIN, 0x1000, 0x9000, 200, sr);
    let a = p.analyse(Some(1));
    assert_eq!(a.sites[sa as usize].exit_blocks, 0);
    assert_eq!(a.sites[sb as usize].exit_bytes, 7, "B's block is untouched");
    assert_eq!(a.sites[sr as usize].exit_bytes, 200);
    assert_eq!(a.totals.exit_bytes, 207);
    assert_eq!(a.totals.unknown_frees, 0);
}

#[test]
fn sampled_profiles_give_unbiased_estimates() {
    // 20,000 recorded 64-byte blocks at a 4 KiB rate: each stands for
    // 1 / (1 - exp(-1/64)) ~= 64.5 blocks.
    let rate = 4096;
    let mut p = Profile::new(rate);
    let s = p.stack(0x1);
    for i in 0..20_000u64 {
        p.w.alloc(MAIN, 0x1000 + i * 64, 64, s);
    }
    let a = p.analyse(Some(1));
    let w = memward_profile_format::sample_weight(64, rate);
    let expect = 20_000.0 * w;
    let got = a.sites[s as usize].total_blocks as f64;
    assert!((got - expect).abs() / expect < 0.002, "{got} vs {expect}");
    let bytes = a.sites[s as usize].total_bytes as f64;
    assert!((bytes - 64.0 * expect).abs() / (64.0 * expect) < 0.002);
    assert_eq!(a.totals.calls, 20_000);
    assert_eq!(a.peak.bytes, a.totals.exit_bytes);
}

/// One step of a random program.
#[derive(Debug, Clone)]
enum Op {
    Alloc { site: u32, size: u64 },
    Free { pick: usize },
    Realloc { pick: usize, site: u32, size: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u32..6, 0u64..2000).prop_map(|(site, size)| Op::Alloc { site, size }),
        any::<usize>().prop_map(|pick| Op::Free { pick }),
        (any::<usize>(), 1u32..6, 0u64..4000).prop_map(|(pick, site, size)| Op::Realloc {
            pick,
            site,
            size
        }),
    ]
}

/// The naive model: per-site live figures, copied whole at every new peak.
#[derive(Default)]
struct Model {
    live: Vec<(u64, u64, u32)>, // ptr, size, site
    curr: Vec<(u64, u64)>,      // per site: blocks, bytes
    at_peak: Vec<(u64, u64)>,
    total: Vec<(u64, u64, u64)>, // calls, blocks, bytes
    max: Vec<(u64, u64)>,        // blocks, bytes at the site's max bytes
    temporary: Vec<u64>,
    peak: u64,
    last_alloc: Option<u64>,
    next_ptr: u64,
}

impl Model {
    fn heap(&self) -> u64 {
        self.live.iter().map(|l| l.1).sum()
    }
    fn alloc(&mut self, size: u64, site: u32) -> u64 {
        self.next_ptr += 16;
        let ptr = self.next_ptr;
        let s = site as usize;
        self.live.push((ptr, size, site));
        self.curr[s].0 += 1;
        self.curr[s].1 += size;
        self.total[s].0 += 1;
        self.total[s].1 += 1;
        self.total[s].2 += size;
        if self.curr[s].1 > self.max[s].1 {
            self.max[s] = self.curr[s];
        }
        self.last_alloc = Some(ptr);
        let heap = self.heap();
        if heap > self.peak {
            self.peak = heap;
            self.at_peak = self.curr.clone();
        }
        ptr
    }
    fn free(&mut self, index: usize) {
        let (ptr, size, site) = self.live.remove(index);
        let s = site as usize;
        self.curr[s].0 -= 1;
        self.curr[s].1 -= size;
        if self.last_alloc == Some(ptr) {
            self.temporary[s] += 1;
            self.last_alloc = None;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_programs_match_the_naive_model(ops in proptest::collection::vec(op(), 1..300)) {
        let sites = 6;
        let mut m = Model {
            curr: vec![(0, 0); sites],
            at_peak: vec![(0, 0); sites],
            total: vec![(0, 0, 0); sites],
            max: vec![(0, 0); sites],
            temporary: vec![0; sites],
            ..Model::default()
        };
        let mut p = Profile::new(0);
        for i in 1..sites as u64 {
            p.stack(i * 0x100);
        }
        for op in ops {
            match op {
                Op::Alloc { site, size } => {
                    let ptr = m.alloc(size, site);
                    p.w.alloc(MAIN, ptr, size, site);
                }
                Op::Free { pick } => {
                    if m.live.is_empty() {
                        continue;
                    }
                    let i = pick % m.live.len();
                    p.w.free(MAIN, m.live[i].0);
                    m.free(i);
                }
                Op::Realloc { pick, site, size } => {
                    if m.live.is_empty() {
                        continue;
                    }
                    let i = pick % m.live.len();
                    let old = m.live[i].0;
                    m.free(i);
                    let new = m.alloc(size, site);
                    p.w.realloc(MAIN, old, new, size, site);
                }
            }
        }
        let a = p.analyse(Some(1));
        prop_assert_eq!(a.peak.bytes, m.peak);
        for s in 1..sites {
            let got: &Site = &a.sites.get(s).cloned().unwrap_or_default();
            prop_assert_eq!((got.peak_blocks, got.peak_bytes), m.at_peak[s], "site {} at peak", s);
            prop_assert_eq!((got.exit_blocks, got.exit_bytes), m.curr[s], "site {} at exit", s);
            prop_assert_eq!((got.calls, got.total_blocks, got.total_bytes), m.total[s]);
            prop_assert_eq!((got.max_blocks, got.max_bytes), m.max[s]);
            prop_assert_eq!(got.temporary_blocks, m.temporary[s]);
        }
    }
}
