//! `MEMWARD_CHECK=1`: with the `check` feature, the checking allocator (`memward-check`)
//! is put in front of the engine at process setup ([`crate::interpose`]), so a program
//! whose global allocator is memward, or any program under libmemward.so, is checked
//! without code changes (`memward check` sets the variables). The checker crate does not
//! depend on the engine: it takes its memory from the `Backing` below, and the engine
//! reaches it through the `Interposer` below; this is the only place they meet. Without
//! the feature this does nothing.

#[cfg(feature = "check")]
mod on {
    use crate::interpose::{self, Interposer, Kind};
    use crate::layout::LARGE_MAX;
    use crate::page::FLAG_UNUSED;
    use crate::segment::Segment;
    use crate::{alloc, raw, thread};

    // The checker's memory: engine blocks, taken inside the interposer's unchecked
    // section (or `unchecked` below), so these calls never come back to the checker.
    unsafe fn backing_alloc(size: usize, align: usize) -> *mut u8 {
        if align <= alloc::MIN_ALIGN {
            // SAFETY: the checker calls its backing from inside the interposer's section.
            unsafe { alloc::interposer_malloc(size) }
        } else {
            raw::aligned_alloc(align, size)
        }
    }

    // Blocks aligned to `LARGE_MAX` or more are huge blocks either way (the ordinary
    // layout puts a whole alignment before the user's bytes); placed for the checker's
    // prefix, the pointer the program gets stays in the block's first segment, where the
    // engine finds the block from it (`alloc::heap_malloc_huge_at`).
    unsafe fn backing_alloc_at(size: usize, align: usize, offset: usize) -> *mut u8 {
        // SAFETY: the calling thread's heap.
        unsafe { alloc::heap_malloc_huge_at(thread::current(), size, align, offset) }
    }

    unsafe fn backing_free(p: *mut u8) {
        // SAFETY: the checker frees only blocks its backing gave it, once.
        unsafe { crate::free::interposer_free(p) }
    }

    // The start of `p`'s page of blocks: a page in use is one readable mapping from its
    // start (purged memory reads as zeros). A slot inside a large block's run, or a
    // page not in use, gives no answer.
    fn backing_readable_from(p: *const u8) -> usize {
        // SAFETY: the checker asks only about engine memory, which the engine routed to
        // it: `p` lies in a segment's first 4 MiB, whose header and page table are mapped
        // for as long as the segment is.
        unsafe {
            let page = (*Segment::of(p)).page_of(p);
            if (*page).flags() & FLAG_UNUSED != 0 || !(*page).in_use() {
                return usize::MAX;
            }
            let start = (*page).start() as usize;
            if start <= p as usize {
                start
            } else {
                usize::MAX
            }
        }
    }

    fn backing_unchecked(f: &mut dyn FnMut()) {
        interpose::unchecked(f)
    }

    static BACKING: memward_check::Backing = memward_check::Backing {
        alloc: backing_alloc,
        alloc_at: Some(memward_check::AllocAt {
            min_align: LARGE_MAX,
            alloc: backing_alloc_at,
        }),
        free: backing_free,
        owns: raw::owns_mapped,
        readable_from: backing_readable_from,
        unchecked: backing_unchecked,
    };

    fn kind(k: Kind) -> memward_check::Kind {
        match k {
            Kind::Malloc => memward_check::Kind::Malloc,
            Kind::New => memward_check::Kind::New,
            Kind::NewArray => memward_check::Kind::NewArray,
        }
    }

    unsafe fn alloc(size: usize, align: usize, zeroed: bool, k: Kind) -> *mut u8 {
        // SAFETY: the interposer's contract is the checker's entry point's.
        unsafe { memward_check::alloc(size, align, zeroed, kind(k)) }
    }

    unsafe fn free(p: *mut u8, k: Kind, size: usize) {
        // SAFETY: as above.
        unsafe { memward_check::free(p, kind(k), size) }
    }

    static INTERPOSER: Interposer = Interposer {
        alloc,
        free,
        realloc: memward_check::realloc,
        usable_size: memward_check::usable_size,
        foreign_free: memward_check::foreign_free,
    };

    /// Installs the checker if `MEMWARD_CHECK` asks for it. Runs once, during the process
    /// setup of the first allocation, before any block exists (new heaps start in hooked
    /// mode, so setting the interposer is all that is needed).
    pub fn install_from_env() {
        if memward_check::configure_from_env(&BACKING) {
            interpose::install(&INTERPOSER);
        }
    }
}

#[cfg(feature = "check")]
pub use on::install_from_env;

/// Without the `check` feature: nothing to install.
#[cfg(not(feature = "check"))]
pub fn install_from_env() {}
