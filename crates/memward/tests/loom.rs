//! Model checks of the cross-thread free protocol with loom (`--cfg loom`; `scripts/test`
//! runs them). Under loom the crate compiles only its lock-free core (`list.rs`), and these
//! tests drive those same types through the protocol's steps as `heap/remote.rs`,
//! `heap/abandon.rs` and `free.rs` take them, over every interleaving loom explores:
//!
//! - remote frees and outbox batches: producers push single blocks and chains onto a
//!   heap's `BlockStack` while its owner drains it; every block arrives exactly once, with
//!   its chain intact;
//! - abandon and adopt: a remote freer routes a block (abandoned stack, else the owner's
//!   queue) while the owner abandons the segment (opens its stack, then drains its own
//!   queue once more and routes what raced) and another heap adopts it (closes the stack
//!   and takes what it collected); afterwards the block has been freed exactly once, into
//!   the adopter's hands, whichever way it went.
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use memward::list::{Block, BlockStack, TaggedBlockStack};
use std::collections::HashSet;

/// Two-word, 16-byte aligned blocks owned by the test (the protocol only links them, so
/// the words are written through `Block` and never read as `Mem`).
#[repr(align(16))]
struct Mem(#[allow(dead_code)] [usize; 2]);

/// Explores every interleaving with up to this many preemptions: enough for each race
/// of the protocol (a push between a load and its CAS, a push between the tag and the
/// drain), and keeps the run to seconds.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

fn blocks(n: usize) -> Vec<usize> {
    (0..n)
        .map(|_| Box::into_raw(Box::new(Mem([0; 2]))) as usize)
        .collect()
}

fn free_blocks(blocks: &[usize]) {
    for &b in blocks {
        // SAFETY: each block came from Box::into_raw in `blocks` and is freed once.
        drop(unsafe { Box::from_raw(b as *mut Mem) });
    }
}

/// Collects a taken chain into `seen`, failing on a block seen twice.
fn collect(mut b: *mut Block, seen: &mut Vec<usize>) {
    while !b.is_null() {
        assert!(!seen.contains(&(b as usize)), "block delivered twice");
        seen.push(b as usize);
        // SAFETY: taken chains hold the test's blocks with links written by the pushers.
        b = unsafe { Block::remote_next(b) };
    }
}

#[test]
fn remote_pushes_and_outbox_chains_arrive_exactly_once() {
    model(|| {
        let all = blocks(3);
        let queue = Arc::new(BlockStack::new());
        // One freer sends a single block, the other an outbox chain of two.
        let single = all[0];
        let (c0, c1) = (all[1], all[2]);
        let q1 = queue.clone();
        let t1 = thread::spawn(move || {
            let b = single as *mut Block;
            // SAFETY: the block is ours until pushed.
            unsafe { q1.push_chain(b, b) };
        });
        let q2 = queue.clone();
        let t2 = thread::spawn(move || {
            let (first, last) = (c0 as *mut Block, c1 as *mut Block);
            // SAFETY: the two blocks are ours until pushed; `first` links to `last`.
            unsafe {
                Block::set_remote_next(first, last);
                q2.push_chain(first, last);
            }
        });
        // The owner drains while the pushes happen, and once more after.
        let mut seen = Vec::new();
        collect(queue.take_all(), &mut seen);
        t1.join().unwrap();
        t2.join().unwrap();
        collect(queue.take_all(), &mut seen);
        let got: HashSet<usize> = seen.iter().copied().collect();
        assert_eq!(got, all.iter().copied().collect::<HashSet<_>>());
        // The chain kept its order: c0 is followed by c1 wherever it was taken.
        let i = seen.iter().position(|&b| b == c0).unwrap();
        assert_eq!(seen.get(i + 1), Some(&c1), "chain split");
        free_blocks(&all);
    });
}

/// A segment as the protocol sees it: its owner's thread (0 while abandoned), its
/// abandoned-free stack, and the queues of its old and new owning heaps.
struct Segment {
    thread_id: AtomicUsize,
    abandoned: TaggedBlockStack,
    old_heap: BlockStack,
    new_heap: BlockStack,
    on_abandoned_list: AtomicBool,
}

const OLD: usize = 1;
const NEW: usize = 2;

/// `route_remote_free`: the abandoned stack if open, else the owner's queue (the owner
/// read from the segment may be stale; the adopter sets it after closing the stack, so a
/// freer that fails to push reads the new owner unless it read it too early).
fn route(seg: &Segment, b: *mut Block) {
    // SAFETY: the block is being freed by the caller.
    if unsafe { seg.abandoned.try_push(b) } {
        return;
    }
    let queue = if seg.thread_id.load(Ordering::Acquire) == NEW {
        &seg.new_heap
    } else {
        &seg.old_heap
    };
    // SAFETY: as above.
    unsafe { queue.push_chain(b, b) };
}

#[test]
fn a_free_racing_abandon_and_adopt_is_applied_exactly_once() {
    model(|| {
        let all = blocks(1);
        let seg = Arc::new(Segment {
            thread_id: AtomicUsize::new(OLD),
            abandoned: TaggedBlockStack::new(),
            old_heap: BlockStack::new(),
            new_heap: BlockStack::new(),
            on_abandoned_list: AtomicBool::new(false),
        });

        // Another thread frees the block.
        let s = seg.clone();
        let b = all[0];
        let freer = thread::spawn(move || route(&s, b as *mut Block));

        // The owner exits: `Segment::mark_abandoned`, `segment_pool::abandon`, then the
        // second drain of its own queue, routing what raced.
        let s = seg.clone();
        let owner = thread::spawn(move || {
            s.abandoned.open();
            s.thread_id.store(0, Ordering::Release);
            s.on_abandoned_list.store(true, Ordering::Release);
            let mut b = s.old_heap.take_all();
            while !b.is_null() {
                // SAFETY: taken blocks are being freed; links were published by the push.
                let next = unsafe { Block::remote_next(b) };
                route(&s, b);
                b = next;
            }
        });

        // A heap that needs pages adopts the segment once it is on the abandoned list:
        // `Segment::adopt` sets the owner, then closes the stack and applies its frees.
        let s = seg.clone();
        let adopter = thread::spawn(move || {
            while !s.on_abandoned_list.load(Ordering::Acquire) {
                thread::yield_now();
            }
            s.thread_id.store(NEW, Ordering::Release);
            let mut seen = Vec::new();
            collect(s.abandoned.close_and_take(), &mut seen);
            seen
        });

        freer.join().unwrap();
        owner.join().unwrap();
        let mut seen = adopter.join().unwrap();
        // Late pushes: to the new owner's queue (its next drain), or to the old heap,
        // which is retired and drained by `pool::drain_retired_heaps`, routing again.
        collect(seg.new_heap.take_all(), &mut seen);
        let mut late = seg.old_heap.take_all();
        while !late.is_null() {
            // SAFETY: as above.
            let next = unsafe { Block::remote_next(late) };
            route(&seg, late);
            late = next;
        }
        collect(seg.new_heap.take_all(), &mut seen);
        assert_eq!(seen, all, "the block was freed exactly once");
        assert!(seg.abandoned.close_and_take().is_null());
        free_blocks(&all);
    });
}
