//! Memory goes back to the OS, and running out of it gives null instead of a crash. Each
//! scenario runs in a child process (this test binary
//! re-executed with `MEMWARD_*` options in its environment), so resident memory measured
//! from `/proc/self/statm` belongs to the scenario alone, and the options are read from the
//! environment exactly as a user would set them.

use std::process::Command;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: memward::Memward = memward::Memward;

const MIB: usize = 1 << 20;

fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize
}

fn run_child(scenario: &str, env: &[(&str, &str)]) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            scenario,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(out.status.success(), "scenario {scenario} failed");
    assert!(text.contains("1 passed"), "scenario {scenario} did not run");
}

#[test]
fn rss_falls_back_after_the_purge_delay() {
    run_child(
        "scenario_free_everything",
        &[
            ("MEMWARD_PURGE_DELAY_MS", "300"),
            ("MEMWARD_SEGMENT_CACHE", "1000"),
            // The time bound alone: the size bound would purge at once.
            ("MEMWARD_FREE_RESIDENT_MIB", "100000"),
        ],
    );
}

#[test]
fn freed_memory_is_bounded_by_size_without_further_allocation() {
    run_child("scenario_size_bound", &[]);
}

#[test]
#[ignore = "run by freed_memory_is_bounded_by_size_without_further_allocation in a child"]
fn scenario_size_bound() {
    // Defaults: 10 ms purge delay, 8 MiB of free memory kept per heap and in the cache.
    let baseline = rss();
    let small: Vec<Box<[u8; 100]>> = (0..1_000_000).map(|i| Box::new([i as u8; 100])).collect();
    let big: Vec<Vec<u8>> = (0..600)
        .map(|i| vec![i as u8; [40_000, 300_000, 1_000_000][i % 3]])
        .collect();
    let full = rss();
    assert!(full >= baseline + 300 * MIB, "allocated memory is resident");
    drop(small);
    drop(big);
    // No allocation and no waiting: what stays resident is what the size bounds allow
    // (8 MiB for the heap's free pages, 8 MiB for the segment cache, and the pages
    // kept as their class's current page).
    let now = rss();
    eprintln!(
        "baseline {} MiB, full {} MiB, right after the frees {} MiB",
        baseline / MIB,
        full / MIB,
        now / MIB
    );
    assert!(
        now <= baseline + 24 * MIB,
        "{} MiB stay resident over a {} MiB baseline",
        (now - baseline) / MIB,
        baseline / MIB
    );
}

#[test]
fn adjacent_free_slots_are_purged_together() {
    run_child(
        "scenario_adjacent_purges",
        &[("MEMWARD_FREE_RESIDENT_MIB", "100000")],
    );
}

#[test]
#[ignore = "run by adjacent_free_slots_are_purged_together in a child process"]
fn scenario_adjacent_purges() {
    // 80 blocks of 96 KiB (three 32 KiB slots each) side by side in two large segments,
    // plus one that keeps the second segment from being released when they are freed.
    let blocks: Vec<Vec<u8>> = (0..81).map(|i| vec![i as u8; 90_000]).collect();
    let mut blocks = blocks.into_iter();
    let kept: Vec<Vec<u8>> = blocks.next_back().into_iter().collect();
    drop(blocks);
    let before = memward::stats().purges;
    memward::raw::collect();
    let calls = memward::stats().purges - before;
    eprintln!("{calls} purge calls for 240 free slots");
    // One call per run of adjacent slots (and a few for other free pages), not per slot.
    assert!(calls > 0 && calls < 20, "{calls} purge calls");
    assert_eq!(kept[0][89_999], 80);
}

#[test]
fn free_slots_in_hundreds_of_segments_are_all_purged() {
    run_child(
        "scenario_many_segments_purged",
        &[
            ("MEMWARD_FREE_RESIDENT_MIB", "100000"),
            ("MEMWARD_PURGE_DELAY_MS", "100000"),
        ],
    );
}

