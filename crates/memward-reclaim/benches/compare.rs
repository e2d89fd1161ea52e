//! Throughput and peak unreclaimed objects of memward-reclaim against seize, crossbeam-epoch and
//! haphazard, on the same Treiber stack, Michael-Scott queue and hash map code (the crate's
//! `structures`, generic over `Reclaim`), plus the cost of entering and leaving a guard and the
//! garbage held back by a stalled guard.
//!
//! `cargo bench -p memward-reclaim --bench compare [-- ROUNDS]`
//!
//! Every measurement runs all four schemes in one round, in a rotating order, and the round is
//! repeated; tables give medians with min..max and the per-round ratio of memward-reclaim to each
//! anchor (above 1 = memward-reclaim faster). Unreclaimed objects are counted by the adapters
//! (retire minus reclaim, per-thread counters) and sampled every 17 operations (a prime, so the
//! samples do not alias with any scheme's batch period).

use memward_reclaim::structures::{HashMap, MsQueue, Reclaim, TreiberStack};
use memward_reclaim::Collector;
use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::Instant;

#[global_allocator]
static GLOBAL: memward::Memward = memward::Memward;

// ---- retire/reclaim counters -------------------------------------------------------------

#[repr(align(128))]
struct Counter {
    retired: AtomicU64,
    reclaimed: AtomicU64,
}

const COUNTERS: usize = 8;
static COUNTS: [Counter; COUNTERS] = [const {
    Counter {
        retired: AtomicU64::new(0),
        reclaimed: AtomicU64::new(0),
    }
}; COUNTERS];

thread_local! {
    /// Workers set their own index; every other thread (main) uses the last counter. Each counter
    /// has one writer at a time, so a load and a store suffice (no read-modify-write cost).
    static COUNTER: Cell<usize> = const { Cell::new(COUNTERS - 1) };
}

fn bump(f: impl Fn(&Counter) -> &AtomicU64) {
    let c = &COUNTS[COUNTER.with(Cell::get)];
    let a = f(c);
    a.store(a.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

fn unreclaimed() -> i64 {
    COUNTS
        .iter()
        .map(|c| {
            c.retired.load(Ordering::Relaxed) as i64 - c.reclaimed.load(Ordering::Relaxed) as i64
        })
        .sum()
}

// ---- the four schemes behind `Reclaim` ---------------------------------------------------

trait Scheme: Reclaim + Sized + 'static {
    const NAME: &'static str;
    fn create() -> Self;
    /// Reclaims leftovers of a finished run that the structure's drop does not.
    fn drain(&self) {}
}

struct Memward(Collector);

/// # Safety
/// `p` came from `Box::into_raw` and is freed once.
unsafe fn free_counted<T>(p: *mut T) {
    // SAFETY: the caller's contract.
    drop(unsafe { Box::from_raw(p) });
    bump(|c| &c.reclaimed);
}

impl Reclaim for Memward {
    type Guard<'a> = memward_reclaim::Guard<'a>;
    #[inline]
    fn enter(&self) -> Self::Guard<'_> {
        self.0.enter()
    }
    #[inline]
    fn protect<T>(&self, g: &mut Self::Guard<'_>, _slot: usize, src: &AtomicPtr<T>) -> *mut T {
        g.protect(src)
    }
    #[inline]
    unsafe fn retire<T: Send + 'static>(&self, g: &Self::Guard<'_>, ptr: *mut T) {
        bump(|c| &c.retired);
        // SAFETY: forwarded; `free_counted` frees a `Box`.
        unsafe { g.retire_with(ptr, free_counted::<T>) }
    }
}
impl Scheme for Memward {
    const NAME: &'static str = "memward-reclaim";
    fn create() -> Self {
        Self(Collector::new())
    }
}

struct Seize(seize::Collector);

/// # Safety
/// As `seize::reclaim::boxed`.
unsafe fn seize_free_counted<T>(p: *mut T, _: &seize::Collector) {
    // SAFETY: the caller's contract.
    drop(unsafe { Box::from_raw(p) });
    bump(|c| &c.reclaimed);
}

impl Reclaim for Seize {
    type Guard<'a> = seize::LocalGuard<'a>;
    #[inline]
    fn enter(&self) -> Self::Guard<'_> {
        self.0.enter()
    }
    #[inline]
    fn protect<T>(&self, g: &mut Self::Guard<'_>, _slot: usize, src: &AtomicPtr<T>) -> *mut T {
        seize::Guard::protect(g, src, Ordering::Acquire)
    }
    #[inline]
    unsafe fn retire<T: Send + 'static>(&self, g: &Self::Guard<'_>, ptr: *mut T) {
        bump(|c| &c.retired);
        // SAFETY: forwarded.
        unsafe { seize::Guard::defer_retire(g, ptr, seize_free_counted::<T>) }
    }
}
impl Scheme for Seize {
    const NAME: &'static str = "seize";
    fn create() -> Self {
        Self(seize::Collector::new())
    }
}

