//! Recycled memory for thread-local `Gc` allocations.
//!
//! A collection frees whole structures at once (a list of thousands of nodes, a tree),
//! and the program usually goes on to allocate the next one of the same shape. Handing
//! every one of those blocks back to the global allocator and asking for it again costs
//! more than the collection itself (about 190 instructions a node with glibc, against
//! about 100 for everything the collector does), so freed blocks go to a per-thread free
//! list per size class instead, and `Gc::new` takes from it first: a pop and a push of a
//! singly linked list threaded through the free blocks.
//!
//! Bounded: each class keeps at most [`KEEP_BYTES`]; beyond that blocks go back to the
//! global allocator at once. Everything kept goes back by `trim()` and at thread exit
//! (the heap's destructor calls [`close`]; later frees go straight to the global
//! allocator). Blocks never cross threads: a thread-local `Gc`, and so its allocation,
//! is `!Send`, so the thread that frees a block is the one that allocated it. Classes
//! are multiples of 8 bytes up to 256, aligned to 8 (the size rounded up to 8 costs no
//! memory: glibc rounds requests to 16-byte chunks with an 8-byte header anyway); larger
//! or more aligned boxes do not use the cache. A block is always allocated from and
//! returned to the global allocator with its class's layout.
//!
//! Setting `MEMWARD_GC_BOX_CACHE=0` in the environment turns the cache off for threads
//! that start freeing afterwards (read once per thread), so that memory checkers see
//! every free (the valgrind run in `scripts/test` uses it) and so the cache's share of
//! the speed can be measured.
use core::alloc::Layout;
use core::cell::Cell;
use core::ptr::{self, NonNull};

/// Size classes are multiples of this, which is also their alignment (and the size of
/// the free list's link).
const GRANULE: usize = 8;
/// Number of classes: 8 to 256 bytes.
const CLASSES: usize = 32;
/// Bytes of free blocks kept per class and thread.
pub(crate) const KEEP_BYTES: usize = 256 << 10;

/// Not decided yet for this thread (the first free decides).
const UNDECIDED: u8 = 0;
const ON: u8 = 1;
/// Turned off by the environment, or closed at thread exit.
const OFF: u8 = 2;
/// `free`'s outcome when it kept the block.
const KEPT: u8 = 3;

/// A free block's first word.
struct FreeBlock {
    next: *mut FreeBlock,
}

struct Cache {
    heads: [Cell<*mut FreeBlock>; CLASSES],
    lens: [Cell<usize>; CLASSES],
    state: Cell<u8>,
}

thread_local! {
    /// No destructor, so reaching it costs no lazy-registration check; the heap's
    /// destructor empties it.
    static CACHE: Cache = const {
        Cache {
            heads: [const { Cell::new(ptr::null_mut()) }; CLASSES],
            lens: [const { Cell::new(0) }; CLASSES],
            state: Cell::new(UNDECIDED),
        }
    };
}

/// The class for boxes of `layout`, if the cache serves them.
pub(crate) const fn class_of(layout: Layout) -> Option<usize> {
    if layout.align() <= GRANULE && layout.size() <= CLASSES * GRANULE && layout.size() > 0 {
        Some(layout.size().div_ceil(GRANULE) - 1)
    } else {
        None
    }
}

/// The layout every block of `class` has.
fn class_layout(class: usize) -> Layout {
    // A multiple of 8 up to 256, aligned to 8: always a valid layout.
    match Layout::from_size_align((class + 1) * GRANULE, GRANULE) {
        Ok(layout) => layout,
        Err(_) => unreachable!("size classes are valid layouts"),
    }
}

/// A block for `class` (of its layout), recycled if one is kept.
#[inline]
pub(crate) fn alloc(class: usize) -> NonNull<u8> {
    let recycled = CACHE.with(|cache| {
        let head = cache.heads[class].get();
        if head.is_null() {
            return None;
        }
        // SAFETY: every block on the list is a free block of this class that this
        // thread pushed and nothing else refers to; its first word is `FreeBlock`.
        let next = unsafe { (*head).next };
        cache.heads[class].set(next);
        cache.lens[class].set(cache.lens[class].get() - 1);
        NonNull::new(head.cast::<u8>())
    });
    match recycled {
        Some(block) => block,
        None => alloc_fresh(class),
    }
}

#[cold]
#[inline(never)]
fn alloc_fresh(class: usize) -> NonNull<u8> {
    let layout = class_layout(class);
    // SAFETY: the layout has a non-zero size.
    let block = unsafe { std::alloc::alloc(layout) };
    match NonNull::new(block) {
        Some(block) => block,
        None => std::alloc::handle_alloc_error(layout),
    }
}

