//! A small program with memward as its global allocator: collections, threads passing
//! memory to each other, a first-class heap, then the allocator's statistics.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;
use std::time::Instant;

#[global_allocator]
static GLOBAL: memward::Memward = memward::Memward;

fn main() {
    let start = Instant::now();

    // Word counts over generated text: many small, short-lived strings.
    let mut counts: HashMap<String, usize> = HashMap::new();
    for i in 0..200_000u64 {
        let word = format!("w{}", i.wrapping_mul(2654435761) % 5000);
        *counts.entry(word).or_default() += 1;
    }
    let top: BTreeMap<usize, usize> = counts.values().fold(BTreeMap::new(), |mut m, &c| {
        *m.entry(c).or_default() += 1;
        m
    });

    // Producers on four threads, one consumer: every block is freed by another thread.
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(256);
    let producers: Vec<_> = (0..4)
        .map(|t| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..25_000usize {
                    tx.send(vec![t as u8; 16 + (i * 97) % 4000]).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let consumed: usize = rx.iter().map(|v| v.len()).sum();
    for p in producers {
        p.join().unwrap();
    }

    // A first-class heap: everything in it goes away at once.
    let heap = memward::Heap::new();
    let mut scratch = allocator_api2::vec::Vec::new_in(&heap);
    scratch.extend((0..1_000_000u32).map(|x| x ^ 0x5a5a));
    let scratch_sum: u64 = scratch.iter().map(|&x| x as u64).sum();
    drop(scratch);
    drop(heap);

    // A large buffer, freed: memory returns to the OS after the purge delay.
    let big = vec![1u8; 256 << 20];
    let big_sum: usize = big.iter().step_by(4096).map(|&b| b as usize).sum();
    drop(big);

    println!(
        "distinct words: {}, count classes: {}",
        counts.len(),
        top.len()
    );
    println!("bytes passed between threads: {consumed}");
    println!("first-class heap checksum: {scratch_sum}, big buffer pages: {big_sum}");
    println!(
        "elapsed: {:.1} ms, purge delay: {} ms",
        start.elapsed().as_secs_f64() * 1e3,
        memward::purge_delay_ms()
    );
    println!();
    print!("{}", memward::stats());
}
