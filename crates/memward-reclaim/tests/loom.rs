//! Loom models of the reclamation protocol. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p memward-reclaim --test loom --release`.
//!
//! Reclaiming a node writes into a loom `UnsafeCell` inside it before freeing it, and readers read
//! that cell through a protected pointer; loom reports any interleaving where the write is not
//! ordered after the read, i.e. any use-after-free the protocol would allow.
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicPtr, Ordering};
use loom::sync::Arc;
use loom::thread;
use memward_reclaim::structures::{HashMap, MsQueue, TreiberStack};
use memward_reclaim::Collector;

struct Node {
    value: UnsafeCell<u64>,
}

fn node(value: u64) -> *mut Node {
    Box::into_raw(Box::new(Node {
        value: UnsafeCell::new(value),
    }))
}

/// Poisons the node (a write loom checks against concurrent reads), then frees it.
///
/// # Safety
/// `p` came from `node` and is reclaimed once.
unsafe fn poison_and_free(p: *mut Node) {
    // SAFETY: the caller's contract; loom checks this write against readers.
    unsafe {
        (*p).value.with_mut(|v| *v = u64::MAX);
        drop(Box::from_raw(p));
    }
}

fn read(p: *mut Node) -> u64 {
    // SAFETY: callers pass protected pointers.
    unsafe { (*p).value.with(|v| *v) }
}

/// One reader protects and reads; one writer swaps the node out and retires it with a scan on
/// every retirement. The read must always see a live value.
#[test]
fn protect_versus_retire() {
    loom::model(|| {
        let collector = Arc::new(Collector::with_batch_size(1));
        let src = Arc::new(AtomicPtr::new(node(1)));

        let reader = {
            let (collector, src) = (collector.clone(), src.clone());
            thread::spawn(move || {
                let guard = collector.enter();
                let p = guard.protect(&src);
                let v = read(p);
                assert!(v == 1 || v == 2, "read a reclaimed node: {v}");
            })
        };

        {
            let guard = collector.enter();
            let old = src.swap(node(2), Ordering::AcqRel);
            // SAFETY: unlinked by the swap, retired once; `poison_and_free` frees a `node`.
            unsafe { guard.retire_with(old, poison_and_free) };
        }
        reader.join().unwrap();
        let last = src.load(Ordering::Acquire);
        // SAFETY: no other reference remains.
        unsafe { poison_and_free(last) };
    });
}

/// A guard entered on one thread and dropped on another while the node it protects is retired
/// and scanned for: the protection holds until the drop on the second thread.
#[test]
fn guard_moves_between_threads() {
    loom::model(|| {
        // SAFETY (for the `&*` below): the collector is freed only after both threads joined.
        let owned = Box::into_raw(Box::new(Collector::with_batch_size(1)));
        // SAFETY: see above; `owned` came from `Box::into_raw` and outlives every use.
        let collector: &'static Collector = unsafe { &*owned };
        let src = Arc::new(AtomicPtr::new(node(7)));

        let guard = collector.enter();
        let p = guard.protect(&src) as usize;
        let other = thread::spawn(move || {
            let p = p as *mut Node;
            assert_eq!(read(p), 7, "the moved guard lost its protection");
            drop(guard);
        });
        {
            let retirer = collector.enter();
            let old = src.swap(std::ptr::null_mut(), Ordering::AcqRel);
            // SAFETY: unlinked by the swap, retired once.
            unsafe { retirer.retire_with(old, poison_and_free) };
        }
        other.join().unwrap();
        // SAFETY: both threads are done; nothing borrows the collector any more.
        drop(unsafe { Box::from_raw(owned) });
    });
}

static CLAIMS_FREED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Frees a node and counts it (for `concurrent_claims_and_retires` only).
///
/// # Safety
/// `p` came from `node` and is reclaimed once.
unsafe fn count_and_free(p: *mut Node) {
    // SAFETY: the caller's contract.
    unsafe { poison_and_free(p) };
    CLAIMS_FREED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Two threads claim records and retire at once; loom checks that a record's owner state is
/// never touched by two guards (the `in_use` claim), and every node is reclaimed exactly once
/// (by a scan or by the collector's drop).
#[test]
fn concurrent_claims_and_retires() {
    loom::model(|| {
        CLAIMS_FREED.store(0, std::sync::atomic::Ordering::Relaxed);
        let collector = Arc::new(Collector::with_batch_size(1));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let collector = collector.clone();
                thread::spawn(move || {
                    let guard = collector.enter();
                    // SAFETY: a fresh node, never shared, retired once.
                    unsafe { guard.retire_with(node(3), count_and_free) };
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let collector = Arc::try_unwrap(collector).ok().expect("threads joined");
        assert_eq!(collector.stats().retired, 2);
        drop(collector);
        assert_eq!(CLAIMS_FREED.load(std::sync::atomic::Ordering::Relaxed), 2);
    });
}

/// The Treiber stack under loom: a push racing a pop, values neither lost nor duplicated.
#[test]
fn treiber_push_pop() {
    loom::model(|| {
        let stack = Arc::new(TreiberStack::with_reclaim(Collector::with_batch_size(1)));
        stack.push(1u32);
        let popper = {
            let stack = stack.clone();
            thread::spawn(move || stack.pop())
        };
        stack.push(2);
        let a = popper.join().unwrap();
        let b = stack.pop();
        let c = stack.pop();
        let mut got: Vec<u32> = [a, b, c].into_iter().flatten().collect();
        got.sort();
        assert_eq!(got, vec![1, 2]);
    });
}

/// The Michael-Scott queue under loom: a dequeue racing an enqueue (tail helping, head
/// validation, retirement with a scan per retire), FIFO order kept.
#[test]
fn ms_queue_push_pop() {
    loom::model(|| {
        let queue = Arc::new(MsQueue::with_reclaim(Collector::with_batch_size(1)));
        queue.push(1u32);
        let popper = {
            let queue = queue.clone();
            thread::spawn(move || queue.pop())
        };
        queue.push(2);
        let first = popper.join().unwrap();
        assert_eq!(first, Some(1), "FIFO: the first value leaves first");
        assert_eq!(queue.pop(), Some(2));
        assert_eq!(queue.pop(), None);
    });
}

/// The hash map under loom: a reader racing a writer that replaces (and retires) the bucket.
#[test]
fn hash_map_get_versus_insert() {
    loom::model(|| {
        let map = Arc::new(HashMap::with_reclaim(
            1,
            Collector::with_batch_size(1),
            std::collections::hash_map::RandomState::new(),
        ));
        map.insert(1u32, 10u32);
        let reader = {
            let map = map.clone();
            thread::spawn(move || map.get(&1))
        };
        map.insert(1, 11);
        let seen = reader.join().unwrap();
        assert!(seen == Some(10) || seen == Some(11), "{seen:?}");
        assert_eq!(map.get(&1), Some(11));
    });
}
