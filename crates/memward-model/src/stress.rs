//! Threads racing on the allocator, exchanging blocks and dying with blocks still live.
//!
//! The shape is mimalloc's `test-stress`: rounds of threads that allocate, reallocate and
//! free at random, and swap blocks through a shared array of slots, so that a block is
//! often freed by a thread other than its allocator while that thread is still busy (the
//! outbox and remote-free queue under real contention). Each thread exits at the end of
//! its round keeping some blocks alive in a shared pool; the next round's threads take
//! them over and free them into segments whose heaps were abandoned and may have been
//! adopted meanwhile. Every block's contents are checked whenever it changes hands.

use crate::action::{Align, Size};
use crate::block::Block;
use std::sync::Mutex;

/// The size of a stress run.
///
/// ```
/// let c = memward_model::stress::Config { threads: 2, rounds: 2, steps: 100, slots: 16, seed: 1 };
/// memward_model::stress::run(c);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Threads alive at once.
    pub threads: usize,
    /// How many times the threads are ended and replaced.
    pub rounds: usize,
    /// Actions per thread per round.
    pub steps: usize,
    /// Shared slots through which threads swap blocks.
    pub slots: usize,
    /// Seeds every thread's random choices (the interleaving is the OS's).
    pub seed: u64,
}

/// What all threads share: the exchange slots and the blocks of threads that have exited.
struct Shared {
    slots: Vec<Mutex<Option<Block>>>,
    survivors: Mutex<Vec<Block>>,
}

/// splitmix64, one stream per thread and round.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn one_thread(shared: &Shared, mut rng: Rng, steps: usize) {
    // Take over up to a third of the blocks earlier threads left behind.
    let mut mine: Vec<Block> = {
        let mut pool = shared.survivors.lock().unwrap();
        let take = pool.len() / 3;
        let at = pool.len() - take;
        pool.split_off(at)
    };
    mine.iter().for_each(Block::verify);
    for step in 0..steps {
        let roll = rng.below(100);
        if roll < 45 || mine.is_empty() {
            // Mostly small: the exchange is what is under test, not the huge-block path.
            let size = Size {
                bucket: (rng.below(97)) as u8,
                value: rng.next() as u32,
            }
            .bytes();
            let align = Align {
                bucket: rng.next() as u8,
                log2: rng.next() as u8,
            }
            .bytes_for(size);
            mine.push(Block::alloc(
                size,
                align,
                rng.below(8) == 0,
                rng.next() as u8,
            ));
        } else if roll < 60 {
            let i = rng.below(mine.len());
            let size = Size {
                bucket: (rng.below(97)) as u8,
                value: rng.next() as u32,
            };
            let b = mine.swap_remove(i);
            mine.push(b.realloc(size.bytes()));
        } else if roll < 85 {
            let i = rng.below(mine.len());
            mine.swap_remove(i).free();
        } else {
            // Swap one of ours into a random slot; whatever was there is now ours.
            let i = rng.below(mine.len());
            let slot = rng.below(shared.slots.len());
            let theirs = shared.slots[slot]
                .lock()
                .unwrap()
                .replace(mine.swap_remove(i));
            if let Some(b) = theirs {
                b.verify();
                mine.push(b);
            }
        }
        if step % 1000 == 999 {
            memward::check_thread_heap();
        }
    }
    // Die with a quarter of the blocks still live, for the next round.
    let keep = mine.len() / 4;
    let survivors = mine.split_off(mine.len() - keep);
    mine.into_iter().for_each(Block::free);
    memward::check_thread_heap();
    shared.survivors.lock().unwrap().extend(survivors);
}

/// Runs `config.rounds` rounds of `config.threads` racing threads (see the module docs),
/// then frees every block still in a slot or the survivors' pool, checking its contents.
///
/// ```
/// memward_model::stress::run(memward_model::stress::Config {
///     threads: 3, rounds: 3, steps: 200, slots: 8, seed: 42,
/// });
/// ```
pub fn run(config: Config) {
    assert!(config.threads > 0 && config.slots > 0);
    let shared = Shared {
        slots: (0..config.slots).map(|_| Mutex::new(None)).collect(),
        survivors: Mutex::new(Vec::new()),
    };
    for round in 0..config.rounds {
        std::thread::scope(|scope| {
            for t in 0..config.threads {
                let seed = config.seed ^ ((round as u64) << 32 | t as u64);
                let shared = &shared;
                std::thread::Builder::new()
                    .name(format!("stress-{round}-{t}"))
                    .spawn_scoped(scope, move || one_thread(shared, Rng(seed), config.steps))
                    .expect("spawning a stress thread");
            }
        });
    }
    let leftovers = shared.survivors.into_inner().unwrap();
    let in_slots = shared
        .slots
        .into_iter()
        .filter_map(|s| s.into_inner().unwrap());
    leftovers.into_iter().chain(in_slots).for_each(Block::free);
    memward::check_thread_heap();
}
