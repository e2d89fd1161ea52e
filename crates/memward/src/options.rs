//! Tuning options, read once from `MEMWARD_*` environment variables without allocating.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `MEMWARD_PURGE_DELAY_MS` | 100 | how long free memory stays resident before it is returned to the OS (`0`: at once; negative: never) |
//! | `MEMWARD_FREE_RESIDENT_MIB` | 8 | free memory each heap (or an eighth of its live bytes, if more), the segment cache, and the abandoned segments of exited threads keep resident before purging at once, whatever the delay (the size bound beside the time bound) |
//! | `MEMWARD_SEGMENT_CACHE` | 16 | empty 4 MiB segments kept mapped for reuse (purged ones cost no RSS); up to 1,024 more for a second after many are freed together; `0`: none |
//! | `MEMWARD_STATS` | 0 | `1`: the preloaded library prints statistics to stderr at exit |
//! | `MEMWARD_HUGE_PAGES` | 1 | `1`: ask for transparent huge pages for a heap's new small segments once the heap has 32 MiB in use, and for huge blocks once freed ones were densely used; `0`: never |
//!
//! The values live in atomics so that tests and programs can also change them at run time
//! ([`crate::set_purge_delay_ms`]).

use core::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};

const DEFAULT_PURGE_DELAY_MS: i64 = 100;
const DEFAULT_SEGMENT_CACHE: usize = 16;
const DEFAULT_FREE_RESIDENT: usize = 8 << 20;

static LOADED: AtomicBool = AtomicBool::new(false);
static PURGE_DELAY_MS: AtomicI64 = AtomicI64::new(DEFAULT_PURGE_DELAY_MS);
static SEGMENT_CACHE: AtomicUsize = AtomicUsize::new(DEFAULT_SEGMENT_CACHE);
static STATS_AT_EXIT: AtomicBool = AtomicBool::new(false);
static HUGE_PAGES: AtomicBool = AtomicBool::new(true);
static FREE_RESIDENT: AtomicUsize = AtomicUsize::new(DEFAULT_FREE_RESIDENT);

/// Reads the environment once. Racing first callers compute the same values.
pub fn load() {
    if LOADED.load(Ordering::Acquire) {
        return;
    }
    if let Some(v) = env_i64(c"MEMWARD_PURGE_DELAY_MS") {
        PURGE_DELAY_MS.store(v, Ordering::Relaxed);
    }
    if let Some(v) = env_i64(c"MEMWARD_SEGMENT_CACHE") {
        SEGMENT_CACHE.store(v.clamp(0, 1 << 16) as usize, Ordering::Relaxed);
    }
    if let Some(v) = env_i64(c"MEMWARD_FREE_RESIDENT_MIB") {
        FREE_RESIDENT.store((v.clamp(0, 1 << 30) as usize) << 20, Ordering::Relaxed);
    }
    if let Some(v) = env_i64(c"MEMWARD_STATS") {
        STATS_AT_EXIT.store(v != 0, Ordering::Relaxed);
    }
    if let Some(v) = env_i64(c"MEMWARD_HUGE_PAGES") {
        HUGE_PAGES.store(v != 0, Ordering::Relaxed);
    }
    LOADED.store(true, Ordering::Release);
}

/// Delay before free memory is purged, in milliseconds; negative means never.
#[inline]
pub fn purge_delay_ms() -> i64 {
    PURGE_DELAY_MS.load(Ordering::Relaxed)
}

pub fn set_purge_delay_ms(ms: i64) {
    PURGE_DELAY_MS.store(ms, Ordering::Relaxed);
}

/// Bytes of free memory a heap, or the segment cache, keeps resident before it purges at
/// once (`MEMWARD_FREE_RESIDENT_MIB`).
#[inline]
pub fn free_resident_limit() -> usize {
    FREE_RESIDENT.load(Ordering::Relaxed)
}

pub fn segment_cache_limit() -> usize {
    SEGMENT_CACHE.load(Ordering::Relaxed)
}

/// Whether segments may get the transparent-huge-page hint at all.
pub fn huge_pages() -> bool {
    HUGE_PAGES.load(Ordering::Relaxed)
}

pub fn stats_at_exit() -> bool {
    STATS_AT_EXIT.load(Ordering::Relaxed)
}

/// Parses an optionally negative decimal integer from the environment; `None` if unset or
/// malformed. `getenv` returns a pointer into the environment block: no allocation.
fn env_i64(name: &core::ffi::CStr) -> Option<i64> {
    // SAFETY: `name` is NUL-terminated; getenv only reads the environment.
    let value = unsafe { libc::getenv(name.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: getenv returned a NUL-terminated string that lives as long as the environment.
    let bytes = unsafe { core::ffi::CStr::from_ptr(value) }.to_bytes();
    parse_i64(bytes)
}

fn parse_i64(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + (d - b'0') as i64;
    }
    Some(if negative { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::parse_i64;

    #[test]
    fn parses_integers_and_rejects_junk() {
        assert_eq!(parse_i64(b"25"), Some(25));
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b""), None);
        assert_eq!(parse_i64(b"-"), None);
        assert_eq!(parse_i64(b"10ms"), None);
        assert_eq!(parse_i64(b"99999999999999999999"), None);
    }
}
