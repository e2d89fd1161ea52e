//! Sampled hook mode is unbiased: weighing each reported allocation of `size` bytes by
//! the inverse of its sampling probability, `1 / (1 - exp(-size / rate))` (as the
//! profiler's report does), estimates the bytes a known program allocated, per size and
//! in all, within a few percent, for sizes served by the fast path (whose blocks are
//! larger than the request), by the medium and the large paths. Seeded, so the samples
//! are the same on every run.

use std::sync::Mutex;

/// Sizes allocated: direct sizes that are not block sizes (17 in 32-byte blocks, 100 in
/// 112, 700 in 768), a medium size and a large one.
const SIZES: [usize; 6] = [17, 100, 700, 3000, 40_000, 300_000];
const RATE: u64 = 4096;
/// Bytes allocated of each size.
const BYTES_PER_SIZE: usize = 24 << 20;

/// Estimated bytes per size, and reported allocations of other sizes.
static ESTIMATE: Mutex<([f64; 6], usize)> = Mutex::new(([0.0; 6], 0));

fn weight(size: usize) -> f64 {
    1.0 / -(-(size as f64) / RATE as f64).exp_m1()
}

unsafe fn on_alloc(_p: *mut u8, size: usize) {
    let mut e = ESTIMATE.lock().unwrap();
    match SIZES.iter().position(|&s| s == size) {
        Some(i) => e.0[i] += size as f64 * weight(size),
        None => e.1 += 1,
    }
}
unsafe fn on_free(_p: *mut u8) {}
unsafe fn on_realloc(_old: *mut u8, _new: *mut u8, _size: usize) {}

static HOOKS: memward::hooks::Hooks = memward::hooks::Hooks {
    alloc: on_alloc,
    free: on_free,
    realloc: on_realloc,
};

#[test]
fn weighted_samples_estimate_the_bytes_allocated() {
    let counts: Vec<usize> = SIZES.iter().map(|s| BYTES_PER_SIZE / s).collect();
    let mut truth = [0f64; 6];
    memward::hooks::set_sampling_seed(0x0123_4567_89ab_cdef);
    memward::hooks::install_sampled(&HOOKS, RATE);
    // Interleaved, with some blocks kept for a while so that pages refill from frees
    // as well as from fresh memory.
    let mut kept: Vec<*mut u8> = Vec::with_capacity(1024);
    let mut done = [0usize; 6];
    let mut round = 0usize;
    while done.iter().zip(&counts).any(|(d, c)| d < c) {
        for (i, &size) in SIZES.iter().enumerate() {
            // Small sizes many times per round, so that all sizes end together.
            let per_round = counts[i].div_ceil(counts[SIZES.len() - 1]).max(1);
            for _ in 0..per_round {
                if done[i] == counts[i] {
                    break;
                }
                let p = memward::raw::malloc(size);
                assert!(!p.is_null());
                truth[i] += size as f64;
                done[i] += 1;
                if (round + done[i]) % 3 == 0 {
                    kept.push(p);
                } else {
                    // SAFETY: live, freed once.
                    unsafe { memward::raw::free(p) };
                }
            }
        }
        if kept.len() >= 1000 {
            for p in kept.drain(..) {
                // SAFETY: live, freed once.
                unsafe { memward::raw::free(p) };
            }
        }
        round += 1;
    }
    memward::hooks::remove();
    for p in kept {
        // SAFETY: live, freed once.
        unsafe { memward::raw::free(p) };
    }
    let (estimate, others) = *ESTIMATE.lock().unwrap();
    assert_eq!(others, 0, "allocations of sizes never asked for");
    for i in 0..SIZES.len() {
        let error = (estimate[i] - truth[i]) / truth[i];
        eprintln!("size {}: {:+.2}%", SIZES[i], error * 100.0);
        // sqrt(rate / bytes) = 1.3% is one standard deviation for the small sizes.
        assert!(
            error.abs() < 0.05,
            "size {}: estimated {:.0} for {:.0} bytes ({:+.1}%)",
            SIZES[i],
            estimate[i],
            truth[i],
            error * 100.0
        );
    }
    let (e, t): (f64, f64) = (estimate.iter().sum(), truth.iter().sum());
    assert!(
        ((e - t) / t).abs() < 0.02,
        "estimated {e:.0} of {t:.0} bytes in all"
    );
}
