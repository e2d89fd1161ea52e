//! Marking what the roots reach, then sorting the rest into direct and indirect leaks.
//!
//! Marking is a depth-first traversal with an explicit stack (no recursion: a linked list
//! of a million nodes would overflow the thread's stack). Each block enters the stack at
//! most once, when it is first reached, so a stack reserved for every block never grows:
//! nothing is allocated while the other threads are stopped.
//!
//! Classification follows LeakSanitizer: an unreached block that another unreached block
//! points to is an indirect leak (freeing the direct leaks' owners would free it), the
//! others are direct leaks. A pointer from a block to itself does not count. One
//! difference: blocks that only point to each other in a cycle, with no direct leak
//! reaching them, are all indirect for LeakSanitizer, which then reports bytes lost with
//! no direct leak to start from; here the lowest-addressed block of each such group
//! becomes a direct leak and the rest of the group indirect.

use super::blocks::BlockIndex;
use super::memory::block_words;

/// Whether a leaked block is the first one lost or only reachable from leaked ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LeakKind {
    /// No other leaked block points to it.
    Direct,
    /// Reachable only through other leaked blocks.
    Indirect,
}

/// Takes the words found in root memory.
pub(crate) trait Visit {
    /// One aligned word.
    fn visit(&mut self, word: usize);
}

impl Visit for Marker<'_> {
    #[inline]
    fn visit(&mut self, word: usize) {
        Marker::visit(self, word)
    }
}

/// The marking state: which blocks were reached, and those still to scan.
pub(crate) struct Marker<'a> {
    index: &'a BlockIndex,
    reached: Vec<bool>,
    pending: Vec<u32>,
}

impl<'a> Marker<'a> {
    /// The state for every block of `index`, in new buffers.
    #[cfg(test)]
    pub(crate) fn new(index: &'a BlockIndex) -> Marker<'a> {
        Marker::with_buffers(index, Vec::new(), Vec::new())
    }

    /// The state for every block of `index`, in buffers reserved before the threads
    /// stopped: with room for as many entries as blocks, nothing is allocated.
    pub(crate) fn with_buffers(
        index: &'a BlockIndex,
        mut reached: Vec<bool>,
        mut pending: Vec<u32>,
    ) -> Marker<'a> {
        reached.clear();
        reached.resize(index.len(), false);
        pending.clear();
        pending.reserve(index.len());
        Marker {
            index,
            reached,
            pending,
        }
    }

    /// A word found in a root or a reached block: marks the block it points into.
    #[inline]
    pub(crate) fn visit(&mut self, word: usize) {
        if let Some(i) = self.index.find(word) {
            if !self.reached[i] {
                self.reached[i] = true;
                // Each block once: the reserved capacity suffices.
                debug_assert!(self.pending.len() < self.pending.capacity());
                self.pending.push(i as u32);
            }
        }
    }

    /// Scans every reached block until no new block is reached.
    ///
    /// # Safety
    /// Every block of the index is readable memory the checker still owns, and nobody
    /// writes it during the call.
    pub(crate) unsafe fn propagate(&mut self) {
        while let Some(i) = self.pending.pop() {
            let b = self.index.blocks()[i as usize];
            // SAFETY: the caller's guarantee, for this block of the index.
            unsafe { block_words(&b, |w| self.visit(w)) };
        }
    }

    pub(crate) fn into_reached(self) -> Vec<bool> {
        self.reached
    }
}

