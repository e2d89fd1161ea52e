//! The engine as plain functions on the calling thread's heap, with C-like semantics:
//! null on failure, no layouts. This is what the drop-in C library (`memward-preload`)
//! wraps, and what Rust code can use for memory that crosses threads or FFI.
//!
//! Any pointer from memward, including blocks of first-class [`crate::Heap`]s, may be freed
//! with [`free`] from any thread.

use crate::alloc::{self, MIN_ALIGN};
use crate::layout::MAX_ALIGN;
use crate::segment::Segment;
use crate::{segment_map, segment_pool, thread};

/// Alignment of every block larger than 8 bytes (C's `max_align_t`).
pub const MALLOC_ALIGN: usize = MIN_ALIGN;
/// Largest alignment memward can give (larger requests return null).
pub const MAX_ALIGNMENT: usize = MAX_ALIGN;

/// Allocates `size` bytes (a unique pointer even for 0). Null when out of memory.
///
/// ```
/// let p = memward::raw::malloc(100);
/// assert!(!p.is_null());
/// unsafe { memward::raw::free(p) };
/// ```
#[inline]
pub fn malloc(size: usize) -> *mut u8 {
    // SAFETY: the thread's own heap.
    unsafe { alloc::heap_malloc(thread::current(), size) }
}

/// As [`malloc`], and sets `errno` to `ENOMEM` when it returns null, as C `malloc` does
/// (in the cold path: the fast path stays a leaf).
///
/// ```
/// assert!(!memward::raw::malloc_or_enomem(10).is_null());
/// assert!(memward::raw::malloc_or_enomem(usize::MAX).is_null());
/// assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::ENOMEM));
/// ```
#[inline]
pub fn malloc_or_enomem(size: usize) -> *mut u8 {
    // SAFETY: the thread's own heap.
    unsafe { alloc::heap_malloc_or_enomem(thread::current(), size) }
}

/// Allocates `count * size` zeroed bytes; null if the product overflows or memory is out.
///
/// ```
/// let p = memward::raw::calloc(4, 8) as *mut u64;
/// assert_eq!(unsafe { *p.add(3) }, 0);
/// unsafe { memward::raw::free(p.cast()) };
/// assert!(memward::raw::calloc(usize::MAX, 2).is_null());
/// ```
pub fn calloc(count: usize, size: usize) -> *mut u8 {
    match count.checked_mul(size) {
        // SAFETY: the thread's own heap.
        Some(total) => unsafe { alloc::heap_alloc_zeroed(thread::current(), total, MIN_ALIGN) },
        None => core::ptr::null_mut(),
    }
}

/// Allocates `size` bytes aligned to `align`, which must be a power of two; null if it is
/// not, if it exceeds [`MAX_ALIGNMENT`], or when memory is out.
///
/// ```
/// let p = memward::raw::aligned_alloc(4096, 10);
/// assert_eq!(p as usize % 4096, 0);
/// unsafe { memward::raw::free(p) };
/// ```
pub fn aligned_alloc(align: usize, size: usize) -> *mut u8 {
    if !align.is_power_of_two() {
        return core::ptr::null_mut();
    }
    // SAFETY: the thread's own heap.
    unsafe { alloc::heap_malloc_aligned(thread::current(), size, align) }
}

/// Resizes `p` to `size` bytes (like C `realloc` with a non-zero size: `p` null means
/// allocate). On failure returns null and `p` stays valid.
///
/// # Safety
/// `p` is null or a live pointer from memward.
///
/// ```
/// let p = memward::raw::malloc(8);
/// let q = unsafe { memward::raw::realloc(p, 10_000) };
/// assert!(!q.is_null());
/// unsafe { memward::raw::free(q) };
/// ```
pub unsafe fn realloc(p: *mut u8, size: usize) -> *mut u8 {
    // SAFETY: forwarded precondition.
    unsafe { alloc::heap_realloc(thread::current(), p, size, MIN_ALIGN) }
}

