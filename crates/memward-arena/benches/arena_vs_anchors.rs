//! memward-arena against bumpalo, bump-scope and blink-alloc (arenas) and slab and slotmap
//! (pools), side by side in one run.
//!
//! `cargo bench -p memward-arena --bench arena_vs_anchors [-- --rounds N] [--only TEXT]`
//!
//! Each case is 10,007 operations (the count bumpalo's and blink-alloc's suites use). In
//! every round each implementation runs the case once, in a rotating order, so noise from a
//! shared machine falls on all of them alike; set-up (a reset, a refill) is outside the
//! timed part, and arenas are warm (their chunks kept from earlier rounds), as a program
//! that resets an arena per frame or request sees them. The report gives each
//! implementation's median time and the per-round ratio memward / that implementation
//! (median and quartiles): below 1 means memward is faster. Our own tiny harness rather than
//! criterion, because criterion measures one function at a time and cannot interleave.

use allocator_api2::alloc::Allocator;
use core::alloc::Layout;
use std::hint::black_box;
use std::time::Instant;

const N: usize = 10_007;

type Sample = Box<dyn FnMut() -> f64>;

fn timed(f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_nanos() as f64
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Runs every case for `rounds` rounds and prints one table per case (only cases whose
/// title contains the `--only` argument, if given).
fn report(title: &str, impls: Vec<(&'static str, Sample)>, rounds: usize) {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--only") {
        if !title.contains(args[i + 1].as_str()) {
            return;
        }
    }
    let mut impls = impls;
    let k = impls.len();
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); k];
    for round in 0..rounds {
        for j in 0..k {
            let which = (round + j) % k;
            let t = (impls[which].1)();
            times[which].push(t);
        }
    }
    println!("\n### {title}\n");
    println!("| implementation | median µs | p25 | p75 | memward / this: median [p25, p75] |");
    println!("|---|---|---|---|---|");
    for which in 0..k {
        let mut v = times[which].clone();
        v.sort_by(f64::total_cmp);
        let mut r: Vec<f64> = times[0]
            .iter()
            .zip(&times[which])
            .map(|(a, b)| a / b)
            .collect();
        r.sort_by(f64::total_cmp);
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} [{:.2}, {:.2}] |",
            impls[which].0,
            quantile(&v, 0.5) / 1000.0,
            quantile(&v, 0.25) / 1000.0,
            quantile(&v, 0.75) / 1000.0,
            quantile(&r, 0.5),
            quantile(&r, 0.25),
            quantile(&r, 0.75)
        );
    }
}

/// `alloc(make(i))` ×N in a warm arena, for each arena. The value is built from the loop
/// index so it can be written straight into the arena (a `black_box`ed value would be
/// copied through the stack, which measures store forwarding rather than the arena).
fn alloc_case<T: Copy + 'static>(title: &str, make: fn(usize) -> T, rounds: usize) {
    let mut ours = memward_arena::Arena::new();
    let mut bumpalo = bumpalo::Bump::new();
    let mut scope = bump_scope::Bump::<bump_scope::alloc::Global>::new();
    let mut blink = blink_alloc::Blink::new();
    report(
        title,
        vec![
            (
                "memward Arena",
                Box::new(move || {
                    ours.reset();
                    timed(|| {
                        for i in 0..N {
                            black_box(ours.alloc(make(black_box(i))));
                        }
                    })
                }),
            ),
            (
                "bumpalo",
                Box::new(move || {
                    bumpalo.reset();
                    timed(|| {
                        for i in 0..N {
                            black_box(bumpalo.alloc(make(black_box(i))));
                        }
                    })
                }),
            ),
            (
                "bump-scope",
                Box::new(move || {
                    scope.reset();
                    timed(|| {
                        for i in 0..N {
                            black_box(scope.alloc(make(black_box(i))).into_mut());
                        }
                    })
                }),
            ),
            (
                "blink-alloc",
                Box::new(move || {
                    blink.reset();
                    timed(|| {
                        for i in 0..N {
                            black_box(blink.put(make(black_box(i))));
                        }
                    })
                }),
            ),
        ],
        rounds,
    );
}

