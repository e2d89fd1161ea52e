//! What a leak scan costs: `N` live blocks of 32 bytes, half of them a list reachable
//! from a global, the other half in unreachable chains of ten (one direct leak, nine
//! indirect); the scan is run `REPS` times and its wall time printed (median, min, max).
//!
//! `cargo run --release -p memward-check --example leak_scan_cost -- N REPS`
//! (`bench/leak_cost.sh` runs it beside LeakSanitizer on the same heap shape.)
//!
//! With `-- N REPS THREADS REMEMBER`, `THREADS` threads (1 MiB stacks, all running at
//! once, each using 64 KiB of its stack) have exited and been joined before the scans,
//! so glibc holds their stacks in its cache; with `REMEMBER` 1 each remembered its stack
//! (`remember_thread_stack`, as the checker does), and the scan reads only their thread
//! descriptors; with 0 it reads them whole, as before it knew exited threads' stacks.
//!
//! The blocks come from this program's global allocator, one `mmap`ed region whose
//! `owns` is exact, as the checker's backing is; the scan's own tables live there too.

use memward_check::leaks::{find_leaks, LiveBlock};
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

const REGION: usize = 1 << 32;
static BASE: AtomicUsize = AtomicUsize::new(0);
static NEXT: AtomicUsize = AtomicUsize::new(0);

struct Bump;

// SAFETY: disjoint, aligned ranges of one mapping that is never unmapped; null when
// it is exhausted.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = region();
        let mut cur = NEXT.load(Ordering::Relaxed);
        loop {
            let start = (base + cur).next_multiple_of(layout.align()) - base;
            let end = start + layout.size();
            if base == 0 || end > REGION {
                return core::ptr::null_mut();
            }
            match NEXT.compare_exchange_weak(cur, end, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return (base + start) as *mut u8,
                Err(now) => cur = now,
            }
        }
    }

    unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
}

fn region() -> usize {
    let base = BASE.load(Ordering::Acquire);
    if base != 0 {
        return base;
    }
    // SAFETY: a fresh anonymous reservation.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            REGION,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return 0;
    }
    match BASE.compare_exchange(0, p as usize, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => p as usize,
        Err(won) => {
            // SAFETY: our own unused mapping.
            unsafe { libc::munmap(p, REGION) };
            won
        }
    }
}

#[global_allocator]
static BUMP: Bump = Bump;

static HEAD: AtomicUsize = AtomicUsize::new(0);

fn owns(p: usize) -> bool {
    let base = BASE.load(Ordering::Acquire);
    p >= base && p - base < REGION
}

/// Runs `count` threads at once, each using 64 KiB of its stack, and joins them.
fn run_and_join(count: usize, remember: bool) {
    let all = std::sync::Arc::new(std::sync::Barrier::new(count + 1));
    let threads: Vec<_> = (0..count)
        .map(|_| {
            let all = all.clone();
            std::thread::Builder::new()
                .stack_size(1 << 20)
                .spawn(move || {
                    if remember {
                        memward_check::leaks::remember_thread_stack();
                    } else {
                        // The same glibc call (its `malloc` makes the thread an arena,
                        // whose heap is root memory too), without remembering.
                        std::hint::black_box(memward_profile::shared::thread_stack());
                    }
                    std::hint::black_box([1u8; 64 << 10]);
                    all.wait();
                })
                .expect("spawn")
        })
        .collect();
    all.wait();
    for t in threads {
        t.join().expect("join");
    }
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let n = args.next().and_then(Result::ok).unwrap_or(1_000_000);
    let reps = args.next().and_then(Result::ok).unwrap_or(5);
    let exited = args.next().and_then(Result::ok).unwrap_or(0);
    let remember = args.next().and_then(Result::ok).unwrap_or(1) != 0;
    run_and_join(exited, remember);
    let layout = Layout::from_size_align(32, 16).unwrap();
    let mut blocks = Vec::with_capacity(n);
    let mut prev = 0usize;
    for i in 0..n {
        // SAFETY: a non-zero size.
        let p = unsafe { std::alloc::alloc_zeroed(layout) } as usize;
        assert_ne!(p, 0, "out of memory");
        blocks.push(LiveBlock {
            start: p,
            size: 32,
            stack: (i % 64) as u64,
        });
        let reachable = i < n / 2;
        let chain_start = !reachable && (i - n / 2) % 10 == 0;
        if i == 0 {
            HEAD.store(p, Ordering::Relaxed);
        } else if !chain_start {
            // SAFETY: `prev` is the previous block, 32 bytes.
            unsafe { (prev as *mut usize).write(p) };
        }
        prev = p;
    }
    // Keep the list head's store (nothing else reads it).
    std::hint::black_box(&HEAD);
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..reps {
        let t = Instant::now();
        // SAFETY: the blocks are live memory of the region, never freed.
        let leaks = unsafe { find_leaks(&blocks, &owns) }.expect("scan");
        times.push(t.elapsed().as_secs_f64() * 1e3);
        last = Some(leaks);
    }
    let leaks = last.expect("at least one rep");
    times.sort_by(f64::total_cmp);
    println!(
        "blocks {n} leaked {} (records {}) roots {} KiB  scan ms: median {:.1} min {:.1} max {:.1}",
        leaks.leaked().count(),
        leaks.records().len(),
        leaks.root_bytes() >> 10,
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
}
