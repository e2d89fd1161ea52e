//! Size classes ("bins").
//!
//! Bin 1 holds 8-byte blocks; bins 2..=9 are the multiples of 16 up to 128 bytes (16 rather
//! than 8 because C's `malloc` must return memory aligned for `max_align_t`, 16 bytes on
//! x86_64 and aarch64, and compilers emit aligned vector stores on that promise). Above 128
//! bytes there are four bins per power of two, so a block wastes at most 25% of the step
//! (12.5% on average). Bins reach 64 KiB (`MEDIUM_MAX`); larger objects get a page of their
//! own and are rounded to the OS page size instead.
//!
//! Sizes up to `SMALL_DIRECT_MAX` are mapped to a bin through a table indexed by the size in
//! words (`Heap::direct`), so the allocation fast path does no arithmetic beyond a shift.

/// Largest size served through the per-heap direct table.
pub const SMALL_DIRECT_MAX: usize = 1024;
/// Entries in the direct table: word counts 0..=128.
pub const DIRECT_SLOTS: usize = SMALL_DIRECT_MAX / 8 + 1;
/// Largest object kept in 64 KiB small pages.
pub const SMALL_MAX: usize = 8 * 1024;
/// Largest object kept in 512 KiB medium pages; above this, objects get a page of their own.
pub const MEDIUM_MAX: usize = 64 * 1024;
/// Number of bins including the unused bin 0; bins are `1..BIN_COUNT`.
pub const BIN_COUNT: usize = 46;

/// The bin for a request of `size` bytes (`size <= MEDIUM_MAX`).
#[inline]
pub const fn bin_of(size: usize) -> usize {
    if size <= 8 {
        1
    } else if size <= 128 {
        size.div_ceil(16) + 1
    } else {
        let w = size - 1;
        let k = (usize::BITS - 1 - w.leading_zeros()) as usize; // 2^k <= w < 2^(k+1)
        let sub = (w >> (k - 2)) & 3;
        10 + (k - 7) * 4 + sub
    }
}

/// The block size of `bin` (`1 <= bin < BIN_COUNT`).
#[inline]
pub const fn bin_size(bin: usize) -> usize {
    if bin <= 1 {
        8
    } else if bin <= 9 {
        (bin - 1) * 16
    } else {
        let i = bin - 10;
        let k = 7 + i / 4;
        (1 << k) + ((i % 4) + 1) * (1 << (k - 2))
    }
}

/// Range of direct-table slots (word counts) that map to `bin`, empty for larger bins.
pub const fn direct_range(bin: usize) -> (usize, usize) {
    let hi = bin_size(bin) / 8;
    let lo = if bin <= 1 {
        0
    } else {
        bin_size(bin - 1) / 8 + 1
    };
    if lo >= DIRECT_SLOTS {
        (1, 0)
    } else if hi >= DIRECT_SLOTS {
        (lo, DIRECT_SLOTS - 1)
    } else {
        (lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_size_fits_its_bin_with_bounded_waste() {
        for size in 0..=MEDIUM_MAX {
            let bin = bin_of(size);
            assert!((1..BIN_COUNT).contains(&bin), "size {size} -> bin {bin}");
            let bs = bin_size(bin);
            assert!(bs >= size, "size {size} in bin {bin} of {bs}");
            if bin > 1 {
                assert!(
                    bin_size(bin - 1) < size.max(1) || size == 0,
                    "size {size} not in smallest bin"
                );
            }
            if size > 128 {
                assert!((bs - size) * 4 < bs, "waste for {size}: {bs}");
            }
        }
        assert_eq!(bin_size(BIN_COUNT - 1), MEDIUM_MAX);
    }

    #[test]
    fn bins_are_increasing_and_aligned_to_16() {
        for bin in 2..BIN_COUNT {
            assert!(bin_size(bin) > bin_size(bin - 1));
            assert_eq!(bin_size(bin) % 16, 0);
            assert_eq!(bin_of(bin_size(bin)), bin);
        }
    }

    #[test]
    fn direct_ranges_cover_each_word_count_once() {
        let mut seen = [0u8; DIRECT_SLOTS];
        for bin in 1..BIN_COUNT {
            let (lo, hi) = direct_range(bin);
            for (w, n) in seen.iter_mut().enumerate().take(hi + 1).skip(lo) {
                *n += 1;
                assert_eq!(bin_of(w * 8), bin);
            }
        }
        assert!(seen.iter().all(|&n| n == 1));
    }
}