fn reset_case(rounds: usize) {
    let mut ours = memward_arena::Arena::new();
    let mut bumpalo = bumpalo::Bump::new();
    let mut scope = bump_scope::Bump::<bump_scope::alloc::Global>::new();
    let mut blink = blink_alloc::Blink::new();
    report(
        "reset after 10,007 × u32 (time of the reset alone, in µs)",
        vec![
            (
                "memward Arena",
                Box::new(move || {
                    for i in 0..N {
                        black_box(ours.alloc(i as u32));
                    }
                    timed(|| ours.reset())
                }),
            ),
            (
                "bumpalo",
                Box::new(move || {
                    for i in 0..N {
                        black_box(bumpalo.alloc(i as u32));
                    }
                    timed(|| bumpalo.reset())
                }),
            ),
            (
                "bump-scope",
                Box::new(move || {
                    for i in 0..N {
                        black_box(scope.alloc(i as u32).into_mut());
                    }
                    timed(|| scope.reset())
                }),
            ),
            (
                "blink-alloc",
                Box::new(move || {
                    for i in 0..N {
                        black_box(blink.put(i as u32));
                    }
                    timed(|| blink.reset())
                }),
            ),
        ],
        rounds,
    );
}

/// Pushes N items one at a time into an allocator-api2 `Vec` in each arena; with
/// `exact`, calls `reserve_exact(1)` before each push (growth by one element each time).
fn vec_case(exact: bool, rounds: usize) {
    fn fill<A: Allocator>(alloc: A, exact: bool) {
        let mut v = allocator_api2::vec::Vec::new_in(alloc);
        for i in 0..N {
            if exact {
                v.reserve_exact(1);
            }
            v.push(black_box(i));
        }
        black_box(&v);
    }
    let mut ours = memward_arena::Arena::new();
    let mut bumpalo = bumpalo::Bump::new();
    let mut scope = bump_scope::Bump::<bump_scope::alloc::Global>::new();
    let mut blink = blink_alloc::BlinkAlloc::new();
    let title = if exact {
        "Vec: reserve_exact(1) + push(usize) × 10,007"
    } else {
        "Vec: push(usize) × 10,007"
    };
    report(
        title,
        vec![
            (
                "memward Arena",
                Box::new(move || {
                    ours.reset();
                    timed(|| fill(&ours, exact))
                }),
            ),
            (
                "bumpalo",
                Box::new(move || {
                    bumpalo.reset();
                    timed(|| fill(&bumpalo, exact))
                }),
            ),
            (
                "bump-scope",
                Box::new(move || {
                    scope.reset();
                    timed(|| fill(&scope, exact))
                }),
            ),
            (
                "blink-alloc",
                Box::new(move || {
                    blink.reset();
                    timed(|| {
                        // blink-alloc implements allocator-api2 0.4, whose Vec is the same
                        // port of std's Vec.
                        let mut v = allocator_api2_04::vec::Vec::new_in(&blink);
                        for i in 0..N {
                            if exact {
                                v.reserve_exact(1);
                            }
                            v.push(black_box(i));
                        }
                        black_box(&v);
                    })
                }),
            ),
        ],
        rounds,
    );
}

fn shared_case(rounds: usize) {
    let mut ours = memward_arena::Arena::new();
    let mut shared = memward_arena::SyncArena::new();
    let mut blink = blink_alloc::BlinkAlloc::new();
    let mut blink_sync = blink_alloc::SyncBlinkAlloc::new();
    let layout = Layout::new::<u64>();
    report(
        "shared arenas on one thread: 10,007 × u64 (memward Arena is the base of the ratios)",
        vec![
            (
                "memward Arena",
                Box::new(move || {
                    ours.reset();
                    timed(|| {
                        for i in 0..N {
                            black_box(ours.alloc(black_box(i as u64)));
                        }
                    })
                }),
            ),
            (
                "memward SyncArena",
                Box::new(move || {
                    shared.reset();
                    timed(|| {
                        for i in 0..N {
                            black_box(shared.alloc(black_box(i as u64)));
                        }
                    })
                }),
            ),
            (
                "blink BlinkAlloc (allocate)",
                Box::new(move || {
                    blink.reset();
                    timed(|| {
                        for _ in 0..N {
                            black_box(blink.allocate(black_box(layout)).unwrap());
                        }
                    })
                }),
            ),
            (
                "blink SyncBlinkAlloc (allocate)",
                Box::new(move || {
                    blink_sync.reset();
                    timed(|| {
                        for _ in 0..N {
                            black_box(blink_sync.allocate(black_box(layout)).unwrap());
                        }
                    })
                }),
            ),
        ],
        rounds,
    );
}

