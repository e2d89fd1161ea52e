//! memward-tiny against talc and dlmalloc, side by side, on one fixed memory buffer.
//!
//! `cargo bench -p memward-tiny --bench tiny_vs_anchors [-- --quick] [--efficiency-only]`
//!
//! Two measurements, both following talc's published harness (its `benches/`):
//! - heap efficiency at first failure: random allocate (50 %), free (10 %) and realloc (40 %,
//!   to up to 100,000 bytes) on a 128 MiB heap until the first request fails; the score is
//!   the bytes the program holds at that moment over the heap size, averaged over trials;
//! - random actions: allocate / free / realloc with talc's size and alignment distributions,
//!   the same seeded sequence for every allocator, timed per round, the allocators
//!   interleaved in a rotating order within each round so that machine noise hits all of
//!   them alike. Reported as time per action and as per-round ratios (median and quartiles).
//!
//! Every allocator sits behind one spin lock (Tiny has its own; talc and dlmalloc get the
//! same lock wrapper here), as in talc's harness. A tiny xorshift generator is inlined
//! rather than pulled from `rand` so each allocator sees the exact same sequence and the
//! bench adds no dependency.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A spin lock around an allocator that is not `Sync` by itself.
struct Locked<A> {
    locked: AtomicBool,
    inner: UnsafeCell<A>,
}

impl<A> Locked<A> {
    fn new(inner: A) -> Self {
        Locked {
            locked: AtomicBool::new(false),
            inner: UnsafeCell::new(inner),
        }
    }
    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut A) -> R) -> R {
        while self.locked.swap(true, Ordering::Acquire) {
            std::hint::spin_loop();
        }
        // SAFETY: the lock is held; this is the only reference until it is released.
        let r = f(unsafe { &mut *self.inner.get() });
        self.locked.store(false, Ordering::Release);
        r
    }
}

/// dlmalloc's system-memory source, serving one fixed buffer once.
struct FixedSource {
    base: *mut u8,
    len: usize,
    given: core::cell::Cell<bool>,
}

// SAFETY: used behind `Locked`, one thread at a time.
unsafe impl Send for FixedSource {}

// SAFETY: hands out the buffer once, never frees or remaps it.
unsafe impl dlmalloc::Allocator for FixedSource {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        if self.given.get() || size > self.len {
            return (core::ptr::null_mut(), 0, 0);
        }
        self.given.set(true);
        (self.base, self.len, 0)
    }
    fn remap(&self, _: *mut u8, _: usize, _: usize, _: bool) -> *mut u8 {
        core::ptr::null_mut()
    }
    fn free_part(&self, _: *mut u8, _: usize, _: usize) -> bool {
        false
    }
    fn free(&self, _: *mut u8, _: usize) -> bool {
        false
    }
    fn can_release_part(&self, _: u32) -> bool {
        false
    }
    fn allocates_zeros(&self) -> bool {
        false
    }
    fn page_size(&self) -> usize {
        4096
    }
}

struct Dl(Locked<dlmalloc::Dlmalloc<FixedSource>>);

// SAFETY: forwards to dlmalloc under the lock.
unsafe impl GlobalAlloc for Dl {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        self.0.with(|d| unsafe { d.malloc(l.size(), l.align()) })
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded contract.
        self.0.with(|d| unsafe { d.free(p, l.size(), l.align()) })
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        self.0
            .with(|d| unsafe { d.realloc(p, l.size(), l.align(), n) })
    }
}

struct Talc(Locked<talc::TalcCell<talc::source::Manual>>);

// SAFETY: forwards to talc's own GlobalAlloc under the lock.
unsafe impl GlobalAlloc for Talc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        self.0.with(|t| unsafe { t.alloc(l) })
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded contract.
        self.0.with(|t| unsafe { t.dealloc(p, l) })
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        self.0.with(|t| unsafe { t.realloc(p, l, n) })
    }
}