#[test]
#[ignore = "run by free_slots_in_hundreds_of_segments_are_all_purged in a child process"]
fn scenario_many_segments_purged() {
    // 20,000 large blocks, 42 to a segment, almost untouched: about 480 segments. One block
    // in 40 is filled and freed, leaving free resident slots in more segments than a
    // heap's purge set holds (256): the purge must still find them all.
    let mut blocks: Vec<Vec<u8>> = (0..20_000)
        .map(|i| {
            let mut v = Vec::with_capacity(65_537);
            v.push(i as u8);
            v
        })
        .collect();
    let mut filled = 0;
    for (i, v) in blocks.iter_mut().enumerate() {
        if i % 40 == 0 {
            v.resize(65_537, 7);
            filled += v.capacity();
        }
    }
    let touched = rss();
    let kept: Vec<Vec<u8>> = blocks
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % 40 != 0)
        .map(|(_, v)| v)
        .collect();
    let after_frees = rss();
    memward::raw::collect();
    let after_purge = rss();
    eprintln!(
        "filled {} MiB; RSS {} MiB, after the frees {} MiB, after the purge {} MiB",
        filled / MIB,
        touched / MIB,
        after_frees / MIB,
        after_purge / MIB
    );
    assert!(
        after_frees + filled / 2 > touched,
        "nothing was purged before the collection"
    );
    assert!(
        after_purge + filled * 9 / 10 <= after_frees,
        "only {} of {} MiB went back",
        (after_frees - after_purge) / MIB,
        filled / MIB
    );
    assert!(kept
        .iter()
        .enumerate()
        .all(|(i, v)| v.len() == 1 && v[0] == (i + i / 39 + 1) as u8));
}

#[test]
fn segments_of_exited_threads_wait_in_the_cache_then_go() {
    run_child("scenario_thread_rounds", &[]);
}

/// Starts `n` threads that each allocate a few KiB, hold it until all have, free it and
/// exit.
fn thread_round(n: usize) {
    let barrier = std::sync::Barrier::new(n);
    std::thread::scope(|s| {
        for t in 0..n {
            let barrier = &barrier;
            s.spawn(move || {
                let blocks: Vec<Box<[u64; 32]>> =
                    (0..40).map(|i| Box::new([t as u64 + i; 32])).collect();
                barrier.wait();
                assert!(blocks
                    .iter()
                    .enumerate()
                    .all(|(i, b)| b[31] == t as u64 + i as u64));
            });
        }
    });
}

#[test]
#[ignore = "run by segments_of_exited_threads_wait_in_the_cache_then_go in a child process"]
fn scenario_thread_rounds() {
    const SEGMENT: u64 = 4 << 20;
    let before = memward::stats();
    thread_round(100);
    let first = memward::stats();
    // Each thread's heap took a segment of its own; they are cached, not unmapped.
    let cached = first.mapped_bytes.saturating_sub(before.mapped_bytes) / SEGMENT;
    eprintln!("after the first round: {cached} more segments mapped");
    assert!(
        cached >= 50,
        "only {cached} segments kept for the next threads"
    );
    // The next round's threads take them: the mapped peak hardly moves.
    thread_round(100);
    let second = memward::stats();
    let grew = second
        .peak_mapped_bytes
        .saturating_sub(first.peak_mapped_bytes)
        / SEGMENT;
    eprintln!("second round: peak grew by {grew} segments");
    assert!(grew <= 16, "the second round mapped {grew} new segments");
    // Idle beyond MEMWARD_SEGMENT_CACHE (16) for a second: unmapped at the next slow paths.
    std::thread::sleep(Duration::from_millis(1100));
    let mut sink = 0u64;
    let deadline = Instant::now() + Duration::from_secs(3);
    while memward::stats().mapped_bytes > before.mapped_bytes + 20 * SEGMENT {
        assert!(
            Instant::now() < deadline,
            "idle cached segments stayed mapped"
        );
        let v: Vec<Box<[u64; 64]>> = (0..20_000).map(|i| Box::new([i; 64])).collect();
        sink = sink.wrapping_add(v[v.len() - 1][0]);
    }
    eprintln!(
        "mapped {} MiB over the start after the idle second (sink {sink})",
        (memward::stats()
            .mapped_bytes
            .saturating_sub(before.mapped_bytes))
            >> 20
    );
}