/// The kind of every block (`None`: reachable).
///
/// # Safety
/// As for [`Marker::propagate`].
pub(crate) unsafe fn classify(index: &BlockIndex, reached: &[bool]) -> Vec<Option<LeakKind>> {
    let n = index.len();
    let leaked = |i: usize| !reached[i];
    let mut pointed = vec![false; n];
    for i in (0..n).filter(|&i| leaked(i)) {
        // SAFETY: the caller's guarantee.
        unsafe {
            block_words(&index.blocks()[i], |w| {
                if let Some(j) = index.find(w) {
                    if j != i && leaked(j) {
                        pointed[j] = true;
                    }
                }
            })
        };
    }
    let mut kinds: Vec<Option<LeakKind>> = (0..n)
        .map(|i| match (leaked(i), pointed[i]) {
            (false, _) => None,
            (true, false) => Some(LeakKind::Direct),
            (true, true) => Some(LeakKind::Indirect),
        })
        .collect();
    // Cycles: leaked blocks that no direct leak reaches.
    let mut seen = vec![false; n];
    let mut stack = Vec::new();
    let mut flood = |from: usize, seen: &mut Vec<bool>| {
        seen[from] = true;
        stack.push(from);
        while let Some(j) = stack.pop() {
            // SAFETY: the caller's guarantee.
            unsafe {
                block_words(&index.blocks()[j], |w| {
                    if let Some(k) = index.find(w) {
                        if leaked(k) && !seen[k] {
                            seen[k] = true;
                            stack.push(k);
                        }
                    }
                })
            };
        }
    };
    for (i, kind) in kinds.iter().enumerate() {
        if *kind == Some(LeakKind::Direct) {
            flood(i, &mut seen);
        }
    }
    for i in 0..n {
        if leaked(i) && !seen[i] {
            kinds[i] = Some(LeakKind::Direct);
            flood(i, &mut seen);
        }
    }
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leaks::LiveBlock;

    /// Blocks made of words in a vector: block `i` is `words[4 * i..4 * i + 4]`.
    fn heap(words: &[usize]) -> BlockIndex {
        let base = words.as_ptr() as usize;
        BlockIndex::new(
            (0..words.len() / 4)
                .map(|i| LiveBlock {
                    start: base + 32 * i,
                    size: 32,
                    stack: i as u64,
                })
                .collect(),
        )
    }

    fn kinds_with_roots(
        words: &mut [usize],
        links: &[(usize, usize, usize)],
        roots: &[usize],
    ) -> Vec<Option<LeakKind>> {
        let base = words.as_ptr() as usize;
        for &(from, slot, to_offset) in links {
            words[4 * from + slot] = base + to_offset;
        }
        let index = heap(words);
        let mut m = Marker::new(&index);
        for &r in roots {
            m.visit(base + r);
        }
        // SAFETY: the blocks are the vector's words, alive and not written meanwhile.
        unsafe {
            m.propagate();
            classify(&index, &m.into_reached())
        }
    }

    #[test]
    fn chains_from_a_root_are_reached_even_through_interior_pointers() {
        let mut words = vec![0usize; 4 * 4];
        // 0 -> 1 (interior, +8) -> 2 (+31, the last byte); 3 alone.
        let k = kinds_with_roots(&mut words, &[(0, 1, 32 + 8), (1, 3, 64 + 31)], &[0]);
        assert_eq!(k, vec![None, None, None, Some(LeakKind::Direct)]);
    }

    #[test]
    fn what_leaked_blocks_point_to_is_indirect() {
        let mut words = vec![0usize; 4 * 4];
        // 0 -> 1 -> 2, no root; 3 points to itself only.
        let k = kinds_with_roots(&mut words, &[(0, 0, 32), (1, 0, 64), (3, 2, 96)], &[]);
        use LeakKind::*;
        assert_eq!(
            k,
            vec![Some(Direct), Some(Indirect), Some(Indirect), Some(Direct)]
        );
    }

    #[test]
    fn a_cycle_gets_one_direct_leak() {
        let mut words = vec![0usize; 4 * 3];
        // 0 <-> 1 -> 2, no root.
        let k = kinds_with_roots(&mut words, &[(0, 0, 32), (1, 0, 0), (1, 1, 64)], &[]);
        use LeakKind::*;
        assert_eq!(k, vec![Some(Direct), Some(Indirect), Some(Indirect)]);
    }

    #[test]
    fn one_past_the_end_does_not_reach() {
        let mut words = vec![0usize; 4 * 2];
        let k = kinds_with_roots(&mut words, &[], &[32]);
        assert_eq!(k, vec![Some(LeakKind::Direct), None]);
    }

    #[test]
    fn a_long_list_needs_no_recursion() {
        let n = 200_000;
        let mut words = vec![0usize; 4 * n];
        let base = words.as_ptr() as usize;
        for i in 0..n - 1 {
            words[4 * i] = base + 32 * (i + 1);
        }
        let k = kinds_with_roots(&mut words, &[], &[0]);
        assert!(k.iter().all(Option::is_none));
        let k = kinds_with_roots(&mut words, &[], &[]);
        assert_eq!(k[0], Some(LeakKind::Direct));
        assert!(k[1..].iter().all(|&x| x == Some(LeakKind::Indirect)));
    }
}
