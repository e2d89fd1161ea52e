//! A live block of the model and the pattern that proves its contents intact.
//!
//! Each block gets a one-byte seed; byte `i` holds `seed + i` (wrapping). The pattern is
//! position-dependent, so a block handed out twice, moved without its contents, or
//! overlapped by a neighbour shows up as a wrong byte at a known offset. The pointer is the
//! only unsafe part: this module keeps the invariant "`ptr` has `size` usable bytes and
//! nobody else writes them" and offers safe methods on top of it.

use memward::raw;

/// Bytes of the pattern kept ready for copying and comparing (a multiple of its 256-byte
/// period, plus one period for starting mid-way).
const PATTERN_LEN: usize = 4096 + 256;

/// A block allocated with `memward::raw`, owned by the model.
///
/// Invariant: `ptr` was returned by memward for at least `size` bytes aligned to `align`,
/// has not been freed, and only this `Block` writes it.
#[derive(Debug)]
pub struct Block {
    ptr: *mut u8,
    size: usize,
    align: usize,
    seed: u8,
}

// SAFETY: a Block is the unique owner of its memory (see the invariant); memward blocks may
// be used and freed from any thread.
unsafe impl Send for Block {}

impl Block {
    /// Allocates `size` bytes aligned to `align` (a power of two up to 2 MiB), zeroed when
    /// asked (only for `align <= 16`, as `calloc`), checks what memward promises (alignment,
    /// usable size, zeroes) and fills it with the pattern of `seed`.
    ///
    /// ```
    /// let b = memward_model::Block::alloc(100, 16, true, 7);
    /// b.verify();
    /// b.free();
    /// ```
    pub fn alloc(size: usize, align: usize, zeroed: bool, seed: u8) -> Block {
        let zeroed = zeroed && align <= 16;
        let ptr = if zeroed {
            raw::calloc(1, size)
        } else if align <= 16 {
            raw::malloc(size)
        } else {
            raw::aligned_alloc(align, size)
        };
        assert!(
            !ptr.is_null(),
            "allocation of {size} aligned {align} failed"
        );
        assert_eq!(ptr as usize % align, 0, "size {size} align {align}");
        assert!(size <= 8 || ptr as usize % 16 == 0, "malloc alignment");
        // SAFETY: ptr is a live memward block.
        let usable = unsafe { raw::usable_size(ptr) };
        assert!(usable >= size, "usable size {usable} < {size}");
        let mut block = Block {
            ptr,
            size,
            align,
            seed,
        };
        if zeroed {
            if let Some(i) = block.bytes().iter().position(|&b| b != 0) {
                panic!("calloc byte {i} of {size} is not zero");
            }
        }
        block.fill();
        block
    }

    /// The block's size in bytes.
    ///
    /// ```
    /// let b = memward_model::Block::alloc(10, 8, false, 0);
    /// assert_eq!(b.size(), 10);
    /// b.free();
    /// ```
    pub fn size(&self) -> usize {
        self.size
    }

    /// The block's address.
    ///
    /// ```
    /// let b = memward_model::Block::alloc(10, 64, false, 0);
    /// assert_eq!(b.addr() % 64, 0);
    /// b.free();
    /// ```
    pub fn addr(&self) -> usize {
        self.ptr as usize
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: by the invariant ptr has `size` initialised bytes (filled or zeroed by
        // memward) that nobody writes while this shared borrow of the Block lives.
        unsafe { core::slice::from_raw_parts(self.ptr, self.size) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and `&mut self` makes this the only access.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.size) }
    }

    /// The pattern repeats every 256 bytes; `PATTERN_LEN` bytes of it (from offset 0) let
    /// fill and verify run as `memcpy` and `memcmp` over whole periods.
    fn pattern(&self) -> [u8; PATTERN_LEN] {
        core::array::from_fn(|i| self.seed.wrapping_add(i as u8))
    }

    fn fill(&mut self) {
        let pattern = self.pattern();
        for chunk in self.bytes_mut().chunks_mut(PATTERN_LEN) {
            chunk.copy_from_slice(&pattern[..chunk.len()]);
        }
    }