const NAMES: [&str; 3] = ["memward-tiny", "talc", "dlmalloc"];

/// A fresh allocator of kind `which` over `buf`.
fn make(which: usize, buf: &mut [u8]) -> Box<dyn GlobalAlloc> {
    let (base, len) = (buf.as_mut_ptr(), buf.len());
    match which {
        0 => {
            let t = memward_tiny::Tiny::new();
            // SAFETY: `buf` outlives the allocator (dropped before the next trial).
            unsafe { t.add_region(base, len) };
            Box::new(t)
        }
        1 => {
            let t = talc::TalcCell::new(talc::source::Manual);
            // SAFETY: as above.
            unsafe { t.claim(base, len) };
            Box::new(Talc(Locked::new(t)))
        }
        _ => Box::new(Dl(Locked::new(dlmalloc::Dlmalloc::new_with_allocator(
            FixedSource {
                base,
                len,
                given: core::cell::Cell::new(false),
            },
        )))),
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in `lo..hi` (hi > lo).
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo) as u64) as usize
    }
    /// talc's size generator: uniform(4 .. uniform(16 .. max)), biased small.
    fn size(&mut self, max: usize) -> usize {
        let hi = self.range(16, max);
        self.range(4, hi)
    }
    /// talc's alignment generator: 8 << (trailing zeros of a random u16 / 2).
    fn align(&mut self) -> usize {
        8 << ((self.next() as u16).trailing_zeros() / 2)
    }
}

/// One trial of talc's heap-efficiency method; returns bytes held at the first failure.
fn efficiency_trial(heap: &dyn GlobalAlloc, seed: u64) -> usize {
    let mut rng = Rng(seed);
    let mut live: Vec<(*mut u8, Layout)> = Vec::new();
    let mut held = 0usize;
    loop {
        let action = rng.range(0, 10);
        if action < 5 || live.is_empty() {
            let layout = Layout::from_size_align(rng.size(10_000), rng.align()).unwrap();
            // SAFETY: non-zero layout.
            let p = unsafe { heap.alloc(layout) };
            if p.is_null() {
                break;
            }
            held += layout.size();
            live.push((p, layout));
        } else if action == 5 {
            let (p, l) = live.swap_remove(rng.range(0, live.len()));
            held -= l.size();
            // SAFETY: live block with its layout.
            unsafe { heap.dealloc(p, l) };
        } else {
            let i = rng.range(0, live.len());
            let (p, l) = live[i];
            let new_size = rng.range(1, 100_000);
            // SAFETY: live block with its layout, non-zero new size.
            let q = unsafe { heap.realloc(p, l, new_size) };
            if q.is_null() {
                break;
            }
            held = held - l.size() + new_size;
            live[i] = (q, Layout::from_size_align(new_size, l.align()).unwrap());
        }
    }
    for (p, l) in live {
        // SAFETY: live blocks, freed once.
        unsafe { heap.dealloc(p, l) };
    }
    held
}

