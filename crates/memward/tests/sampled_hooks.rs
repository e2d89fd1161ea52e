//! Sampled hook mode (`memward::hooks::install_sampled`) through every entry point, with
//! memward as the global allocator: every reported free and resize is of a block reported
//! allocated and live, no unsampled block is ever reported, every sampled block's free is
//! reported (from its own thread or another), pages lose their sampled flag when their
//! last sampled block goes, and first-class heaps are not sampled. The sample itself is
//! checked too: the allocations reported are a fair share of those made. One test
//! function, because the hooks are process-wide.

use std::alloc::{GlobalAlloc, Layout};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;

#[global_allocator]
static GLOBAL: memward::Memward = memward::Memward;

/// What the hooks saw: live sampled blocks (address -> size), every address ever
/// reported allocated, and the contract breaches found.
struct Seen {
    live: HashMap<usize, usize>,
    ever: HashSet<usize>,
    errors: Vec<String>,
    allocs: usize,
    frees: usize,
    reallocs: usize,
}

static SEEN: Mutex<Option<Seen>> = Mutex::new(None);
static NESTED: AtomicBool = AtomicBool::new(false);
static IN_HOOKS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static IN_HOOK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn with_seen(f: impl FnOnce(&mut Seen)) {
    IN_HOOK.with(|c| {
        if c.replace(true) {
            NESTED.store(true, Ordering::Relaxed);
        }
    });
    IN_HOOKS.fetch_add(1, Ordering::Relaxed);
    let mut g = SEEN.lock().unwrap();
    f(g.get_or_insert_with(|| Seen {
        live: HashMap::new(),
        ever: HashSet::new(),
        errors: Vec::new(),
        allocs: 0,
        frees: 0,
        reallocs: 0,
    }));
    drop(g);
    IN_HOOK.with(|c| c.set(false));
}

unsafe fn on_alloc(p: *mut u8, size: usize) {
    with_seen(|s| {
        s.allocs += 1;
        if s.live.insert(p as usize, size).is_some() {
            s.errors.push(format!("alloc of {p:p} already live"));
        }
        s.ever.insert(p as usize);
    });
}

unsafe fn on_free(p: *mut u8) {
    with_seen(|s| {
        s.frees += 1;
        if s.live.remove(&(p as usize)).is_none() {
            s.errors
                .push(format!("free of {p:p}, not a live sampled block"));
        }
    });
}

unsafe fn on_realloc(old: *mut u8, new: *mut u8, size: usize) {
    with_seen(|s| {
        s.reallocs += 1;
        if s.live.remove(&(old as usize)).is_none() {
            s.errors
                .push(format!("realloc of {old:p}, not a live sampled block"));
        }
        if s.live.insert(new as usize, size).is_some() {
            s.errors.push(format!("realloc to {new:p}, already live"));
        }
        s.ever.insert(new as usize);
    });
}

static HOOKS: memward::hooks::Hooks = memward::hooks::Hooks {
    alloc: on_alloc,
    free: on_free,
    realloc: on_realloc,
};

fn is_live_sample(p: *const u8) -> bool {
    SEEN.lock()
        .unwrap()
        .as_ref()
        .is_some_and(|s| s.live.contains_key(&(p as usize)))
}

fn counts() -> (usize, usize, usize) {
    SEEN.lock()
        .unwrap()
        .as_ref()
        .map_or((0, 0, 0), |s| (s.allocs, s.frees, s.reallocs))
}

/// Every live sampled block's page is flagged; `blocks` (live) are checked. (Test code
/// never allocates or frees while it holds `SEEN`: the hooks would wait on it.)
fn check_flags(blocks: &[*mut u8]) {
    for &p in blocks {
        if is_live_sample(p) {
            // SAFETY: p is a live block of memward.
            assert!(
                unsafe { memward::hooks::sampled_page(p) },
                "sampled {p:p} unflagged"
            );
        }
    }
}

const RATE: u64 = 16 * 1024;