#[test]
fn a_thread_adopts_the_warm_pages_of_one_that_exited() {
    run_child("scenario_warm_adoption", &[]);
}

/// Minor page faults of the calling thread so far.
fn thread_faults() -> i64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_THREAD with a valid out-pointer.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) }, 0);
    u.ru_minflt
}

#[test]
#[ignore = "run by a_thread_adopts_the_warm_pages_of_one_that_exited in a child process"]
fn scenario_warm_adoption() {
    // A thread uses 2 MiB of small blocks and exits keeping one (its segment is
    // abandoned, not released); the next thread allocates as much. Its pages are the first
    // thread's, still resident: it faults far fewer pages in than the 2 MiB it uses.
    let work = || {
        let before = thread_faults();
        let mut v: Vec<Box<[u8; 240]>> = (0..8_000).map(|i| Box::new([i as u8; 240])).collect();
        let faults = thread_faults() - before;
        let kept = v.pop().unwrap();
        drop(v);
        (faults, kept)
    };
    let (first, kept_1) = std::thread::spawn(work).join().unwrap();
    let (second, kept_2) = std::thread::spawn(work).join().unwrap();
    eprintln!("page faults: first thread {first}, second thread {second}");
    assert!(
        first > 300,
        "the first thread faulted its 2 MiB in: {first}"
    );
    assert!(
        second * 4 < first,
        "the second thread faulted {second} pages, the first {first}"
    );
    assert_eq!(kept_1[239], kept_2[239]);
}

#[test]
fn rss_stays_bounded_under_thread_churn() {
    run_child("scenario_thread_churn", &[("MEMWARD_PURGE_DELAY_MS", "20")]);
}

#[test]
fn exhaustion_returns_null_and_recovers() {
    run_child("scenario_out_of_memory", &[]);
}

#[test]
#[ignore = "run by exhaustion_returns_null_and_recovers in a child process"]
fn scenario_out_of_memory() {
    // Cap the address space a little above what the process uses now.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let vm_kib: usize = status
        .lines()
        .find(|l| l.starts_with("VmSize:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    let limit = (vm_kib * 1024 + 512 * MIB) as libc::rlim_t;
    let rl = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: setrlimit with a valid struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rl) }, 0);
    let mut blocks = Vec::with_capacity(10_000);
    let mut sizes = [3 * MIB, 300 * 1024, 20_000, 500].iter().cycle();
    let mut failures = 0;
    while failures < 50 {
        let size = *sizes.next().unwrap();
        let p = memward::raw::malloc(size);
        if p.is_null() {
            failures += 1;
            continue;
        }
        // SAFETY: p has `size` bytes.
        unsafe { *p = 1 };
        blocks.push(p);
    }
    assert!(
        blocks.len() > 100,
        "only {} blocks before exhaustion",
        blocks.len()
    );
    let big_fails = memward::raw::malloc(64 * MIB).is_null();
    assert!(big_fails, "a 64 MiB request cannot fit under the cap");
    for p in blocks.drain(..) {
        // SAFETY: live blocks, freed once.
        unsafe { memward::raw::free(p) };
    }
    memward::raw::collect();
    let again = memward::raw::malloc(100 * MIB);
    assert!(!again.is_null(), "memory is usable again after freeing");
    // SAFETY: live.
    unsafe { memward::raw::free(again) };
}

