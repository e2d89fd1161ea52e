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
/// Page slots of a small segment, the most of any kind.
pub const MAX_PAGES: usize = SEGMENT_SIZE >> SMALL_PAGE_SHIFT;
/// Largest object placed in a (cached, reusable) large segment; larger ones are huge.
pub const LARGE_MAX: usize = SEGMENT_SIZE / 2;
/// Largest supported alignment: an aligned block must start within the segment's first
/// `SEGMENT_SIZE` bytes for the address arithmetic of `free` to find its header.
pub const MAX_ALIGN: usize = SEGMENT_SIZE / 2;

/// The start of the segment that would contain `p` (no check that one exists). Keeps `p`'s
/// provenance: the segment header is part of the same mapping as every block in it.
#[inline(always)]
pub fn segment_start<T>(p: *const T) -> *mut u8 {
    p.cast::<u8>().map_addr(|a| a & !SEGMENT_MASK).cast_mut()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_start_masks_the_address() {
        let p = (3 * SEGMENT_SIZE + 12345) as *const u8;
        assert_eq!(segment_start(p) as usize, 3 * SEGMENT_SIZE);
    }
}
