//! The live blocks the scan works on, sorted by address so that any word found in memory
//! is matched to the block it points into with one binary search.
//!
//! A word points into a block when it lies in `[start, start + size)`: interior pointers
//! count, as in LeakSanitizer (a program may keep only a pointer to a field, or `p + 1`
//! of a length-prefixed string), while one past the end does not. A zero-size block is
//! pointed to by its start. The index also bounds the heap (`lo..hi`), so the many words
//! that are small integers or code addresses are rejected with two comparisons.

/// A block the program holds: where it starts, its size as requested, and the id of the
/// stack that allocated it (the checker's; the leak report turns it into frames).
///
/// ```
/// use memward_check::leaks::LiveBlock;
/// let b = LiveBlock { start: 0x7f00_0000_1000, size: 100, stack: 7 };
/// assert_eq!(b.end(), 0x7f00_0000_1064);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LiveBlock {
    /// The address the program got.
    pub start: usize,
    /// The size it asked for.
    pub size: usize,
    /// The allocation stack's id.
    pub stack: u64,
}

impl LiveBlock {
    /// One past the last byte a pointer may point into (a zero-size block keeps its start).
    pub fn end(&self) -> usize {
        self.start.saturating_add(self.size.max(1))
    }
}

/// Live blocks sorted by start, with their starts alone in a second array: the binary
/// search, which takes most of a scan's time in cache misses, reads 8 bytes per step
/// instead of a 24-byte block.
pub(crate) struct BlockIndex {
    blocks: Vec<LiveBlock>,
    starts: Vec<usize>,
    lo: usize,
    hi: usize,
}

impl BlockIndex {
    /// Sorts `blocks`; overlapping entries (which a correct checker never gives) keep the
    /// one that starts last as the owner of their common bytes.
    #[cfg(test)]
    pub(crate) fn new(blocks: Vec<LiveBlock>) -> BlockIndex {
        BlockIndex::with_buffer(blocks, Vec::new())
    }

    /// As [`BlockIndex::new`], with the starts in `starts` (allocates nothing when it has
    /// room for every block).
    pub(crate) fn with_buffer(mut blocks: Vec<LiveBlock>, mut starts: Vec<usize>) -> BlockIndex {
        blocks.sort_unstable_by_key(|b| b.start);
        starts.clear();
        starts.extend(blocks.iter().map(|b| b.start));
        let lo = blocks.first().map_or(usize::MAX, |b| b.start);
        let hi = blocks.iter().map(LiveBlock::end).max().unwrap_or(0);
        BlockIndex {
            blocks,
            starts,
            lo,
            hi,
        }
    }

    pub(crate) fn blocks(&self) -> &[LiveBlock] {
        &self.blocks
    }

    pub(crate) fn len(&self) -> usize {
        self.blocks.len()
    }

    /// The index of the block `addr` points into.
    #[inline]
    pub(crate) fn find(&self, addr: usize) -> Option<usize> {
        if addr < self.lo || addr >= self.hi {
            return None;
        }
        let i = self.starts.partition_point(|&s| s <= addr);
        let b = self.blocks.get(i.checked_sub(1)?)?;
        (addr < b.end()).then_some(i - 1)
    }

    pub(crate) fn into_blocks(self) -> Vec<LiveBlock> {
        self.blocks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interior_pointers_count_and_one_past_the_end_does_not() {
        let b = |start, size| LiveBlock {
            start,
            size,
            stack: 0,
        };
        let idx = BlockIndex::new(vec![b(0x2000, 0x10), b(0x1000, 0x100), b(0x3000, 0)]);
        assert_eq!(idx.find(0x1000), Some(0));
        assert_eq!(idx.find(0x10ff), Some(0));
        assert_eq!(idx.find(0x1100), None);
        assert_eq!(idx.find(0xfff), None);
        assert_eq!(idx.find(0x2008), Some(1));
        assert_eq!(idx.find(0x3000), Some(2), "a zero-size block by its start");
        assert_eq!(idx.find(0x3001), None);
        assert_eq!(idx.find(usize::MAX), None);
        assert_eq!(BlockIndex::new(vec![]).find(0x1000), None);
    }
}