#[test]
fn only_sampled_blocks_are_reported_through_every_entry_point() {
    // Blocks from before: their frees are never reported (no page of theirs is flagged).
    let early: Vec<Box<[u8; 48]>> = (0..100).map(|_| Box::new([1; 48])).collect();
    memward::hooks::set_sampling_seed(0x5eed);
    memward::hooks::install_sampled(&HOOKS, RATE);
    assert_eq!(memward::hooks::sample_rate(), Some(RATE));
    drop(early);

    // Direct sizes, many of each: only a sample is reported, each block at most once.
    let mut blocks: Vec<(*mut u8, usize)> = Vec::new();
    let mut requested = 0usize;
    for round in 0..40 {
        for size in (1..=1024).step_by(13) {
            let p = memward::raw::malloc(size);
            assert!(!p.is_null());
            // SAFETY: a fresh block of `size` bytes.
            unsafe { p.write_bytes(round as u8, size) };
            blocks.push((p, size));
            requested += size;
        }
    }
    let (allocs, _, _) = counts();
    // About requested / RATE samples (allowing the few the harness's own blocks take).
    let expected = requested as f64 / RATE as f64;
    assert!(
        (allocs as f64) > expected * 0.6 && (allocs as f64) < expected * 1.6 + 20.0,
        "{allocs} samples for {expected:.0} expected"
    );
    assert!(
        allocs < blocks.len() / 20,
        "{allocs} of {} reported",
        blocks.len()
    );
    let ptrs: Vec<*mut u8> = blocks.iter().map(|b| b.0).collect();
    check_flags(&ptrs);
    // Cut lists keep every page invariant (`used + |free| + |local_free| == capacity`).
    memward::check_thread_heap();
    // Free every other block, then the rest: each sampled free reported, nothing else.
    for &(p, _) in blocks.iter().step_by(2) {
        // SAFETY: live blocks of memward, freed once.
        unsafe { memward::raw::free(p) };
    }
    let rest: Vec<*mut u8> = blocks.iter().skip(1).step_by(2).map(|b| b.0).collect();
    check_flags(&rest);
    for &p in &rest {
        // SAFETY: as above.
        unsafe { memward::raw::free(p) };
    }

    // Medium, large and huge blocks, and over-aligned ones: sampled by their bytes.
    let mut big = Vec::new();
    for _ in 0..20 {
        for (size, align) in [
            (5000, 8),
            (60_000, 16),
            (100_000, 16),
            (3 << 20, 16),
            (40, 64),
            (1000, 4096),
            (70_000, 1 << 20),
            (24, 32),
        ] {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: a non-zero layout, freed below with the same layout.
            let p = unsafe { GLOBAL.alloc(layout) };
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0);
            big.push((p, layout));
        }
    }
    let ptrs: Vec<*mut u8> = big.iter().map(|b| b.0).collect();
    check_flags(&ptrs);
    // The 3 MiB blocks are sampled with probability 1 - exp(-192): all of them.
    for &(p, l) in &big {
        if l.size() == 3 << 20 {
            assert!(is_live_sample(p), "a 3 MiB block not sampled");
        }
    }
    for (p, l) in big {
        // SAFETY: allocated above with this layout.
        unsafe { GLOBAL.dealloc(p, l) };
    }

    // Resizes: grow a buffer through every size range and back, many times.
    let (_, _, reallocs_before) = counts();
    for _ in 0..30 {
        let mut p = memward::raw::malloc(8);
        for size in [16, 100, 1000, 5000, 70_000, 300_000, 5 << 20, 2000, 24] {
            // SAFETY: p is live; on success the old pointer is dead.
            let q = unsafe { memward::raw::realloc(p, size) };
            assert!(!q.is_null());
            p = q;
        }
        // SAFETY: live, freed once.
        unsafe { memward::raw::free(p) };
    }
    let (_, _, reallocs_after) = counts();
    assert!(
        reallocs_after > reallocs_before,
        "no resize of a sampled block reported"
    );

    // Frees from other threads, of blocks of every range (the owner keeps allocating,
    // which drains them).
    let mut sent = Vec::new();
    for i in 0..3000 {
        let size = [24, 200, 1000, 6000, 200_000][i % 5];
        sent.push(memward::raw::malloc(size) as usize);
    }
    let sampled_sent: Vec<usize> = sent
        .iter()
        .copied()
        .filter(|&p| is_live_sample(p as _))
        .collect();
    assert!(!sampled_sent.is_empty());
    thread::spawn(move || {
        for p in sent {
            // SAFETY: live blocks of memward, freed once, from another thread.
            unsafe { memward::raw::free(p as *mut u8) };
        }
    })
    .join()
    .unwrap();
    for p in &sampled_sent {
        assert!(
            !is_live_sample(*p as _),
            "remote free of {p:#x} not reported"
        );
    }
    // Another thread's own allocations are sampled and reported as well.
    thread::spawn(|| {
        let v: Vec<*mut u8> = (0..2000).map(|_| memward::raw::malloc(500)).collect();
        for p in v {
            // SAFETY: live, freed once.
            unsafe { memward::raw::free(p) };
        }
    })
    .join()
    .unwrap();

    // A first-class heap is not sampled: none of its blocks is reported.
    with_seen(|s| s.ever.clear());
    IN_HOOK.with(|c| c.set(false));
    let heap = memward::Heap::new();
    let mine: Vec<allocator_api2::boxed::Box<[u8; 200], &memward::Heap>> = (0..5000)
        .map(|_| allocator_api2::boxed::Box::new_in([3u8; 200], &heap))
        .collect();
    let mut mine_ptrs: Vec<usize> = mine.iter().map(|b| b.as_ptr() as usize).collect();
    drop(mine);
    // Over-aligned and large blocks of it too (the slow paths that count bytes).
    {
        use allocator_api2::alloc::Allocator;
        for (size, align) in [(1000, 4096), (40, 64), (200_000, 16), (3 << 20, 16)] {
            let layout = Layout::from_size_align(size, align).unwrap();
            for _ in 0..200 {
                let p = heap.allocate(layout).unwrap().cast::<u8>();
                mine_ptrs.push(p.as_ptr() as usize);
                // SAFETY: allocated just above with this layout.
                unsafe { heap.deallocate(p, layout) };
            }
        }
    }
    drop(heap);
    // Taken out of the lock: a free or allocation while holding it would wait on it
    // in the hook.
    let ever = std::mem::take(&mut SEEN.lock().unwrap().as_mut().unwrap().ever);
    for p in &mine_ptrs {
        assert!(!ever.contains(p), "first-class block {p:#x} reported");
    }

    // Flags clear: after the owner's slow paths drained the remote frees, no sampled block
    // is live (but the harness's), and pages of fresh unsampled blocks are unflagged.
    let warm: Vec<*mut u8> = (0..20_000)
        .map(|i| memward::raw::malloc(8 + i % 1000))
        .collect();
    for p in warm {
        // SAFETY: live, freed once.
        unsafe { memward::raw::free(p) };
    }
    memward::check_thread_heap();
    memward::hooks::remove();
    let (allocs, frees, reallocs) = counts();
    let (errors, live) = {
        let mut guard = SEEN.lock().unwrap();
        let seen = guard.as_mut().unwrap();
        (std::mem::take(&mut seen.errors), seen.live.len())
    };
    assert!(errors.is_empty(), "{:?}", &errors[..errors.len().min(10)]);
    assert!(!NESTED.load(Ordering::Relaxed), "a hook was re-entered");
    assert!(
        allocs > 100 && frees > 100 && reallocs > 0,
        "{allocs} {frees} {reallocs}"
    );
    // What the harness's threads may still hold; the engine tracks exactly those.
    assert_eq!(memward::hooks::sampled_blocks(), live);
    assert!(live < 20, "{live} sampled blocks left live");
    // Pages with no live sampled block lose the flag: a block of each direct size now
    // lies on a page whose sampled blocks were all freed.
    let fresh: Vec<*mut u8> = (1..=1024).step_by(8).map(memward::raw::malloc).collect();
    let flagged = fresh
        .iter()
        // SAFETY: live blocks of memward.
        .filter(|&&p| unsafe { memward::hooks::sampled_page(p) })
        .count();
    assert!(
        flagged <= live,
        "{flagged} pages still flagged, {live} samples live"
    );
    for p in fresh {
        // SAFETY: live, freed once.
        unsafe { memward::raw::free(p) };
    }
    let _ = IN_HOOKS.load(Ordering::Relaxed);
}
