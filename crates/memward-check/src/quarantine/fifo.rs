//! A first-in, first-out queue of quarantine entries in 4 KiB chunks.
//!
//! A quarantine holds a few hundred thousand blocks, and each free pushes one entry and
//! pops one or two. In one ring buffer (`VecDeque`) of that size every push wrote a line
//! not touched for megabytes, a cache miss, and every doubling of the ring copied it into
//! fresh pages (12% of the page faults of sqlite3 under the checker). Here the chunk the
//! front empties is kept and becomes the next back chunk: the back's writes land in
//! memory just read, and a quarantine that stays the same size allocates nothing. Chunks
//! beyond that one go back to the allocator, so a quarantine that shrinks gives its
//! memory back, which the ring never did.

use std::collections::VecDeque;

/// One quarantined block: (user address, header address, bytes it costs).
pub(super) type Entry = (usize, usize, usize);

/// Entries per chunk: 170 of 24 bytes fill 4 KiB.
const CHUNK: usize = 170;

type Chunk = Box<[Entry; CHUNK]>;

pub(super) struct ChunkedFifo {
    chunks: VecDeque<Chunk>,
    /// The next entry to pop, in the front chunk.
    head: usize,
    /// Entries written in the back chunk.
    tail: usize,
    len: usize,
    /// The last chunk the front emptied, for the back's next one.
    spare: Option<Chunk>,
}

impl ChunkedFifo {
    pub(super) const fn new() -> ChunkedFifo {
        ChunkedFifo {
            chunks: VecDeque::new(),
            head: 0,
            tail: 0,
            len: 0,
            spare: None,
        }
    }

    pub(super) fn push_back(&mut self, e: Entry) {
        if self.chunks.is_empty() || self.tail == CHUNK {
            let chunk = self
                .spare
                .take()
                .unwrap_or_else(|| Box::new([(0, 0, 0); CHUNK]));
            self.chunks.push_back(chunk);
            self.tail = 0;
        }
        if let Some(back) = self.chunks.back_mut() {
            back[self.tail] = e;
            self.tail += 1;
            self.len += 1;
        }
    }

    pub(super) fn pop_front(&mut self) -> Option<Entry> {
        if self.len == 0 {
            return None;
        }
        let e = self.chunks[0][self.head];
        self.head += 1;
        self.len -= 1;
        if self.len == 0 {
            // Empty: the one chunk left starts over.
            self.head = 0;
            self.tail = 0;
        } else if self.head == CHUNK {
            let emptied = self.chunks.pop_front();
            if self.spare.is_none() {
                self.spare = emptied;
            }
            self.head = 0;
        }
        Some(e)
    }

    /// The entry `i` places behind the front, if there is one.
    pub(super) fn get(&self, i: usize) -> Option<&Entry> {
        if i >= self.len {
            return None;
        }
        let at = self.head + i;
        Some(&self.chunks[at / CHUNK][at % CHUNK])
    }

    #[cfg(test)]
    fn chunks(&self) -> usize {
        self.chunks.len() + usize::from(self.spare.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    #[test]
    fn behaves_as_a_queue_across_chunk_boundaries() {
        let mut q = ChunkedFifo::new();
        let mut model = VecDeque::new();
        let mut next = 0usize;
        // Grow past several chunks, drain part, grow again, drain all: the same order
        // and lookups as a plain queue at every step.
        for (pushes, pops) in [(500, 120), (1, 1), (340, 600), (170, 0), (0, 400), (3, 5)] {
            for _ in 0..pushes {
                q.push_back((next, next + 1, next + 2));
                model.push_back((next, next + 1, next + 2));
                next += 3;
            }
            for i in [0, 1, 4, 169, 170, 171] {
                assert_eq!(q.get(i), model.get(i));
            }
            for _ in 0..pops {
                assert_eq!(q.pop_front(), model.pop_front());
            }
        }
        assert_eq!(q.pop_front(), None);
        assert_eq!(q.get(0), None);
    }

    #[test]
    fn a_steady_queue_reuses_its_chunks_and_a_shrinking_one_gives_them_back() {
        let mut q = ChunkedFifo::new();
        for i in 0..10 * CHUNK {
            q.push_back((i, 0, 0));
        }
        assert_eq!(q.chunks(), 10);
        for i in 10 * CHUNK..100 * CHUNK {
            q.push_back((i, 0, 0));
            assert_eq!(q.pop_front(), Some((i - 10 * CHUNK, 0, 0)));
        }
        assert!(
            q.chunks() <= 12,
            "{} chunks for 10 chunks' entries",
            q.chunks()
        );
        for _ in 0..10 * CHUNK - 1 {
            q.pop_front();
        }
        assert!(q.chunks() <= 2);
    }
}