/// One run of random actions (talc's random-actions mix); returns the actions done.
fn random_actions(heap: &dyn GlobalAlloc, seed: u64, actions: usize, max: usize) -> usize {
    let mut rng = Rng(seed);
    let mut live: Vec<(*mut u8, Layout)> = Vec::with_capacity(1024);
    let mut done = 0;
    for _ in 0..actions {
        let action = rng.range(0, 7);
        if action < 3 || live.len() < 300 {
            let layout = Layout::from_size_align(rng.size(max), rng.align()).unwrap();
            // SAFETY: non-zero layout.
            let p = unsafe { heap.alloc(layout) };
            if !p.is_null() {
                live.push((p, layout));
                done += 1;
            }
        } else if action < 6 {
            let (p, l) = live.swap_remove(rng.range(0, live.len()));
            // SAFETY: live block with its layout.
            unsafe { heap.dealloc(p, l) };
            done += 1;
        } else {
            let i = rng.range(0, live.len());
            let (p, l) = live[i];
            let new_size = rng.range(1, 3 * max);
            // SAFETY: live block with its layout, non-zero new size.
            let q = unsafe { heap.realloc(p, l, new_size) };
            if !q.is_null() {
                live[i] = (q, Layout::from_size_align(new_size, l.align()).unwrap());
                done += 1;
            }
        }
    }
    for (p, l) in live {
        // SAFETY: live blocks, freed once.
        unsafe { heap.dealloc(p, l) };
    }
    done
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `--profile K MAX`: only allocator K's random actions (for callgrind).
    if let Some(i) = args.iter().position(|a| a == "--profile") {
        let which: usize = args[i + 1].parse().unwrap();
        let max: usize = args[i + 2].parse().unwrap();
        let mut buf = vec![0u8; 32 << 20];
        let heap = make(which, &mut buf);
        let done = random_actions(&*heap, 0xACE0, 100_000, max);
        println!("{} did {done} actions", NAMES[which]);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let (trials, rounds, actions) = if quick {
        (6, 9, 50_000)
    } else {
        (30, 31, 200_000)
    };
    let heap_size = 128 << 20;
    let mut buf = vec![0u8; heap_size];
    // Pre-touch every page so first-touch faults do not land in anyone's timing.
    for i in (0..heap_size).step_by(4096) {
        buf[i] = 1;
    }

    println!("## Heap efficiency at first failure (talc's method, {heap_size} B heap, {trials} trials)\n");
    println!("| allocator | efficiency | min trial | max trial |\n|---|---|---|---|");
    for (which, name) in NAMES.iter().enumerate() {
        let mut scores = Vec::new();
        for t in 0..trials {
            let heap = make(which, &mut buf);
            let held = efficiency_trial(&*heap, 0x5EED_0000 + t as u64);
            scores.push(held as f64 / heap_size as f64 * 100.0);
        }
        let mean = scores.iter().sum::<f64>() / scores.len() as f64;
        let min = scores.iter().cloned().fold(f64::MAX, f64::min);
        let max = scores.iter().cloned().fold(0.0, f64::max);
        println!("| {name} | {mean:.2} % | {min:.2} % | {max:.2} % |");
    }

    if std::env::args().any(|a| a == "--efficiency-only") {
        return;
    }
    let ra_size = 32 << 20;
    for max in [200usize, 3000, 30_000] {
        println!(
            "\n## Random actions, sizes up to {max} B ({actions} actions per run, {rounds} interleaved rounds)\n"
        );
        let mut ns: [Vec<f64>; 3] = Default::default();
        for round in 0..rounds {
            for k in 0..3 {
                let which = (round + k) % 3;
                let heap = make(which, &mut buf[..ra_size]);
                let start = Instant::now();
                let done = random_actions(&*heap, 0xACE0 + round as u64, actions, max);
                let t = start.elapsed().as_nanos() as f64;
                ns[which].push(t / done as f64);
            }
        }
        println!(
            "| allocator | ns/action median | p25 | p75 | memward-tiny / this: median [p25, p75] |"
        );
        println!("|---|---|---|---|---|");
        for (which, name) in NAMES.iter().enumerate() {
            let mut v = ns[which].clone();
            v.sort_by(f64::total_cmp);
            let mut ratios: Vec<f64> = ns[0].iter().zip(&ns[which]).map(|(a, b)| a / b).collect();
            ratios.sort_by(f64::total_cmp);
            println!(
                "| {name} | {:.1} | {:.1} | {:.1} | {:.2} [{:.2}, {:.2}] |",
                quantile(&v, 0.5),
                quantile(&v, 0.25),
                quantile(&v, 0.75),
                quantile(&ratios, 0.5),
                quantile(&ratios, 0.25),
                quantile(&ratios, 0.75)
            );
        }
    }
}