/// crossbeam-epoch's global collector (its usual use; `pin()`).
struct Epoch;

struct SendPtr<T>(*mut T);
// SAFETY: only used to move a retired `T: Send` into the deferred closure.
unsafe impl<T: Send> Send for SendPtr<T> {}

impl Reclaim for Epoch {
    type Guard<'a> = crossbeam_epoch::Guard;
    #[inline]
    fn enter(&self) -> Self::Guard<'_> {
        crossbeam_epoch::pin()
    }
    #[inline]
    fn protect<T>(&self, _g: &mut Self::Guard<'_>, _slot: usize, src: &AtomicPtr<T>) -> *mut T {
        src.load(Ordering::Acquire)
    }
    #[inline]
    unsafe fn retire<T: Send + 'static>(&self, g: &Self::Guard<'_>, ptr: *mut T) {
        bump(|c| &c.retired);
        let p = SendPtr(ptr);
        // SAFETY: the pointer is unlinked and freed once, after every pinned thread moved on.
        unsafe {
            g.defer_unchecked(move || {
                let p = p;
                free_counted(p.0)
            })
        }
    }
}
impl Scheme for Epoch {
    const NAME: &'static str = "crossbeam-epoch";
    fn create() -> Self {
        Self
    }
    fn drain(&self) {
        for _ in 0..10_000 {
            if unreclaimed() <= 0 {
                return;
            }
            crossbeam_epoch::pin().flush();
        }
    }
}

/// haphazard's global domain; a guard is two hazard pointers (the structures use slots 0 and 1).
struct Haphazard;

/// A `Box` whose drop counts a reclamation (haphazard frees through a `Pointer` type).
struct CountedBox<T>(Box<T>);
impl<T> std::ops::Deref for CountedBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}
impl<T> Drop for CountedBox<T> {
    fn drop(&mut self) {
        bump(|c| &c.reclaimed);
    }
}
// SAFETY: delegates to `Box`, which upholds the contract.
unsafe impl<T> haphazard::raw::Pointer<T> for CountedBox<T> {
    fn into_raw(self) -> *mut T {
        let me = std::mem::ManuallyDrop::new(self);
        // SAFETY: `me` is never used or dropped again; the box moves out exactly once.
        Box::into_raw(unsafe { std::ptr::read(&me.0) })
    }
    unsafe fn from_raw(ptr: *mut T) -> Self {
        // SAFETY: the caller passes a pointer from `into_raw`.
        Self(unsafe { Box::from_raw(ptr) })
    }
}

impl Reclaim for Haphazard {
    type Guard<'a> = haphazard::HazardPointerArray<'static, haphazard::Global, 2>;
    #[inline]
    fn enter(&self) -> Self::Guard<'_> {
        haphazard::HazardPointer::many::<2>()
    }
    #[inline]
    fn protect<T>(&self, g: &mut Self::Guard<'_>, slot: usize, src: &AtomicPtr<T>) -> *mut T {
        let [a, b] = g.as_refs();
        let hp = if slot == 0 { a } else { b };
        match hp.protect_ptr(src) {
            Some((p, _)) => p.as_ptr(),
            None => std::ptr::null_mut(),
        }
    }
    #[inline]
    unsafe fn retire<T: Send + 'static>(&self, _g: &Self::Guard<'_>, ptr: *mut T) {
        bump(|c| &c.retired);
        // SAFETY: forwarded; the pointer came from `Box::into_raw`, the same layout
        // `CountedBox::from_raw` expects.
        unsafe { haphazard::Domain::global().retire_ptr::<T, CountedBox<T>>(ptr) };
    }
}
impl Scheme for Haphazard {
    const NAME: &'static str = "haphazard";
    fn create() -> Self {
        Self
    }
    fn drain(&self) {
        haphazard::Domain::global().eager_reclaim();
    }
}

// ---- workloads ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Workload {
    Stack,
    Queue,
    Map,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Stack => "Treiber stack (push+pop)",
            Workload::Queue => "MS queue (push+pop)",
            Workload::Map => "hash map (50% get, 25% insert, 25% remove)",
        }
    }
    fn ops_per_thread(self) -> u64 {
        match self {
            Workload::Stack | Workload::Queue => 400_000,
            Workload::Map => 300_000,
        }
    }
}

struct Sample {
    mops: f64,
    peak: i64,
}

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// A worker body: `(worker index, operations, sample the garbage gauge)`.
type Worker<'a> = dyn Fn(usize, u64, &dyn Fn()) + Sync + 'a;