#[test]
#[ignore = "run by rss_falls_back_after_the_purge_delay in a child process"]
fn scenario_free_everything() {
    assert_eq!(
        memward::purge_delay_ms(),
        300,
        "MEMWARD_PURGE_DELAY_MS was read"
    );
    let baseline = rss();
    // About 200 MiB of small objects and 200 MiB of medium and large ones, all touched.
    let small: Vec<Box<[u8; 100]>> = (0..2_000_000).map(|i| Box::new([i as u8; 100])).collect();
    let big: Vec<Vec<u8>> = (0..800)
        .map(|i| vec![i as u8; [40_000, 300_000, 1_000_000][i % 3]])
        .collect();
    let full = rss();
    // The resident estimate tracks the real figure.
    let estimate = memward::stats().resident_bytes as usize;
    assert!(
        estimate >= (full - baseline) * 8 / 10 && estimate <= full * 13 / 10,
        "resident estimate {} MiB, real {} MiB over a {} MiB baseline",
        estimate / MIB,
        full / MIB,
        baseline / MIB
    );
    assert!(
        full >= baseline + 350 * MIB,
        "allocated memory is resident: {} MiB",
        (full - baseline) / MIB
    );
    drop(small);
    drop(big);
    let freed_at = Instant::now();
    let just_after = rss();
    eprintln!(
        "baseline {} MiB, full {} MiB, right after free {} MiB",
        baseline / MIB,
        full / MIB,
        just_after / MIB
    );
    assert!(
        just_after >= baseline + 250 * MIB,
        "memory was purged before the 300 ms delay"
    );
    // Keep making small allocations (the slow paths do the purging) and watch RSS.
    let mut sink = 0u64;
    let mut fell_at = None;
    while freed_at.elapsed() < Duration::from_secs(3) {
        for i in 0..10_000u64 {
            let b = std::hint::black_box(Box::new([i; 4]));
            sink = sink.wrapping_add(b[3]);
        }
        let now = rss();
        if freed_at.elapsed() < Duration::from_millis(200) {
            assert!(
                now >= baseline + 250 * MIB,
                "purged at {:?}, before the delay",
                freed_at.elapsed()
            );
        }
        if now <= baseline + 30 * MIB {
            fell_at = Some(freed_at.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let end = rss();
    eprintln!(
        "after {:?}: {} MiB (sink {sink})",
        freed_at.elapsed(),
        end / MIB
    );
    let fell_at = fell_at.unwrap_or_else(|| {
        panic!(
            "RSS stayed at {} MiB over a {} MiB baseline",
            end / MIB,
            baseline / MIB
        )
    });
    assert!(
        fell_at >= Duration::from_millis(250),
        "fell at {fell_at:?}, before the delay"
    );
    let s = memward::stats();
    assert!(s.purges > 0);
    assert!(
        s.resident_bytes < 64 * MIB as u64,
        "estimate agrees: {} bytes",
        s.resident_bytes
    );
}

#[test]
#[ignore = "run by rss_stays_bounded_under_thread_churn in a child process"]
fn scenario_thread_churn() {
    let baseline = rss();
    let mut peak = 0;
    for round in 0..10 {
        let handles: Vec<_> = (0..50)
            .map(|t| {
                std::thread::spawn(move || {
                    let v: Vec<Vec<u8>> = (0..2000)
                        .map(|i| vec![(round + t) as u8; 16 + (i * 13) % 3000])
                        .collect();
                    // Leave one block in ten to the main thread.
                    v.into_iter().step_by(10).collect::<Vec<_>>()
                })
            })
            .collect();
        let kept: Vec<Vec<Vec<u8>>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        drop(kept); // frees into the segments of exited threads
        let now = rss();
        peak = peak.max(now);
        eprintln!("round {round}: {} MiB", now / MIB);
    }
    // 50 threads x 3 MiB live per round; nothing accumulates across rounds.
    assert!(
        peak <= baseline + 200 * MIB,
        "RSS grew to {} MiB over {} MiB",
        peak / MIB,
        baseline / MIB
    );
    let last = rss();
    assert!(
        last <= baseline + 120 * MIB,
        "RSS after churn {} MiB over {} MiB",
        last / MIB,
        baseline / MIB
    );
}
