//! Fast-mode hardening: the checks plain `libmemward.so` and `memward::Memward` make
//! without the checker, and how they stop the process.
//!
//! Free lists are encoded with a random key per page (`list::LinkKey`, derived here from a
//! per-process secret), and every pop checks that the decoded link is plausible, so an
//! overwritten free block aborts the process instead of handing out wild memory. A `free`
//! checks that the pointer is a block start and that the block does not already look free
//! (its first word decodes to a plausible link); only then does it scan the page's lists
//! to confirm, so a program that happens to store such bits is never stopped by mistake.
//! An error prints one line naming memward, in glibc's words, and aborts (SIGABRT), as
//! glibc does for `free(): double free detected in tcache 2`. The full design, costs and
//! limits: docs/engine-hardening.md.

use crate::list::LinkKey;
use core::sync::atomic::{AtomicU64, Ordering};

/// The per-process secret that page keys are derived from; 0 until first needed.
static SECRET: AtomicU64 = AtomicU64::new(0);

/// One step of SplitMix64: a bijective mix with good avalanche, enough to turn a secret and
/// a page address into an unpredictable key (it is not a cryptographic PRF, and the keys
/// need not be one: they stop overwrites made without knowledge of the key).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 64 bits from the kernel (`getrandom`, never blocking), or, where that fails (an old
/// kernel, a seccomp filter), from the clock, the process id and an ASLR'd address.
#[cold]
fn fresh_secret() -> u64 {
    let mut bits = 0u64;
    // SAFETY: the buffer is 8 writable bytes of `bits`.
    let n = unsafe {
        libc::getrandom(
            (&raw mut bits).cast(),
            size_of::<u64>(),
            libc::GRND_NONBLOCK,
        )
    };
    if n != size_of::<u64>() as isize {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out-parameter.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() } as u64;
        let local = 0u8;
        bits = mix(ts.tv_nsec as u64 ^ (ts.tv_sec as u64) << 32)
            ^ mix(pid ^ (&raw const local) as u64);
    }
    bits | 1
}

#[inline]
fn secret() -> u64 {
    let s = SECRET.load(Ordering::Relaxed);
    if s != 0 {
        return s;
    }
    let new = fresh_secret();
    // Two threads racing here keep one secret (either would do: each page stores its key).
    match SECRET.compare_exchange(0, new, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => new,
        Err(won) => won,
    }
}

/// A fresh key for a page being (re)initialised at `start`: distinct per page and per
/// reuse of a slot (the previous key is mixed in), unpredictable without the secret.
pub fn page_key(start: *const u8, previous: LinkKey) -> LinkKey {
    LinkKey::from_bits(mix(secret() ^ start.addr() as u64 ^ previous.bits().rotate_left(29)))
}

/// Writes `memward: <message>` to stderr in one `write` (no allocation) and aborts.
#[cold]
#[inline(never)]
pub fn fatal(message: &str) -> ! {
    let mut line = [0u8; 160];
    let mut len = 0;
    for part in ["memward: ", message, "\n"] {
        let n = part.len().min(line.len() - len);
        line[len..len + n].copy_from_slice(&part.as_bytes()[..n]);
        len += n;
    }
    // SAFETY: the pointer and length describe initialised bytes of `line`; abort has no
    // preconditions.
    unsafe {
        libc::write(2, line.as_ptr().cast(), len);
        libc::abort()
    }
}

/// A block freed twice (found on its page's lists).
#[cold]
#[inline(never)]
pub fn double_free() -> ! {
    fatal("free(): double free detected")
}

/// A pointer inside memward's memory that is not a live block start.
#[cold]
#[inline(never)]
pub fn invalid_pointer() -> ! {
    fatal("free(): invalid pointer")
}

/// A pointer into a page slot that holds no page: its page was released after its last
/// block came back, so this is almost always a double free, else a wild pointer.
#[cold]
#[inline(never)]
pub fn free_in_released_page() -> ! {
    fatal("free(): double free or invalid pointer (page already released)")
}

/// A free-list link that decodes to an impossible address: the free block was written
/// after it was freed (or freed twice).
#[cold]
#[inline(never)]
pub fn corrupted_free_list() -> ! {
    fatal("malloc(): corrupted free list (write after free or double free)")
}

/// As [`corrupted_free_list`], typed as an allocation result so that `malloc`'s fast path
/// reaches it by a tail jump.
#[cold]
#[inline(never)]
pub fn corrupted_free_list_in_malloc() -> *mut u8 {
    corrupted_free_list()
}

/// A link of a cross-thread free chain that points outside memward's memory.
#[cold]
#[inline(never)]
pub fn corrupted_remote_list() -> ! {
    fatal("free(): corrupted cross-thread free list (write after free or double free)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_keys_differ_per_page_and_per_reuse() {
        let a = page_key(0x7f00_0001_0000 as *const u8, LinkKey::from_bits(0));
        let b = page_key(0x7f00_0002_0000 as *const u8, LinkKey::from_bits(0));
        let a2 = page_key(0x7f00_0001_0000 as *const u8, a);
        assert_ne!(a, b);
        assert_ne!(a, a2);
        assert_eq!(a.bits() >> 63, 1);
        assert_eq!(secret(), secret(), "one secret per process");
    }
}
