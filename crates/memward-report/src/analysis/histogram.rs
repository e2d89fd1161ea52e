//! The block-size histogram: powers of two, each split in four, so that 48-byte and
//! 64-byte blocks land in different buckets while the whole range of sizes fits in about
//! 260 counters. Bucket bounds are exact integers, so a test can predict every count.

use serde::Serialize;

/// Sizes below this have a bucket each.
const LINEAR: u64 = 8;

/// Counts of blocks by requested size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    /// (blocks, bytes) per bucket index.
    counts: Vec<(u64, u64)>,
}

/// One non-empty bucket: sizes in `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HistogramBucket {
    /// Smallest size in the bucket.
    pub min: u64,
    /// Largest size in the bucket.
    pub max: u64,
    /// Blocks allocated with a size in the bucket.
    pub blocks: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// The bucket of `size`: one per size below 8, then four per power of two.
fn bucket_of(size: u64) -> usize {
    if size < LINEAR {
        return size as usize;
    }
    let log = 63 - size.leading_zeros() as u64; // >= 3
    let quarter = (size >> (log - 2)) & 3;
    (LINEAR + (log - 3) * 4 + quarter) as usize
}

/// The sizes `[min, max]` of bucket `i`.
fn bounds_of(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < LINEAR {
        return (i, i);
    }
    let log = (i - LINEAR) / 4 + 3;
    let quarter = (i - LINEAR) % 4;
    let step = 1u64 << (log - 2);
    let min = (1u64 << log) + quarter * step;
    (min, min + (step - 1))
}

impl Histogram {
    /// Counts `blocks` blocks of `size` bytes (`bytes` in all).
    pub(crate) fn add(&mut self, size: u64, blocks: u64, bytes: u64) {
        let b = bucket_of(size);
        if b >= self.counts.len() {
            self.counts.resize(b + 1, (0, 0));
        }
        self.counts[b].0 += blocks;
        self.counts[b].1 += bytes;
    }

    /// The non-empty buckets, smallest sizes first.
    ///
    /// ```
    /// assert_eq!(memward_report::Histogram::default().buckets().count(), 0);
    /// ```
    pub fn buckets(&self) -> impl Iterator<Item = HistogramBucket> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| c.0 > 0)
            .map(|(i, &(blocks, bytes))| {
                let (min, max) = bounds_of(i);
                HistogramBucket {
                    min,
                    max,
                    blocks,
                    bytes,
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_the_sizes() {
        let mut expect_min = 0;
        for i in 0..240 {
            let (min, max) = bounds_of(i);
            assert_eq!(min, expect_min, "bucket {i}");
            assert!(max >= min);
            assert_eq!(bucket_of(min), i);
            assert_eq!(bucket_of(max), i);
            expect_min = max + 1;
        }
        assert_eq!(bucket_of(u64::MAX), bucket_of(u64::MAX - 1));
        assert_eq!(bounds_of(bucket_of(48)), (48, 55));
        assert_eq!(bounds_of(bucket_of(64)), (64, 79));
    }

    #[test]
    fn counts_add_up() {
        let mut h = Histogram::default();
        h.add(48, 1, 48);
        h.add(50, 2, 100);
        h.add(0, 1, 0);
        h.add(1 << 26, 1, 1 << 26);
        let b: Vec<_> = h.buckets().collect();
        assert_eq!(b.len(), 3);
        assert_eq!((b[0].min, b[0].blocks), (0, 1));
        assert_eq!(
            (b[1].min, b[1].max, b[1].blocks, b[1].bytes),
            (48, 55, 3, 148)
        );
        assert_eq!((b[2].min, b[2].blocks), (1 << 26, 1));
    }
}
