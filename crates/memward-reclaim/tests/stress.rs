//! Multi-threaded stress tests under memward as the global allocator.
//!
//! Every value read through a guard carries a checksum of its identity, and dropping a value
//! overwrites it with a poison pattern before its memory goes back to the allocator; a node
//! freed too early is therefore read as a checksum mismatch (or as poison), not silently.
//! memward reuses freed blocks quickly (thread-local free lists), which makes early frees
//! visible sooner than under the system allocator. The bound test holds a guard while millions
//! of nodes are retired and checks that the unreclaimed count stays a constant.
#![cfg(not(loom))]

use memward_reclaim::structures::{HashMap, MsQueue, TreiberStack};
use memward_reclaim::Collector;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;

#[global_allocator]
static GLOBAL: memward::Memward = memward::Memward;

const POISON: u64 = 0xdead_beef_dead_beef;

fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A value that knows whether it is intact.
#[derive(Debug, Clone, PartialEq)]
struct Item {
    id: u64,
    check: u64,
    /// Heap data too, so a use-after-free also shows up as a bad inner pointer.
    payload: Box<[u64; 4]>,
}

impl Item {
    fn new(id: u64) -> Self {
        Self {
            id,
            check: mix(id),
            payload: Box::new([id, !id, mix(!id), id ^ 0x55]),
        }
    }

    #[track_caller]
    fn verify(&self) -> u64 {
        assert_ne!(self.id, POISON, "read a dropped item");
        assert_eq!(
            self.check,
            mix(self.id),
            "checksum mismatch on item {}",
            self.id
        );
        let id = self.id;
        assert_eq!(
            *self.payload,
            [id, !id, mix(!id), id ^ 0x55],
            "payload of {id}"
        );
        id
    }
}

impl Drop for Item {
    fn drop(&mut self) {
        // Volatile so the poison is really written before the memory is freed.
        // SAFETY: `&mut self` fields are valid for writes.
        unsafe {
            std::ptr::write_volatile(&mut self.id, POISON);
            std::ptr::write_volatile(&mut self.check, POISON);
        }
    }
}

fn threads() -> usize {
    4
}