    /// Checks the bytes in `range` against the pattern, panicking at the first wrong one.
    fn verify_range(&self, range: core::ops::Range<usize>) {
        let pattern = self.pattern();
        let bytes = &self.bytes()[range.clone()];
        // `range.start` need not be a multiple of the period: compare from the pattern's
        // matching phase, 4 KiB (16 periods) at a time.
        let phase = range.start % 256;
        let mut at = 0;
        while at < bytes.len() {
            let n = (bytes.len() - at).min(PATTERN_LEN - 256);
            let want = &pattern[phase..phase + n];
            if bytes[at..at + n] != *want {
                let i = (0..n).find(|&i| bytes[at + i] != want[i]).unwrap_or(0);
                panic!(
                    "byte {} of a {}-byte block at {:#x} (align {}) corrupted: {:#04x}, not {:#04x}",
                    range.start + at + i,
                    self.size,
                    self.ptr as usize,
                    self.align,
                    bytes[at + i],
                    want[i]
                );
            }
            at += n;
        }
    }

    /// Checks every byte.
    ///
    /// ```
    /// let b = memward_model::Block::alloc(1000, 16, false, 3);
    /// b.verify();
    /// b.free();
    /// ```
    pub fn verify(&self) {
        self.verify_range(0..self.size);
    }

    /// Checks the first and last 64 bytes: the cheap sweep over all live blocks.
    ///
    /// ```
    /// let b = memward_model::Block::alloc(1 << 20, 16, false, 3);
    /// b.verify_edges();
    /// b.free();
    /// ```
    pub fn verify_edges(&self) {
        self.verify_range(0..self.size.min(64));
        self.verify_range(self.size.saturating_sub(64)..self.size);
    }

    /// Reallocates to `new_size`, keeping the alignment; checks that the common prefix
    /// survived, then refills the whole block.
    ///
    /// ```
    /// let b = memward_model::Block::alloc(10, 4096, false, 1);
    /// let b = b.realloc(100_000);
    /// assert_eq!(b.addr() % 4096, 0);
    /// b.free();
    /// ```
    pub fn realloc(self, new_size: usize) -> Block {
        self.verify();
        let old = self;
        // SAFETY: old.ptr is live with alignment old.align (the invariant); `old` is
        // consumed here and replaced by the Block built from the result.
        let q = unsafe { raw::realloc_aligned(old.ptr, new_size, old.align) };
        assert!(!q.is_null(), "realloc to {new_size} failed");
        assert_eq!(
            q as usize % old.align,
            0,
            "realloc lost alignment {}",
            old.align
        );
        let moved = Block {
            ptr: q,
            size: old.size.min(new_size),
            align: old.align,
            seed: old.seed,
        };
        moved.verify();
        let mut grown = Block {
            size: new_size,
            ..moved
        };
        grown.fill();
        grown
    }

    /// Checks every byte and frees the block.
    ///
    /// ```
    /// memward_model::Block::alloc(64, 16, false, 9).free();
    /// ```
    pub fn free(self) {
        self.verify();
        // SAFETY: self.ptr is live (the invariant) and freed once: the Block is consumed.
        unsafe { raw::free(self.ptr) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corrupt_and_verify(size: usize, offset: usize, edges_only: bool) -> String {
        let b = Block::alloc(size, 16, false, 200);
        // SAFETY: offset < size, inside the live block this test owns.
        unsafe { *b.ptr.add(offset) ^= 0x40 };
        let caught = std::panic::catch_unwind(|| {
            if edges_only {
                b.verify_edges()
            } else {
                b.verify()
            }
        });
        let msg = match caught {
            Ok(()) => String::new(),
            Err(e) => e.downcast_ref::<String>().cloned().unwrap_or_default(),
        };
        // SAFETY: restore the byte so the block can be freed through the checked path.
        unsafe { *b.ptr.add(offset) ^= 0x40 };
        b.free();
        msg
    }

    #[test]
    fn a_changed_byte_is_found_and_named() {
        for (size, offset) in [
            (1, 0),
            (300, 299),
            (10_000, 4096),
            (10_000, 5000),
            (70_000, 65_537),
        ] {
            let msg = corrupt_and_verify(size, offset, false);
            assert!(
                msg.contains(&format!("byte {offset} of a {size}-byte block")),
                "{size} {offset}: {msg:?}"
            );
        }
        // The edge sweep sees the first and last 64 bytes, not the middle.
        assert!(corrupt_and_verify(10_000, 9_990, true).contains("byte 9990"));
        assert!(corrupt_and_verify(10_000, 5_000, true).is_empty());
    }

    #[test]
    fn realloc_keeps_the_prefix_and_refills() {
        for (from, to) in [(10, 100_000), (100_000, 10), (5000, 5001), (0, 64)] {
            let b = Block::alloc(from, 64, false, 1).realloc(to);
            assert_eq!(b.size(), to);
            b.verify();
            b.free();
        }
    }
}
