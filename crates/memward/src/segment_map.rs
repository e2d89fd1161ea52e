//! A bitmap with one bit per possible segment start in the 48-bit address space (2^26 bits,
//! 8 MiB of zero-initialised `.bss` that the kernel only backs where bits are set).
//!
//! It answers "is this address inside memory memward owns?" with one load, before anything
//! is read from the presumed segment header: `free` of a foreign pointer is detected instead
//! of dereferencing an unmapped or unrelated address.

use crate::layout::SEGMENT_SHIFT;
use core::sync::atomic::{AtomicU64, Ordering};

const ADDRESS_BITS: usize = 48;
const SLOTS: usize = 1 << (ADDRESS_BITS - SEGMENT_SHIFT);
static MAP: [AtomicU64; SLOTS / 64] = [const { AtomicU64::new(0) }; SLOTS / 64];

#[inline]
fn index(segment: usize) -> Option<(usize, u64)> {
    let slot = segment >> SEGMENT_SHIFT;
    if slot >= SLOTS {
        return None;
    }
    Some((slot / 64, 1u64 << (slot % 64)))
}

/// Records a segment start. Returns false if the address is beyond the map (the caller then
/// gives the memory back and reports exhaustion).
pub fn insert(segment: usize) -> bool {
    match index(segment) {
        Some((word, bit)) => {
            MAP[word].fetch_or(bit, Ordering::Release);
            true
        }
        None => false,
    }
}

pub fn remove(segment: usize) {
    if let Some((word, bit)) = index(segment) {
        MAP[word].fetch_and(!bit, Ordering::Release);
    }
}

/// Is `segment` (a segment-aligned address) the start of a live memward segment?
#[inline]
pub fn contains(segment: usize) -> bool {
    match index(segment) {
        Some((word, bit)) => MAP[word].load(Ordering::Acquire) & bit != 0,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_contains_remove() {
        let seg = 0x7000_0000_0000usize & !((1 << SEGMENT_SHIFT) - 1);
        assert!(!contains(seg));
        assert!(insert(seg));
        assert!(contains(seg));
        assert!(!contains(seg + (1 << SEGMENT_SHIFT)));
        remove(seg);
        assert!(!contains(seg));
        assert!(!insert(1 << 60));
        assert!(!contains(1 << 60));
    }
}