/// Takes back a block of `class`.
///
/// # Safety
/// `block` came from [`alloc`] with the same class on this thread, and nothing refers to
/// it any more.
#[inline]
pub(crate) unsafe fn free(block: NonNull<u8>, class: usize) {
    let state = CACHE.with(|cache| {
        let state = cache.state.get();
        let len = cache.lens[class].get();
        if state != ON || len >= KEEP_BYTES / ((class + 1) * GRANULE) {
            return state;
        }
        let block = block.cast::<FreeBlock>().as_ptr();
        // SAFETY: the block is ours (the caller's contract) and at least 8 bytes,
        // aligned to 8: room for a pointer.
        unsafe {
            block.write(FreeBlock {
                next: cache.heads[class].get(),
            })
        };
        cache.heads[class].set(block);
        cache.lens[class].set(len + 1);
        KEPT
    });
    match state {
        KEPT => {}
        // SAFETY: forwarded.
        UNDECIDED => unsafe { free_slow(block, class) },
        // SAFETY: allocated by the global allocator with this layout (`alloc_fresh`).
        _ => unsafe { std::alloc::dealloc(block.as_ptr(), class_layout(class)) },
    }
}

/// # Safety
/// As for [`free`].
#[cold]
#[inline(never)]
unsafe fn free_slow(block: NonNull<u8>, class: usize) {
    let retry = CACHE.with(|cache| {
        if cache.state.get() != UNDECIDED {
            return false;
        }
        // First free on this thread: the heap's destructor must be registered to empty
        // the cache at thread exit; if the heap is already gone, never keep anything.
        // (Off while deciding, in case reading the environment frees a Gc.)
        cache.state.set(OFF);
        let off = std::env::var_os("MEMWARD_GC_BOX_CACHE").is_some_and(|v| v == "0");
        let on = !off && super::heap::register_exit();
        cache.state.set(if on { ON } else { OFF });
        on
    });
    if retry {
        // SAFETY: forwarded.
        unsafe { free(block, class) }
    } else {
        // SAFETY: allocated by the global allocator with this layout (`alloc_fresh`).
        unsafe { std::alloc::dealloc(block.as_ptr(), class_layout(class)) }
    }
}

/// Returns every kept block to the global allocator. With `closing`, the thread is
/// exiting: nothing is kept from now on.
pub(crate) fn release(closing: bool) {
    let _ = CACHE.try_with(|cache| {
        if closing {
            cache.state.set(OFF);
        }
        for class in 0..CLASSES {
            let mut head = cache.heads[class].replace(ptr::null_mut());
            cache.lens[class].set(0);
            while !head.is_null() {
                // SAFETY: a kept block (see `alloc`); read before it is freed.
                let next = unsafe { (*head).next };
                // SAFETY: allocated with this class's layout by the global allocator.
                unsafe { std::alloc::dealloc(head.cast(), class_layout(class)) };
                head = next;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_small_boxes_aligned_to_16_at_most() {
        let layout = |size, align| Layout::from_size_align(size, align).unwrap();
        assert_eq!(class_of(layout(1, 1)), Some(0));
        assert_eq!(class_of(layout(8, 8)), Some(0));
        assert_eq!(class_of(layout(9, 8)), Some(1));
        assert_eq!(class_of(layout(40, 8)), Some(4));
        assert_eq!(class_of(layout(256, 8)), Some(31));
        assert_eq!(class_of(layout(257, 8)), None);
        assert_eq!(class_of(layout(32, 16)), None);
        assert_eq!(class_of(layout(0, 1)), None);
        for class in 0..CLASSES {
            assert_eq!(class_of(class_layout(class)), Some(class));
        }
    }

    #[test]
    fn freed_blocks_are_reused_kept_up_to_the_bound_and_released() {
        // A thread of its own: the cache's state is per thread.
        std::thread::spawn(|| {
            let class = class_of(Layout::new::<[u64; 6]>()).unwrap();
            let first = alloc(class);
            // SAFETY: from `alloc` with this class, on this thread, unused.
            unsafe { free(first, class) };
            let on = CACHE.with(|c| c.state.get()) == ON;
            let len = || CACHE.with(|c| c.lens[class].get());
            assert_eq!(len(), usize::from(on));
            let again = alloc(class);
            if on {
                assert_eq!(again, first, "the block just freed is handed out again");
            }
            let bound = KEEP_BYTES / ((class + 1) * GRANULE);
            let blocks: Vec<_> = (0..bound + 10).map(|_| alloc(class)).collect();
            for block in blocks.into_iter().chain([again]) {
                // SAFETY: as above.
                unsafe { free(block, class) };
            }
            assert_eq!(len(), if on { bound } else { 0 });
            release(false);
            assert_eq!(len(), 0);
            assert!(CACHE.with(|c| c.heads[class].get().is_null()));
        })
        .join()
        .unwrap();
    }
}
