//! glibc's `mallopt`: each of glibc's parameters is accepted or refused as glibc validates
//! it, and mapped to a memward option where the two mean the same thing. Without this
//! export, glibc's `mallopt` would tune glibc's unused arena and memward would silently
//! ignore what the program asked.
//!
//! | parameter | glibc | memward |
//! |---|---|---|
//! | `M_TRIM_THRESHOLD` (-1) | free memory kept before it is returned to the OS | `< 0`: never return free memory (purge delay -1); `0`: return it at once (purge delay 0); `> 0`: restore the purge delay that was in force before `mallopt` first changed it (memward bounds kept memory by time, not by a byte threshold). Returns 1 |
//! | `M_MMAP_THRESHOLD` (-3) | size from which blocks get their own mapping | 1 (glibc 2.36 also answers 1 for every value, ignoring those above 32 MiB); no effect: memward's size classes decide which blocks get their own mapping |
//! | `M_MXFAST` (1) | fastbin size limit | accepted in glibc's range (0 to 160, else 0); no effect: memward has no fastbins |
//! | `M_PERTURB` (-6) | fill allocated and freed memory with a byte | 1 for 0 (memward does not fill); 0 for any other value: not supported |
//! | `M_TOP_PAD` (-2), `M_MMAP_MAX` (-4), `M_CHECK_ACTION` (-5), `M_ARENA_TEST` (-7), `M_ARENA_MAX` (-8), `M_NLBLKS` (2), `M_GRAIN` (3), `M_KEEP` (4) | sbrk padding, mmap count, error action, arena counts, unused | 1, no effect: memward has no such knob (per-thread heaps, no sbrk, no arena count) |
//! | anything else | 1 (glibc accepts unknown numbers) | 0: unknown |
//!
//! The purge delay is the engine's (`memward::set_purge_delay_ms`), the same setting as
//! `MEMWARD_PURGE_DELAY_MS`; `malloc_info`'s `<memward purge_delay_ms=...>` shows it.

use core::ffi::c_int;
use core::sync::atomic::{AtomicI64, Ordering};

/// glibc's parameter numbers (`<malloc.h>`).
const M_MXFAST: c_int = 1;
const M_NLBLKS: c_int = 2;
const M_GRAIN: c_int = 3;
const M_KEEP: c_int = 4;
const M_TRIM_THRESHOLD: c_int = -1;
const M_TOP_PAD: c_int = -2;
const M_MMAP_THRESHOLD: c_int = -3;
const M_MMAP_MAX: c_int = -4;
const M_CHECK_ACTION: c_int = -5;
const M_PERTURB: c_int = -6;
const M_ARENA_TEST: c_int = -7;
const M_ARENA_MAX: c_int = -8;

/// glibc's fastbin limit on 64-bit targets, `MAX_FAST_SIZE` (80 * sizeof(size_t) / 4).
const MAX_FAST_SIZE: c_int = 160;

/// The purge delay before the first `M_TRIM_THRESHOLD` call changed it (`i64::MIN`: none
/// yet), which a positive threshold restores.
static DELAY_BEFORE_MALLOPT: AtomicI64 = AtomicI64::new(i64::MIN);

fn set_trim_threshold(value: c_int) {
    let _ = DELAY_BEFORE_MALLOPT.compare_exchange(
        i64::MIN,
        memward::purge_delay_ms(),
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    let delay = match value {
        ..=-1 => -1,
        0 => 0,
        _ => DELAY_BEFORE_MALLOPT.load(Ordering::Relaxed),
    };
    memward::set_purge_delay_ms(delay);
}

/// What `mallopt(param, value)` does; 1 when the parameter is accepted, 0 when not.
fn apply(param: c_int, value: c_int) -> c_int {
    let accepted = match param {
        M_TRIM_THRESHOLD => {
            set_trim_threshold(value);
            true
        }
        M_MXFAST => (0..=MAX_FAST_SIZE).contains(&value),
        M_PERTURB => value == 0,
        M_MMAP_THRESHOLD | M_TOP_PAD | M_MMAP_MAX | M_CHECK_ACTION | M_ARENA_TEST | M_ARENA_MAX
        | M_NLBLKS | M_GRAIN | M_KEEP => true,
        _ => false,
    };
    c_int::from(accepted)
}

/// # Safety
/// glibc `mallopt`; no preconditions (the parameters are plain integers).
#[no_mangle]
pub unsafe extern "C" fn mallopt(param: c_int, value: c_int) -> c_int {
    apply(param, value)
}
