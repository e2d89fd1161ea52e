//! memward as the global allocator of a real multi-threaded Rust program (this test
//! binary): std collections, producer/consumer across threads, thread churn with adoption
//! of exited threads' memory, odd alignments, and `fork()` with a child that allocates.

use std::alloc::{GlobalAlloc, Layout};
use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;
use std::thread;

#[global_allocator]
static GLOBAL: memward::Memward = memward::Memward;

fn pattern(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seed.wrapping_mul(31).wrapping_add(i) % 251) as u8)
        .collect()
}

#[test]
fn std_collections_work() {
    let mut map: HashMap<String, Vec<u64>> = HashMap::new();
    let mut tree = BTreeMap::new();
    for i in 0..50_000u64 {
        map.entry(format!("key-{}", i % 5000)).or_default().push(i);
        tree.insert(i.wrapping_mul(2654435761) % 1_000_003, i.to_string());
    }
    assert_eq!(map.len(), 5000);
    assert_eq!(map["key-42"].len(), 10);
    assert_eq!(
        map["key-42"].iter().sum::<u64>(),
        (0..10).map(|k| 42 + 5000 * k).sum::<u64>()
    );
    let joined: String = tree.values().take(3).cloned().collect::<Vec<_>>().join(",");
    assert!(!joined.is_empty());
    let mut strings: Vec<String> = (0..10_000).map(|i| "x".repeat(i % 700)).collect();
    strings.sort();
    strings.dedup();
    assert_eq!(strings.len(), 700);
    memward::check_thread_heap();
}

