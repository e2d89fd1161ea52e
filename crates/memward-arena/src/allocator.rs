//! `allocator_api2::Allocator` for `Arena` (and so for `&Arena`).
//!
//! Collections from allocator-api2 and hashbrown can live in an arena. `deallocate` gives
//! memory back only when it is the most recent allocation; `grow` and `shrink` of the most
//! recent allocation move the bump pointer instead of copying, which is what makes a `Vec`
//! pushing one element at a time (even with `reserve_exact(1)`) cost about one bump per
//! push. Anything else is copied to fresh space, as the trait allows.

use crate::typed::RawBump;
use crate::Arena;
use allocator_api2::alloc::{AllocError, Allocator};
use core::alloc::Layout;
use core::ptr::NonNull;

// SAFETY: blocks stay valid until the arena is reset or dropped; `reset` needs `&mut Arena`
// so it cannot run while a collection borrows the arena, and moving an `Arena` does not move
// its chunks. Copies of `&Arena` share one arena, as the trait requires of clones.
unsafe impl Allocator for Arena {
    #[inline(always)]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let ptr = self.raw_alloc(layout).ok_or(AllocError)?;
        Ok(NonNull::slice_from_raw_parts(ptr, layout.size()))
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        self.bump().free_last(ptr, layout.size());
    }

    #[inline]
    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old_layout: Layout,
        new_layout: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if ptr.as_ptr() as usize & (new_layout.align() - 1) == 0
            && self
                .bump()
                .resize_last(ptr, old_layout.size(), new_layout.size())
        {
            return Ok(NonNull::slice_from_raw_parts(ptr, new_layout.size()));
        }
        let new = self.bump().alloc_for_growth(new_layout).ok_or(AllocError)?;
        let new = NonNull::slice_from_raw_parts(new, new_layout.size());
        // SAFETY: the caller guarantees `ptr` holds `old_layout.size()` readable bytes; `new`
        // is fresh space at least that large, so the two do not overlap.
        unsafe {
            core::ptr::copy_nonoverlapping(
                ptr.as_ptr(),
                new.cast::<u8>().as_ptr(),
                old_layout.size(),
            );
        }
        Ok(new)
    }

    #[inline]
    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old_layout: Layout,
        new_layout: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if ptr.as_ptr() as usize & (new_layout.align() - 1) == 0 {
            // In place: the tail is given back only if this is the last allocation.
            self.bump()
                .resize_last(ptr, old_layout.size(), new_layout.size());
            return Ok(NonNull::slice_from_raw_parts(ptr, new_layout.size()));
        }
        let new = self.allocate(new_layout)?;
        // SAFETY: `ptr` holds at least `new_layout.size()` bytes (it is shrinking) and `new`
        // is fresh space, so the copy is in bounds and does not overlap.
        unsafe {
            core::ptr::copy_nonoverlapping(
                ptr.as_ptr(),
                new.cast::<u8>().as_ptr(),
                new_layout.size(),
            );
        }
        Ok(new)
    }
}
