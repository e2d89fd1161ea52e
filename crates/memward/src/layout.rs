//! Address-space layout: the sizes and shifts that segments, pages and the segment map agree
//! on. Pure constants and address arithmetic, at the bottom of the layer order so that
//! `segment_map` and `segment` share them without naming each other.

/// Segments are `SEGMENT_SIZE` bytes, aligned to their size.
pub const SEGMENT_SHIFT: usize = 22;
pub const SEGMENT_SIZE: usize = 1 << SEGMENT_SHIFT;
pub const SEGMENT_MASK: usize = SEGMENT_SIZE - 1;
/// Small pages are 64 KiB, medium pages 512 KiB.
pub const SMALL_PAGE_SHIFT: usize = 16;
pub const MEDIUM_PAGE_SHIFT: usize = 19;
/// Large segments are split into 32 KiB slots; a large block takes a run of them.
pub const LARGE_SLOT_SHIFT: usize = 15;
/// Page slots of a large segment, the most of any kind.
pub const MAX_PAGES: usize = SEGMENT_SIZE >> LARGE_SLOT_SHIFT;
/// Largest block placed in a shared large segment (a run of page slots); larger ones
/// get a huge segment (a mapping of their own).
pub const LARGE_MAX: usize = SEGMENT_SIZE / 2;
/// Largest supported alignment (glibc serves up to 1 GiB too). Blocks aligned to more
/// than a segment get a huge segment whose header sits one segment below the block.
pub const MAX_ALIGN: usize = 1 << 30;

/// The start of the segment that would contain the block starting at `p` (no check that
/// one exists): `(p - 1)` rounded down to a segment boundary. No block starts at offset 0
/// of its segment (the header is there), so every block start lies in
/// `(segment, segment + SEGMENT_SIZE]`, and a block may start exactly one segment after
/// its header: that is how blocks aligned to `SEGMENT_SIZE` or more find their header.
/// On x86_64 the `- 1` replaces the register copy the mask needs anyway (`lea` instead
/// of `mov`), so it costs no instruction. Keeps `p`'s provenance: the header is part of
/// the same mapping as every block in it.
#[inline(always)]
pub fn segment_start<T>(p: *const T) -> *mut u8 {
    p.cast::<u8>()
        .map_addr(|a| a.wrapping_sub(1) & !SEGMENT_MASK)
        .cast_mut()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_start_masks_the_address() {
        let p = (3 * SEGMENT_SIZE + 12345) as *const u8;
        assert_eq!(segment_start(p) as usize, 3 * SEGMENT_SIZE);
        // A block starting exactly at a boundary belongs to the segment below it.
        let q = (4 * SEGMENT_SIZE) as *const u8;
        assert_eq!(segment_start(q) as usize, 3 * SEGMENT_SIZE);
        let r = (3 * SEGMENT_SIZE + 1) as *const u8;
        assert_eq!(segment_start(r) as usize, 3 * SEGMENT_SIZE);
    }
}
