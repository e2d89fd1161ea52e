//! First-class heaps: [`Heap`], an allocator value implementing `allocator_api2`'s
//! `Allocator`, that frees everything it still holds when dropped.

use crate::heap::pool;
use crate::{alloc, heap, os, thread};
use allocator_api2::alloc::{AllocError, Allocator, Layout};
use core::marker::PhantomData;
use core::ptr::NonNull;

/// A heap of its own, used from the thread that created it (it is neither `Send` nor
/// `Sync`). Dropping it frees every block it still holds at once, like an arena, so
/// collections using it must be dropped first (the borrow checker sees to that when they
/// hold `&Heap`).
///
/// Its blocks are ordinary memward blocks: [`crate::raw::free`] may free them from any
/// thread before the heap is dropped; such frees are queued for the heap and applied on
/// its next slow path (or discarded with the heap).
///
/// ```
/// use allocator_api2::vec::Vec;
///
/// let heap = memward::Heap::new();
/// let mut v = Vec::new_in(&heap);
/// v.extend(0..1000u32);
/// assert_eq!(v.len(), 1000);
/// drop(v);
/// drop(heap); // returns the heap's pages
/// ```
pub struct Heap {
    raw: NonNull<heap::Heap>,
    /// Raw pointers make the type neither `Send` nor `Sync`: its state is owner-only.
    _owner: PhantomData<*mut ()>,
}

impl Heap {
    /// Creates an empty heap owned by the calling thread. Aborts the process if the OS
    /// refuses the few KiB its bookkeeping needs (as allocation failure does in std).
    pub fn new() -> Heap {
        match Heap::try_new() {
            Some(h) => h,
            None => os::fatal("out of memory creating a heap"),
        }
    }

    /// Creates an empty heap, or `None` if the OS is out of memory.
    ///
    /// ```
    /// let heap = memward::Heap::try_new().expect("memory");
    /// # drop(heap);
    /// ```
    pub fn try_new() -> Option<Heap> {
        thread::global_init();
        let raw = NonNull::new(pool::new_heap(os::thread_id()))?;
        // SAFETY: the heap was just given to this thread and is never unmapped; its
        // `Local` is not borrowed.
        unsafe {
            raw.as_ref().set_first_class();
            // First-class heaps are not sampled (`hook_table::wanted_mode`).
            raw.as_ref().local().follow_hooks();
        }
        Some(Heap {
            raw,
            _owner: PhantomData,
        })
    }

    /// Makes the heap's counters exact and returns its bytes in use.
    ///
    /// ```
    /// let heap = memward::Heap::new();
    /// let b = allocator_api2::boxed::Box::new_in([0u8; 100], &heap);
    /// assert!(heap.in_use_bytes() >= 100);
    /// drop(b);
    /// ```
    pub fn in_use_bytes(&self) -> u64 {
        // SAFETY: we own the heap on this thread and hold no other borrow of it.
        unsafe {
            (*self.raw.as_ptr()).local().flush_stats();
            let n = (*self.raw.as_ptr())
                .counters()
                .live_bytes
                .load(core::sync::atomic::Ordering::Relaxed);
            n.max(0) as u64
        }
    }

    fn ptr(&self) -> *mut heap::Heap {
        self.raw.as_ptr()
    }
}

impl Default for Heap {
    fn default() -> Self {
        Heap::new()
    }
}

impl Drop for Heap {
    fn drop(&mut self) {
        // SAFETY: we own the heap; no block of it can be used after this (collections
        // borrowing it are gone), and it goes back to the pool.
        unsafe {
            (*self.ptr()).local().destroy();
            pool::retire_heap(self.ptr());
        }
    }
}

fn slice(p: *mut u8, len: usize) -> Result<NonNull<[u8]>, AllocError> {
    NonNull::new(p)
        .map(|p| NonNull::slice_from_raw_parts(p, len))
        .ok_or(AllocError)
}

// SAFETY: blocks stay valid until deallocated or the heap is dropped (which needs the heap
// unborrowed); they have the requested size and alignment; `Heap` is not `Clone`, so every
// reference denotes the same heap.
unsafe impl Allocator for Heap {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: this thread owns the heap (the type is not Send).
        slice(
            unsafe { alloc::heap_alloc(self.ptr(), layout.size(), layout.align()) },
            layout.size(),
        )
    }

    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: as in allocate.
        slice(
            unsafe { alloc::heap_alloc_zeroed(self.ptr(), layout.size(), layout.align()) },
            layout.size(),
        )
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, _layout: Layout) {
        // SAFETY: the caller passes a live block of this heap.
        unsafe { alloc::free(ptr.as_ptr()) }
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: the caller passes a live block of this heap with layout `old`.
        unsafe { self.resize(ptr, old, new) }
    }

    unsafe fn grow_zeroed(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: as in grow; the new tail is ours to clear.
        unsafe {
            let block = self.resize(ptr, old, new)?;
            let p = block.as_ptr() as *mut u8;
            core::ptr::write_bytes(p.add(old.size()), 0, new.size() - old.size());
            Ok(block)
        }
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: as in grow.
        unsafe { self.resize(ptr, old, new) }
    }
}

impl Heap {
    /// # Safety
    /// `ptr` is a live block of this heap with layout `old`.
    unsafe fn resize(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if new.align() > old.align() && ptr.as_ptr() as usize % new.align() != 0 {
            let p = self.allocate(new)?;
            // SAFETY: both blocks are live and distinct; we copy the smaller size.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    ptr.as_ptr(),
                    p.as_ptr() as *mut u8,
                    old.size().min(new.size()),
                );
                alloc::free(ptr.as_ptr());
            }
            return Ok(p);
        }
        // SAFETY: this thread owns the heap; the block is live with old's alignment.
        let p = unsafe {
            alloc::heap_realloc(
                self.ptr(),
                ptr.as_ptr(),
                new.size(),
                new.align().max(old.align()),
            )
        };
        slice(p, new.size())
    }
}
