//! wasm32: grow linear memory when the heap runs out and no region was added by hand.
//!
//! `memory.grow` appends whole 64 KiB pages at the end of linear memory, so successive
//! growths are contiguous and the heap joins each new region to the last one (see `heap`).
//! Only as many pages as the failed request needs are taken; memory is never given back,
//! which is the only choice on wasm32.

use crate::block::{GRANULE, MIN_BLOCK, WORD};
use crate::heap::Heap;

const PAGE: usize = 65536;

pub(crate) fn grow(heap: &mut Heap, bytes: usize) -> bool {
    if heap.user_regions {
        return false;
    }
    // Room for the block plus a new region's alignment, sentinel and smallest tail.
    let want = match bytes.checked_add(GRANULE + WORD + MIN_BLOCK + PAGE - 1) {
        Some(w) => w,
        None => return false,
    };
    let pages = want / PAGE;
    let old = core::arch::wasm32::memory_grow(0, pages);
    if old == usize::MAX {
        return false;
    }
    // SAFETY: the pages just added are fresh, owned by nobody else, and contiguous with the
    // previous top of memory.
    unsafe { heap.add_region((old * PAGE) as *mut u8, pages * PAGE) }
}