#[test]
fn producers_and_consumers_on_other_threads() {
    const PRODUCERS: usize = 3;
    const ITEMS: usize = 20_000;
    let (tx, rx) = mpsc::sync_channel::<(usize, Vec<u8>)>(1024);
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let tx = tx.clone();
            thread::spawn(move || {
                for i in 0..ITEMS {
                    let seed = p * ITEMS + i;
                    let len = [8, 24, 100, 700, 3000, 20_000, 70_000][seed % 7];
                    tx.send((seed, pattern(seed, len))).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let consumer = thread::spawn(move || {
        let mut n = 0;
        for (seed, v) in rx {
            assert_eq!(
                v,
                pattern(seed, v.len()),
                "block {seed} corrupted in transit"
            );
            n += 1;
        }
        n
    });
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(consumer.join().unwrap(), PRODUCERS * ITEMS);
}

#[test]
fn pure_producer_consumer_does_not_grow() {
    // One thread only allocates, another only frees: memory must stay bounded because the
    // producer's slow path takes back what the consumer freed.
    let (tx, rx) = mpsc::sync_channel::<Box<[u8; 256]>>(256);
    let consumer = thread::spawn(move || {
        let mut n = 0u64;
        for b in rx {
            n += b[0] as u64;
        }
        n
    });
    let mut mapped_at = Vec::new();
    for round in 0..10 {
        for i in 0..100_000u32 {
            tx.send(Box::new([(i % 2) as u8; 256])).unwrap();
        }
        mapped_at.push(memward::stats().mapped_bytes);
        let _ = round;
    }
    drop(tx);
    assert_eq!(consumer.join().unwrap(), 500_000);
    let early = mapped_at[1];
    let late = *mapped_at.last().unwrap();
    assert!(
        late <= early + (64 << 20),
        "mapped memory grew from {early} to {late} bytes"
    );
}

#[test]
fn thread_churn_reuses_memory_of_exited_threads() {
    // Hundreds of short-lived threads each leave live blocks behind for the main thread,
    // eight at a time (how many overlap decides how many segments are needed at once).
    let mut kept: Vec<Vec<u8>> = Vec::new();
    let mut mapped = Vec::new();
    for round in 0..6 {
        for batch in 0..12 {
            let handles: Vec<_> = (0..8)
                .map(|t| {
                    thread::spawn(move || {
                        let seed = round * 1000 + batch * 8 + t;
                        let mut local: Vec<Vec<u8>> = (0..300)
                            .map(|i| pattern(seed + i, 16 + (i * 37) % 2000))
                            .collect();
                        // Keep a few, drop the rest on this thread.
                        local.truncate(20);
                        (seed, local)
                    })
                })
                .collect();
            for h in handles {
                let (seed, local) = h.join().unwrap();
                for (i, v) in local.iter().enumerate() {
                    assert_eq!(*v, pattern(seed + i, v.len()));
                }
                kept.extend(local);
            }
        }
        // Free most of what the exited threads left (frees into abandoned segments).
        kept.retain(|v| v.len() % 5 == 0);
        mapped.push(memward::stats().mapped_bytes);
    }
    // Without reuse each round would add about 100 segments (400 MiB); with it, the later
    // rounds find the earlier rounds' segments.
    let growth = mapped[5].saturating_sub(mapped[2]);
    assert!(
        growth <= 64 << 20,
        "memory of exited threads is not reused: {mapped:?}"
    );
    let abandoned = memward::stats().abandoned_segments;
    assert!(
        abandoned >= 8,
        "exited threads left live blocks, so segments were abandoned"
    );
    // Freeing the last blocks of abandoned segments releases them, with no thread
    // allocating afterwards (a block the runtime keeps may hold one or two).
    drop(kept);
    let s = memward::stats();
    assert!(
        s.abandoned_segments <= 2,
        "emptied abandoned segments stay ({abandoned} before the frees): {s}"
    );
}

#[test]
fn odd_alignments_through_global_alloc() {
    let mut live = Vec::new();
    for shift in 0..=21 {
        let align = 1usize << shift;
        for size in [1, align / 2 + 1, align, align + 1, 3 * align, 100] {
            let layout = Layout::from_size_align(size.max(1), align).unwrap();
            // SAFETY: non-zero size layout.
            let p = unsafe { GLOBAL.alloc(layout) };
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0, "size {size} align {align}");
            // SAFETY: p has layout.size() bytes.
            unsafe { std::ptr::write_bytes(p, 0xA5, layout.size()) };
            live.push((p, layout));
        }
    }
    for (p, layout) in live.iter_mut() {
        let new_size = layout.size() * 2 + 10;
        // SAFETY: p is live with `layout`.
        let q = unsafe { GLOBAL.realloc(*p, *layout, new_size) };
        assert!(!q.is_null());
        assert_eq!(
            q as usize % layout.align(),
            0,
            "realloc keeps alignment {}",
            layout.align()
        );
        for i in 0..layout.size() {
            // SAFETY: the first layout.size() bytes were kept.
            assert_eq!(unsafe { *q.add(i) }, 0xA5);
        }
        *p = q;
        *layout = Layout::from_size_align(new_size, layout.align()).unwrap();
    }
    for (p, layout) in live {
        // SAFETY: live, freed once with its layout.
        unsafe { GLOBAL.dealloc(p, layout) };
    }
    // Zeroed allocation of a reused block is zero.
    for _ in 0..3 {
        let layout = Layout::from_size_align(300_000, 64).unwrap();
        // SAFETY: non-zero layout.
        unsafe {
            let p = GLOBAL.alloc_zeroed(layout);
            assert!(std::slice::from_raw_parts(p, layout.size())
                .iter()
                .all(|&b| b == 0));
            std::ptr::write_bytes(p, 1, layout.size());
            GLOBAL.dealloc(p, layout);
        }
    }
}

#[test]
fn fork_child_allocates_and_exits_cleanly() {
    // Other threads allocate while we fork, so locks may be held at that moment.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let v: Vec<Box<[u8]>> = (0..200)
                        .map(|i| vec![i as u8; 10 + i * 300].into_boxed_slice())
                        .collect();
                    n += v.len() as u64;
                }
                n
            })
        })
        .collect();
    for round in 0..20 {
        let parent_data: Vec<String> = (0..1000).map(|i| format!("parent {round} {i}")).collect();
        // SAFETY: fork in a test; the child only allocates and calls _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let ok = std::panic::catch_unwind(|| {
                let mut m: HashMap<u32, Vec<u8>> = HashMap::new();
                for i in 0..20_000u32 {
                    m.insert(i, vec![(i % 256) as u8; (i % 500) as usize]);
                }
                let big = vec![7u8; 8 << 20];
                let t =
                    thread::spawn(|| (0..1000).map(|i| i.to_string()).collect::<Vec<_>>().len());
                let fine = m[&300].len() == 300
                    && big[12345] == 7
                    && parent_data[999] == format!("parent {round} 999")
                    && t.join().unwrap() == 1000;
                drop(parent_data);
                fine
            });
            // SAFETY: leaving the child without running the parent's destructors.
            unsafe { libc::_exit(if matches!(ok, Ok(true)) { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child failed: status {status:#x}"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        assert!(w.join().unwrap() > 0);
    }
}

#[test]
fn stats_count_what_happens() {
    let before = memward::stats();
    let v: Vec<Box<[u8; 100]>> = (0..10_000).map(|_| Box::new([3u8; 100])).collect();
    let mid = memward::stats();
    assert!(
        mid.allocations >= before.allocations + 10_000,
        "{} -> {}",
        before.allocations,
        mid.allocations
    );
    assert!(mid.in_use_bytes >= before.in_use_bytes + 1_000_000);
    assert!(mid.requested_bytes >= before.requested_bytes + 1_000_000);
    assert!(mid.peak_in_use_bytes >= mid.in_use_bytes);
    assert!(mid.mapped_bytes >= mid.in_use_bytes);
    let class_112 = mid
        .size_classes
        .iter()
        .find(|c| c.block_size == 112)
        .unwrap();
    assert!(
        class_112.in_use >= 10_000,
        "100-byte boxes live in the 112-byte class"
    );
    drop(v);
    let after = memward::stats();
    assert!(after.frees >= mid.frees + 10_000);
    assert!(after.in_use_bytes + 1_000_000 <= mid.in_use_bytes + 64 * 1024);
    let text = after.to_string();
    assert!(text.contains("peak in use") && text.contains("size class"));
}