/// Resizes keeping alignment `align` (as [`realloc`]).
///
/// # Safety
/// `p` is null or a live pointer from memward aligned to `align`, a power of two.
///
/// ```
/// let p = memward::raw::aligned_alloc(256, 10);
/// let q = unsafe { memward::raw::realloc_aligned(p, 5000, 256) };
/// assert_eq!(q as usize % 256, 0);
/// unsafe { memward::raw::free(q) };
/// ```
pub unsafe fn realloc_aligned(p: *mut u8, size: usize, align: usize) -> *mut u8 {
    // SAFETY: forwarded precondition.
    unsafe { alloc::heap_realloc(thread::current(), p, size, align) }
}

/// Frees `p` (null is ignored), from any thread.
///
/// # Safety
/// `p` is null or a live pointer from memward, not freed before.
///
/// ```
/// let p = memward::raw::malloc(32) as usize;
/// std::thread::spawn(move || unsafe { memward::raw::free(p as *mut u8) }).join().unwrap();
/// ```
#[inline]
pub unsafe fn free(p: *mut u8) {
    // SAFETY: forwarded precondition.
    unsafe { alloc::free(p) }
}

/// Frees a block known not to be null (the C `free` after [`owns`] has checked it):
/// [`free`] without its null test.
///
/// # Safety
/// `p` is a live memward pointer (not null), not freed twice.
///
/// ```
/// let p = memward::raw::malloc(32);
/// assert!(memward::raw::owns(p));
/// unsafe { memward::raw::free_nonnull(p) };
/// ```
#[inline]
pub unsafe fn free_nonnull(p: *mut u8) {
    debug_assert!(!p.is_null());
    // SAFETY: forwarded precondition.
    unsafe { crate::free::free_any(p) }
}

/// Bytes usable at `p` (at least what was requested).
///
/// # Safety
/// `p` is a live pointer from memward.
///
/// ```
/// let p = memward::raw::malloc(100);
/// assert!(unsafe { memward::raw::usable_size(p) } >= 100);
/// unsafe { memward::raw::free(p) };
/// ```
pub unsafe fn usable_size(p: *const u8) -> usize {
    // SAFETY: forwarded precondition.
    unsafe { alloc::usable_size_of_program_block(p) }
}

/// Does `p` lie in memory memward manages? One load from the segment map; it does not say
/// whether `p` is a live block start (a freed block or interior pointer also answers true).
/// The map has one bit per 4 MiB window, so for an address past the end of a huge block's
/// shorter mapping, in the rest of its window, it answers true too: the `free` paths
/// find out there from the block's header, but a caller that reads or skips memory by this
/// answer needs [`owns_mapped`].
///
/// ```
/// let p = memward::raw::malloc(10);
/// assert!(memward::raw::owns(p));
/// let local = 5u8;
/// assert!(!memward::raw::owns(&local));
/// unsafe { memward::raw::free(p) };
/// ```
#[inline]
pub fn owns(p: *const u8) -> bool {
    segment_map::contains(Segment::of(p) as usize)
}

/// As [`owns`], but exact: false for an address in the part of a segment window that the
/// segment does not map. A huge block of less than 4 MiB (one `realloc` grew past 256 KiB,
/// or one of 2-4 MiB) has a mapping shorter than its window, and the kernel may put any
/// other mapping in the rest: a library's data, an interpreter's arena. The leak scan,
/// which skips memory memward owns as roots, must still read those.
///
/// Reads the segment's header: call it while the segment cannot be released (a pointer
/// into a live block of it, or every other thread stopped).
///
/// ```
/// let p = memward::raw::malloc(3 << 20);
/// assert!(memward::raw::owns_mapped(p));
/// unsafe { memward::raw::free(p) };
/// ```
pub fn owns_mapped(p: *const u8) -> bool {
    let seg = Segment::of(p);
    // SAFETY: a segment in the map is mapped at least as far as its header, and stays so
    // while it cannot be released (the caller's condition); `size` is an atomic.
    owns(p) && (p as usize - seg as usize) < unsafe { (*seg).size() }
}

/// Returns all the memory that can be returned to the OS now: the calling thread's free
/// pages and the segment cache (what C `malloc_trim` does).
///
/// ```
/// memward::raw::collect();
/// ```
pub fn collect() {
    let h = thread::current();
    if !thread::is_empty(h) {
        // SAFETY: the thread's own heap, not borrowed elsewhere.
        unsafe { (*h).local().collect() };
    } else {
        segment_pool::purge_cache_all();
    }
}