/// Runs `f(ops)` on `threads` workers at once; returns (seconds from the first worker's start to
/// the last one's end, peak unreclaimed over the run).
fn run_threads(threads: usize, ops: u64, f: &Worker<'_>) -> (f64, i64) {
    let base = unreclaimed();
    let peak = AtomicU64::new(0);
    let sample = || {
        let now = (unreclaimed() - base).max(0) as u64;
        peak.fetch_max(now, Ordering::Relaxed);
    };
    let start = Barrier::new(threads);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (start, sample) = (&start, &sample);
                s.spawn(move || {
                    COUNTER.with(|c| c.set(t));
                    start.wait();
                    let t0 = Instant::now();
                    f(t, ops, sample);
                    (t0, Instant::now())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let first = spans.iter().map(|s| s.0).min().unwrap();
    let last = spans.iter().map(|s| s.1).max().unwrap();
    (
        last.duration_since(first).as_secs_f64(),
        peak.load(Ordering::Relaxed) as i64,
    )
}

fn measure<S: Scheme>(w: Workload, threads: usize) -> Sample {
    let ops = w.ops_per_thread();
    let (secs, peak) = match w {
        Workload::Stack => {
            let stack = TreiberStack::with_reclaim(S::create());
            for i in 0..1000u64 {
                stack.push(i);
            }
            let r = run_threads(threads, ops, &|_, ops, sample| {
                for i in 0..ops / 2 {
                    stack.push(i);
                    black_box(stack.pop());
                    if i % 17 == 0 {
                        sample();
                    }
                }
            });
            drop(stack);
            r
        }
        Workload::Queue => {
            let queue = MsQueue::with_reclaim(S::create());
            for i in 0..1000u64 {
                queue.push(i);
            }
            let r = run_threads(threads, ops, &|_, ops, sample| {
                for i in 0..ops / 2 {
                    queue.push(i);
                    black_box(queue.pop());
                    if i % 17 == 0 {
                        sample();
                    }
                }
            });
            drop(queue);
            r
        }
        Workload::Map => {
            const KEYS: u64 = 4096;
            let map =
                HashMap::with_reclaim(KEYS as usize, S::create(), std::hash::RandomState::new());
            for k in (0..KEYS).step_by(2) {
                map.insert(k, k);
            }
            let r = run_threads(threads, ops, &|t, ops, sample| {
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (t as u64 + 1);
                for i in 0..ops {
                    let r = xorshift(&mut x);
                    let key = r % KEYS;
                    match (r >> 32) % 4 {
                        0 => {
                            black_box(map.insert(key, i));
                        }
                        1 => {
                            black_box(map.remove(&key));
                        }
                        _ => {
                            black_box(map.get(&key));
                        }
                    }
                    if i % 17 == 0 {
                        sample();
                    }
                }
            });
            drop(map);
            r
        }
    };
    S::create().drain();
    Sample {
        mops: (ops * threads as u64) as f64 / secs / 1e6,
        peak,
    }
}

/// Nanoseconds per enter+leave on one thread.
fn enter_leave<S: Scheme>() -> f64 {
    const N: u64 = 5_000_000;
    let scheme = S::create();
    let t0 = Instant::now();
    for _ in 0..N {
        black_box(scheme.enter());
    }
    t0.elapsed().as_nanos() as f64 / N as f64
}

/// Peak unreclaimed while a guard (protecting the stack's top) is held and another thread does
/// `ops` push+pop pairs.
fn stalled<S: Scheme>(ops: u64) -> i64 {
    let stack = TreiberStack::with_reclaim(S::create());
    stack.push(0u64);
    let base = unreclaimed();
    let peak = AtomicU64::new(0);
    let holding = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            COUNTER.with(|c| c.set(1));
            let mut guard = stack.reclaim().enter();
            let src = AtomicPtr::new(Box::into_raw(Box::new(1u64)));
            black_box(stack.reclaim().protect(&mut guard, 0, &src));
            holding.store(true, Ordering::Release);
            while !done.load(Ordering::Acquire) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            drop(guard);
            // SAFETY: never shared beyond this thread's protect; not retired.
            drop(unsafe { Box::from_raw(src.load(Ordering::Relaxed)) });
        });
        s.spawn(|| {
            COUNTER.with(|c| c.set(0));
            while !holding.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
            for i in 0..ops {
                stack.push(i);
                black_box(stack.pop());
                if i % 1021 == 0 {
                    peak.fetch_max((unreclaimed() - base).max(0) as u64, Ordering::Relaxed);
                }
            }
            done.store(true, Ordering::Release);
        });
    });
    drop(stack);
    S::create().drain();
    peak.load(Ordering::Relaxed) as i64
}

// ---- reporting ---------------------------------------------------------------------------

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn spread(v: &mut [f64]) -> String {
    let m = median(v);
    format!("{:.2} ({:.2}..{:.2})", m, v[0], v[v.len() - 1])
}

