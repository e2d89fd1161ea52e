//! A reader holds a guard (and the node it protects) for a whole second while a writer keeps
//! replacing and retiring nodes; the collector's unreclaimed count stays at one batch, and the
//! protected node stays readable.
//!
//! `cargo run --release -p memward-reclaim --example stalled_reader`

use memward_reclaim::structures::TreiberStack;
use memward_reclaim::Collector;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::time::{Duration, Instant};

fn main() {
    let stack = TreiberStack::with_reclaim(Collector::new());
    let shared = AtomicPtr::new(Box::into_raw(Box::new(String::from("held"))));
    let stop = AtomicBool::new(false);

    std::thread::scope(|s| {
        s.spawn(|| {
            let guard = stack.reclaim().enter();
            let p = guard.protect(&shared);
            // The reader stalls with its guard, as a descheduled thread or a long `.await` would.
            std::thread::sleep(Duration::from_secs(1));
            // SAFETY: protected by `guard` the whole time.
            println!("reader still sees {:?} after a second", unsafe { &*p });
            stop.store(true, Ordering::Release);
        });
        s.spawn(|| {
            let guard = stack.reclaim().enter();
            let old = shared.swap(std::ptr::null_mut(), Ordering::AcqRel);
            // SAFETY: unlinked by the swap, retired once.
            unsafe { guard.retire(old) };
            drop(guard);
            let start = Instant::now();
            let (mut ops, mut peak) = (0u64, 0usize);
            while !stop.load(Ordering::Acquire) {
                stack.push(ops);
                stack.pop();
                ops += 1;
                if ops % 1000 == 0 {
                    peak = peak.max(stack.reclaim().stats().unreclaimed());
                }
            }
            println!(
                "writer retired {ops} nodes in {:.2?}; peak unreclaimed {peak} (batch {})",
                start.elapsed(),
                stack.reclaim().batch_size()
            );
        });
    });
}