#[test]
fn treiber_stack_values_intact_and_counted() {
    const PER_THREAD: u64 = 50_000;
    let stack = Arc::new(TreiberStack::with_reclaim(Collector::with_batch_size(4)));
    let popped_sum = Arc::new(AtomicUsize::new(0));
    let popped_count = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..threads() as u64)
        .map(|t| {
            let (stack, sum, count) = (stack.clone(), popped_sum.clone(), popped_count.clone());
            thread::spawn(move || {
                for i in 0..PER_THREAD {
                    stack.push(Item::new(t * PER_THREAD + i));
                    if i % 3 != 0 {
                        if let Some(item) = stack.pop() {
                            sum.fetch_add(item.verify() as usize, Ordering::Relaxed);
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut sum = popped_sum.load(Ordering::Relaxed) as u64;
    let mut count = popped_count.load(Ordering::Relaxed) as u64;
    while let Some(item) = stack.pop() {
        sum += item.verify();
        count += 1;
    }
    let n = threads() as u64 * PER_THREAD;
    assert_eq!(count, n, "every pushed item popped exactly once");
    assert_eq!(sum, n * (n - 1) / 2, "no item lost or duplicated");
    let stats = stack.reclaim().stats();
    assert_eq!(stats.retired, n as usize);
    assert!(stats.unreclaimed() <= stats.records * (4 + 16), "{stats:?}");
}

#[test]
fn ms_queue_fifo_per_producer_and_intact() {
    const PER_PRODUCER: u64 = 50_000;
    let queue = Arc::new(MsQueue::with_reclaim(Collector::with_batch_size(4)));
    let producers = 2u64;
    let done = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for p in 0..producers {
        let (queue, done) = (queue.clone(), done.clone());
        handles.push(thread::spawn(move || {
            for i in 0..PER_PRODUCER {
                queue.push(Item::new((p << 32) | i));
            }
            done.fetch_add(1, Ordering::Release);
            Vec::new()
        }));
    }
    for _ in 0..2 {
        let (queue, done) = (queue.clone(), done.clone());
        handles.push(thread::spawn(move || {
            let mut last = vec![None::<u64>; producers as usize];
            let mut seen = Vec::new();
            loop {
                match queue.pop() {
                    Some(item) => {
                        let id = item.verify();
                        let (p, i) = ((id >> 32) as usize, id & 0xffff_ffff);
                        assert!(last[p].is_none_or(|l| l < i), "FIFO order broken for {p}");
                        last[p] = Some(i);
                        seen.push(id);
                    }
                    None if done.load(Ordering::Acquire) == producers as usize => {
                        if queue.pop().is_none() {
                            break;
                        }
                        panic!("value appeared after the queue was drained");
                    }
                    None => thread::yield_now(),
                }
            }
            seen
        }));
    }
    let mut all: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort_unstable();
    let expected: Vec<u64> = (0..producers)
        .flat_map(|p| (0..PER_PRODUCER).map(move |i| (p << 32) | i))
        .collect();
    assert_eq!(all, expected);
}

#[test]
fn hash_map_reads_see_intact_values() {
    const KEYS: u64 = 64;
    const OPS: u64 = 40_000;
    let map = Arc::new(HashMap::with_reclaim(
        16,
        Collector::with_batch_size(4),
        std::collections::hash_map::RandomState::new(),
    ));
    let handles: Vec<_> = (0..threads() as u64)
        .map(|t| {
            let map = map.clone();
            thread::spawn(move || {
                let mut reads = 0u64;
                for i in 0..OPS {
                    let key = mix(t * OPS + i) % KEYS;
                    match i % 4 {
                        0 => {
                            map.insert(key, Arc::new(Item::new(key)));
                        }
                        1 => {
                            map.remove(&key);
                        }
                        _ => {
                            if let Some(id) = map.get_with(&key, |v| v.verify()) {
                                assert_eq!(id, key, "value stored under the wrong key");
                                reads += 1;
                            }
                        }
                    }
                }
                reads
            })
        })
        .collect();
    let reads: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(reads > 0, "the readers found nothing to check");
    for key in 0..KEYS {
        if let Some(id) = map.get_with(&key, |v| v.verify()) {
            assert_eq!(id, key);
        }
    }
}

static DROPS: AtomicUsize = AtomicUsize::new(0);

struct Counted(#[allow(dead_code)] u64);
impl Drop for Counted {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn dropping_the_collector_reclaims_everything() {
    let collector = Collector::with_batch_size(1_000_000);
    let src = AtomicPtr::new(Box::into_raw(Box::new(Counted(0))));
    let before = DROPS.load(Ordering::Relaxed);
    let guard = collector.enter();
    let protected = guard.protect(&src);
    for i in 1..=1000 {
        let old = src.swap(Box::into_raw(Box::new(Counted(i))), Ordering::AcqRel);
        // SAFETY: unlinked by the swap, retired once.
        unsafe { guard.retire(old) };
    }
    guard.flush();
    // Only `protected` (the first node) may survive the flush.
    assert_eq!(DROPS.load(Ordering::Relaxed) - before, 999);
    assert_eq!(collector.stats().unreclaimed(), 1);
    assert!(!protected.is_null());
    drop(guard);
    drop(collector);
    assert_eq!(DROPS.load(Ordering::Relaxed) - before, 1000);
    // SAFETY: the last node was never retired.
    drop(unsafe { Box::from_raw(src.load(Ordering::Relaxed)) });
}

#[test]
fn guard_moved_to_another_thread_keeps_protecting() {
    let collector = Collector::with_batch_size(1);
    let src = AtomicPtr::new(Box::into_raw(Box::new(Item::new(42))));
    thread::scope(|s| {
        let guard = collector.enter();
        let p = guard.protect(&src) as usize;
        let (tx, rx) = mpsc::channel();
        let (retired_tx, retired_rx) = mpsc::channel();
        let reader = s.spawn(move || {
            let guard = rx.recv().unwrap();
            retired_rx.recv().unwrap();
            // The node was retired and scanned for while this guard, entered on another
            // thread, protected it.
            // SAFETY: protected by `guard`.
            assert_eq!(unsafe { &*(p as *const Item) }.verify(), 42);
            drop(guard);
        });
        tx.send(guard).unwrap();
        let retirer = collector.enter();
        let old = src.swap(Box::into_raw(Box::new(Item::new(43))), Ordering::AcqRel);
        // SAFETY: unlinked by the swap, retired once.
        unsafe { retirer.retire(old) };
        assert_eq!(
            collector.stats().unreclaimed(),
            1,
            "protected node was freed"
        );
        retired_tx.send(()).unwrap();
        reader.join().unwrap();
        retirer.flush();
        assert_eq!(collector.stats().unreclaimed(), 0, "released node was kept");
    });
    // SAFETY: the last node was never retired.
    drop(unsafe { Box::from_raw(src.load(Ordering::Relaxed)) });
}

/// A guard held (with a protected node) while other threads retire millions of nodes: the
/// unreclaimed count stays below a constant that depends on records and batch size only.
#[test]
fn stalled_guard_keeps_garbage_bounded() {
    const RETIRES_PER_THREAD: usize = 1_000_000;
    const WORKERS: usize = 2;
    const BATCH: usize = 64;
    let stack = Arc::new(TreiberStack::with_reclaim(Collector::with_batch_size(
        BATCH,
    )));
    stack.push(Item::new(u64::MAX - 1));
    let start = Arc::new(Barrier::new(WORKERS + 2)); // workers, the stalled reader, this thread
    let stop = Arc::new(AtomicUsize::new(0));

    // The stalled reader: protects the current top node and sits on it.
    let (stalled_tx, stalled_rx) = mpsc::channel();
    let stalled = {
        let (stack, start, stop) = (stack.clone(), start.clone(), stop.clone());
        thread::spawn(move || {
            let guard = stack.reclaim().enter();
            let src = AtomicPtr::new(std::ptr::null_mut::<u8>());
            let _ = guard.protect(&src);
            stalled_tx.send(()).unwrap();
            start.wait();
            while stop.load(Ordering::Acquire) < WORKERS {
                thread::sleep(std::time::Duration::from_millis(1));
            }
            drop(guard);
        })
    };
    stalled_rx.recv().unwrap();
    // Also pin a real node: a guard on this thread protects the top of the stack while it is
    // popped and retired by the workers.
    let held = stack.reclaim().enter();
    let top_src = AtomicPtr::new(Box::into_raw(Box::new(Item::new(7))));
    let top = held.protect(&top_src);

    let peak = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..WORKERS)
        .map(|t| {
            let (stack, start, stop, peak) =
                (stack.clone(), start.clone(), stop.clone(), peak.clone());
            thread::spawn(move || {
                start.wait();
                for i in 0..RETIRES_PER_THREAD {
                    stack.push(Item::new((t * RETIRES_PER_THREAD + i) as u64));
                    stack.pop().expect("just pushed").verify();
                    if i % 4096 == 0 {
                        peak.fetch_max(stack.reclaim().stats().unreclaimed(), Ordering::Relaxed);
                    }
                }
                stop.fetch_add(1, Ordering::Release);
            })
        })
        .collect();
    start.wait();
    // Retire the node `held` protects, in the middle of the storm.
    let old = top_src.swap(std::ptr::null_mut(), Ordering::AcqRel);
    // SAFETY: unlinked by the swap, retired once.
    unsafe { held.retire(old) };
    for w in workers {
        w.join().unwrap();
    }
    stalled.join().unwrap();
    // SAFETY: still protected by `held`.
    assert_eq!(unsafe { &*top }.verify(), 7);

    let stats = stack.reclaim().stats();
    assert!(stats.retired >= WORKERS * RETIRES_PER_THREAD);
    // Per record: fewer than `kept + max(batch, hazards)` pending, `kept <= hazards`; hazards
    // here are at most one per guard (each pop protects once; a retry protects again), so 8 is
    // generous.
    let hazards = 8;
    let bound = stats.records * (BATCH + 2 * hazards);
    let peak = peak.load(Ordering::Relaxed);
    assert!(
        peak <= bound,
        "peak {peak} unreclaimed > bound {bound} ({stats:?})"
    );
    assert!(stats.unreclaimed() <= bound, "{stats:?} > {bound}");
    drop(held);
}

/// The tightest race: readers protect one hot pointer that a writer keeps replacing and
/// retiring, with a scan after every retirement (batch size 1), so an early free is reused by
/// the allocator at once and shows up as a bad checksum.
#[test]
fn hot_pointer_replaced_under_readers() {
    const SWAPS: u64 = 100_000;
    let collector = Collector::with_batch_size(1);
    let src = AtomicPtr::new(Box::into_raw(Box::new(Item::new(0))));
    let done = AtomicUsize::new(0);
    thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let mut reads = 0u64;
                while done.load(Ordering::Acquire) == 0 || reads == 0 {
                    let guard = collector.enter();
                    let p = guard.protect(&src);
                    // SAFETY: protected by `guard`; `src` is a root.
                    let item = unsafe { &*p };
                    item.verify();
                    // Allocate while holding the pointer, so a freed block would be reused now.
                    let churn = Box::new(Item::new(u64::MAX));
                    item.verify();
                    drop(churn);
                    reads += 1;
                }
            });
        }
        s.spawn(|| {
            for i in 1..=SWAPS {
                let guard = collector.enter();
                let old = src.swap(Box::into_raw(Box::new(Item::new(i))), Ordering::AcqRel);
                // SAFETY: unlinked by the swap, retired once.
                unsafe { guard.retire(old) };
            }
            done.store(1, Ordering::Release);
        });
    });
    assert_eq!(collector.stats().retired, SWAPS as usize);
    // SAFETY: the last value was never retired and no guard is alive.
    drop(unsafe { Box::from_raw(src.load(Ordering::Relaxed)) });
}