const NAMES: [&str; 4] = [Memward::NAME, Seize::NAME, Epoch::NAME, Haphazard::NAME];

fn run_scheme(i: usize, w: Workload, threads: usize) -> Sample {
    match i {
        0 => measure::<Memward>(w, threads),
        1 => measure::<Seize>(w, threads),
        2 => measure::<Epoch>(w, threads),
        _ => measure::<Haphazard>(w, threads),
    }
}

/// `compare enter-leave SCHEME N`: only N enter+leave pairs of one scheme, for instruction
/// counts (run it under callgrind at two values of N; the difference divided by the difference of
/// N is the cost of one pair).
fn enter_leave_only(args: &[String]) {
    let n: u64 = args
        .get(3)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    fn run<S: Scheme>(n: u64) {
        let scheme = S::create();
        for _ in 0..n {
            black_box(scheme.enter());
        }
    }
    match args.get(2).map(String::as_str) {
        Some("memward-reclaim") => run::<Memward>(n),
        Some("seize") => run::<Seize>(n),
        Some("crossbeam-epoch") => run::<Epoch>(n),
        Some("haphazard") => run::<Haphazard>(n),
        other => {
            eprintln!("unknown scheme {other:?}; expected one of {NAMES:?}");
            std::process::exit(2);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("enter-leave") {
        return enter_leave_only(&args);
    }
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(7);
    drop(Collector::new()); // chooses the barrier pair, so the line below reports it
    println!(
        "memward-reclaim comparison: {rounds} rounds, schemes interleaved in rotating order; \
         membarrier fast path: {}; {} CPUs available",
        memward_reclaim::is_expedited(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // Enter + leave.
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); 4];
    for round in 0..rounds {
        for k in 0..4 {
            let i = (round + k) % 4;
            ns[i].push(match i {
                0 => enter_leave::<Memward>(),
                1 => enter_leave::<Seize>(),
                2 => enter_leave::<Epoch>(),
                _ => enter_leave::<Haphazard>(),
            });
        }
    }
    println!("\n### Enter + leave a guard, one thread (ns per pair; median (min..max))\n");
    println!("| scheme | ns |\n|---|---|");
    for (i, v) in ns.iter_mut().enumerate() {
        println!("| {} | {} |", NAMES[i], spread(v));
    }

    // Throughput and peak garbage.
    println!(
        "\n### Throughput (Mops/s, median (min..max)), ratio memward-reclaim / anchor \
         (median (min..max) of per-round ratios), peak unreclaimed objects (max over rounds)\n"
    );
    println!("| workload | threads | scheme | Mops/s | memward ÷ scheme | peak unreclaimed |");
    println!("|---|---|---|---|---|---|");
    for w in [Workload::Stack, Workload::Queue, Workload::Map] {
        for threads in [1, 2] {
            let mut mops: Vec<Vec<f64>> = vec![Vec::new(); 4];
            let mut peaks = [0i64; 4];
            for round in 0..rounds {
                for k in 0..4 {
                    let i = (round + k) % 4;
                    let s = run_scheme(i, w, threads);
                    mops[i].push(s.mops);
                    peaks[i] = peaks[i].max(s.peak);
                }
            }
            for i in 0..4 {
                let mut ratios: Vec<f64> =
                    mops[0].iter().zip(&mops[i]).map(|(m, a)| m / a).collect();
                let ratio = if i == 0 {
                    "1".to_string()
                } else {
                    spread(&mut ratios)
                };
                let mut v = mops[i].clone();
                println!(
                    "| {} | {} | {} | {} | {} | {} |",
                    w.name(),
                    threads,
                    NAMES[i],
                    spread(&mut v),
                    ratio,
                    peaks[i]
                );
            }
        }
    }

    // Stalled guard.
    const STALL_OPS: u64 = 1_000_000;
    println!(
        "\n### Stalled guard: peak unreclaimed while one guard is held and another thread does \
         {STALL_OPS} stack push+pop pairs (max over rounds)\n"
    );
    println!("| scheme | peak unreclaimed |\n|---|---|");
    let stall_rounds = rounds.min(3);
    let mut worst = [0i64; 4];
    for round in 0..stall_rounds {
        for k in 0..4 {
            let i = (round + k) % 4;
            let p = match i {
                0 => stalled::<Memward>(STALL_OPS),
                1 => stalled::<Seize>(STALL_OPS),
                2 => stalled::<Epoch>(STALL_OPS),
                _ => stalled::<Haphazard>(STALL_OPS),
            };
            worst[i] = worst[i].max(p);
        }
    }
    for i in 0..4 {
        println!("| {} | {} |", NAMES[i], worst[i]);
    }
}