/// A fixed shuffle of 0..N (xorshift Fisher-Yates), so every pool sees the same order.
fn shuffled() -> Vec<usize> {
    let mut v: Vec<usize> = (0..N).collect();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for i in (1..N).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

fn pool_cases(rounds: usize) {
    let order = shuffled();
    // insert
    {
        let mut ours = memward_arena::Pool::new();
        let mut slab = slab::Slab::new();
        let mut sm = slotmap::SlotMap::new();
        report(
            "pool insert × 10,007 (after clear; capacity kept)",
            vec![
                (
                    "memward Pool",
                    Box::new(move || {
                        ours.clear();
                        timed(|| {
                            for i in 0..N {
                                black_box(ours.insert(black_box(i as u64)));
                            }
                        })
                    }),
                ),
                (
                    "slab",
                    Box::new(move || {
                        slab.clear();
                        timed(|| {
                            for i in 0..N {
                                black_box(slab.insert(black_box(i as u64)));
                            }
                        })
                    }),
                ),
                (
                    "slotmap",
                    Box::new(move || {
                        sm.clear();
                        timed(|| {
                            for i in 0..N {
                                black_box(sm.insert(black_box(i as u64)));
                            }
                        })
                    }),
                ),
            ],
            rounds,
        );
    }
    // get
    {
        let mut ours = memward_arena::Pool::new();
        let ours_keys: Vec<_> = (0..N).map(|i| ours.insert(i as u64)).collect();
        let mut slab = slab::Slab::new();
        let slab_keys: Vec<_> = (0..N).map(|i| slab.insert(i as u64)).collect();
        let mut sm = slotmap::SlotMap::new();
        let sm_keys: Vec<_> = (0..N).map(|i| sm.insert(i as u64)).collect();
        let (o1, o2, o3) = (order.clone(), order.clone(), order.clone());
        report(
            "pool get × 10,007 (random order)",
            vec![
                (
                    "memward Pool",
                    Box::new(move || {
                        timed(|| {
                            let mut sum = 0u64;
                            for &i in &o1 {
                                sum += ours.get(ours_keys[i]).copied().unwrap_or(0);
                            }
                            black_box(sum);
                        })
                    }),
                ),
                (
                    "slab",
                    Box::new(move || {
                        timed(|| {
                            let mut sum = 0u64;
                            for &i in &o2 {
                                sum += slab.get(slab_keys[i]).copied().unwrap_or(0);
                            }
                            black_box(sum);
                        })
                    }),
                ),
                (
                    "slotmap",
                    Box::new(move || {
                        timed(|| {
                            let mut sum = 0u64;
                            for &i in &o3 {
                                sum += sm.get(sm_keys[i]).copied().unwrap_or(0);
                            }
                            black_box(sum);
                        })
                    }),
                ),
            ],
            rounds,
        );
    }
    // remove
    {
        let mut ours = memward_arena::Pool::new();
        let mut slab = slab::Slab::new();
        let mut sm = slotmap::SlotMap::new();
        let (o1, o2, o3) = (order.clone(), order.clone(), order);
        report(
            "pool remove × 10,007 (random order)",
            vec![
                (
                    "memward Pool",
                    Box::new(move || {
                        let keys: Vec<_> = (0..N).map(|i| ours.insert(i as u64)).collect();
                        timed(|| {
                            for &i in &o1 {
                                black_box(ours.remove(keys[i]));
                            }
                        })
                    }),
                ),
                (
                    "slab",
                    Box::new(move || {
                        let keys: Vec<_> = (0..N).map(|i| slab.insert(i as u64)).collect();
                        timed(|| {
                            for &i in &o2 {
                                black_box(slab.try_remove(keys[i]));
                            }
                        })
                    }),
                ),
                (
                    "slotmap",
                    Box::new(move || {
                        let keys: Vec<_> = (0..N).map(|i| sm.insert(i as u64)).collect();
                        timed(|| {
                            for &i in &o3 {
                                black_box(sm.remove(keys[i]));
                            }
                        })
                    }),
                ),
            ],
            rounds,
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|r| r.parse().ok())
        .unwrap_or(201);
    println!(
        "## memward-arena vs anchors ({rounds} interleaved rounds, 10,007 operations per case)"
    );
    alloc_case("alloc u8 × 10,007", |i| i as u8, rounds);
    alloc_case("alloc u64 × 10,007", |i| i as u64, rounds);
    alloc_case("alloc [u8; 32] × 10,007", |i| [i as u8; 32], rounds);
    reset_case(rounds);
    vec_case(false, rounds);
    vec_case(true, rounds);
    shared_case(rounds);
    pool_cases(rounds);
}
