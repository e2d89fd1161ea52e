//! `libmemward.so`: the C allocation API over the memward engine, for `LD_PRELOAD`.
//!
//! Every function follows glibc's behaviour on this platform (glibc 2.36 semantics for
//! `aligned_alloc`, which accepts any alignment like `memalign`). The library never unwinds
//! (the workspace builds with `panic = "abort"`), sets `errno` where glibc does, and is safe
//! to call before its own initialisation (the first call initialises it), from the dynamic
//! loader, in TLS destructors and after `fork()` (the engine registers fork handlers).
//!
//! glibc's own extensions are exported too (`malloc_info`, `mallopt`, `cfree`, `mallinfo2`,
//! `malloc_trim`, ...), so that none of glibc's versions acts on glibc's unused arena while
//! memward serves the program (`malloc_info.rs`, `mallopt.rs`).
//!
//! Fast mode answers misuse as glibc does, with one line naming memward and an abort
//! (SIGABRT): `free` checks that the pointer lies in memory memward manages (one load from
//! the segment map; a stack, global or mmap address gets `memward: free(): invalid
//! pointer`), and the engine checks the rest: interior pointers, double frees (`memward:
//! free(): double free detected`) and overwritten free lists (docs/engine-hardening.md).

#![deny(unsafe_op_in_unsafe_fn)]

mod cxx;
mod exit;
mod malloc_info;
mod mallopt;
mod report;

use core::ffi::{c_int, c_void};
use core::ptr;
use memward::raw;

#[global_allocator]
static GLOBAL: memward::Memward = memward::Memward;

#[inline]
fn set_errno(code: c_int) {
    // SAFETY: __errno_location returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() = code };
}

/// Null results mean exhaustion: glibc sets ENOMEM.
#[inline]
fn or_enomem(p: *mut u8) -> *mut c_void {
    if p.is_null() {
        set_errno(libc::ENOMEM);
    }
    p.cast()
}

/// # Safety
/// C `malloc`.
#[no_mangle]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    raw::malloc_or_enomem(size).cast()
}

/// # Safety
/// C `calloc`: `count * size` overflowing gives NULL and ENOMEM.
#[no_mangle]
pub unsafe extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    or_enomem(raw::calloc(count, size))
}

/// # Safety
/// C `free`: `p` is NULL or a live pointer from this library.
#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // NULL is not in the segment map either, so one test covers both rare cases.
    if !raw::owns(p as *const u8) {
        return free_not_ours(p);
    }
    // SAFETY: the pointer is in memward's memory (so not null); the caller promises it is
    // live.
    unsafe { raw::free_nonnull(p.cast()) }
}

/// `free` of NULL or of a pointer outside memward's memory. Out of line, so that `free`
/// makes no call that returns and needs no stack frame (a tail jump here instead): two
/// instructions of every `free`.
#[cold]
#[inline(never)]
fn free_not_ours(p: *mut c_void) {
    // SAFETY: not null; a checker (when one is interposed) reports it.
    if !p.is_null() && !unsafe { memward::interpose::foreign_free(p.cast(), "free") } {
        report::invalid_pointer("free");
    }
}

/// # Safety
/// C `realloc`: NULL is malloc; size 0 frees and returns NULL (glibc); on failure NULL,
/// ENOMEM, and the old block stays valid.
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        return or_enomem(raw::malloc(size));
    }
    if !raw::owns(p as *const u8) {
        // SAFETY: not null; a checker (when one is interposed) reports it.
        if unsafe { memward::interpose::foreign_free(p.cast(), "realloc") } {
            return ptr::null_mut();
        }
        report::invalid_pointer("realloc");
    }
    if size == 0 {
        // SAFETY: live pointer of ours.
        unsafe { raw::free(p.cast()) };
        return ptr::null_mut();
    }
    // SAFETY: live pointer of ours.
    or_enomem(unsafe { raw::realloc(p.cast(), size) })
}

/// # Safety
/// C `reallocarray`: `count * size` overflowing gives NULL and ENOMEM, old block intact.
#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, count: usize, size: usize) -> *mut c_void {
    match count.checked_mul(size) {
        // SAFETY: forwarded contract.
        Some(total) => unsafe { realloc(p, total) },
        None => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// glibc's `memalign` rules: small alignments are plain malloc; a non-power-of-two
/// alignment is rounded up; an alignment above `SIZE_MAX / 2 + 1` is EINVAL.
fn memalign_impl(align: usize, size: usize) -> *mut c_void {
    // Plain malloc only promises 8 bytes for blocks of 8 bytes or less, so anything
    // stricter goes through the aligned path (which is as fast for 16).
    if align <= 8 {
        return or_enomem(raw::malloc(size));
    }
    if align > usize::MAX / 2 + 1 {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    let align = align.next_power_of_two();
    or_enomem(raw::aligned_alloc(align, size))
}

/// # Safety
/// C11 `aligned_alloc` (glibc 2.36 behaviour: as `memalign`).
#[no_mangle]
pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    memalign_impl(align, size)
}

/// # Safety
/// Obsolete `memalign`.
#[no_mangle]
pub unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    memalign_impl(align, size)
}

/// # Safety
/// POSIX `posix_memalign`: EINVAL unless `align` is a power of two multiple of
/// `sizeof(void*)`; ENOMEM on exhaustion; `*out` is untouched on error.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    if !align.is_power_of_two() || align % core::mem::size_of::<*mut c_void>() != 0 {
        return libc::EINVAL;
    }
    let p = if align <= 8 {
        raw::malloc(size)
    } else {
        raw::aligned_alloc(align, size)
    };
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: the caller passes a valid out-pointer.
    unsafe { *out = p.cast() };
    0
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// # Safety
/// Obsolete `valloc`: page-aligned.
#[no_mangle]
pub unsafe extern "C" fn valloc(size: usize) -> *mut c_void {
    memalign_impl(page_size(), size)
}

/// # Safety
/// Obsolete `pvalloc`: page-aligned, size rounded up to whole pages (at least one).
#[no_mangle]
pub unsafe extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let ps = page_size();
    match size.max(1).checked_add(ps - 1) {
        Some(s) => memalign_impl(ps, s & !(ps - 1)),
        None => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// # Safety
/// glibc `malloc_usable_size`: 0 for NULL (and for pointers that are not ours).
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    // `owns_mapped`: an address beside a huge block, in the rest of its segment window,
    // would otherwise be given the huge block's size.
    if p.is_null() || !raw::owns_mapped(p as *const u8) {
        return 0;
    }
    // SAFETY: the caller promises a live pointer; it is in our memory.
    unsafe { raw::usable_size(p as *const u8) }
}

/// # Safety
/// C23 `free_sized`: as `free` (the size is a hint memward does not need).
#[no_mangle]
pub unsafe extern "C" fn free_sized(p: *mut c_void, _size: usize) {
    // SAFETY: forwarded contract.
    unsafe { free(p) }
}

/// # Safety
/// C23 `free_aligned_sized`: as `free`.
#[no_mangle]
pub unsafe extern "C" fn free_aligned_sized(p: *mut c_void, _align: usize, _size: usize) {
    // SAFETY: forwarded contract.
    unsafe { free(p) }
}

/// # Safety
/// Obsolete `cfree` (glibc keeps it only for old binaries, as `cfree@GLIBC_2.2.5`): as
/// `free`. Exported so that such a binary frees memward's blocks through memward: glibc's
/// `cfree` would hand them to glibc's `free`, which aborts.
#[no_mangle]
pub unsafe extern "C" fn cfree(p: *mut c_void) {
    // SAFETY: forwarded contract.
    unsafe { free(p) }
}

/// # Safety
/// glibc `malloc_trim`: returns free memory to the OS now; 1 as glibc does when it
/// released memory.
#[no_mangle]
pub unsafe extern "C" fn malloc_trim(_pad: usize) -> c_int {
    raw::collect();
    1
}

/// glibc's `struct mallinfo2`.
#[repr(C)]
pub struct Mallinfo2 {
    arena: usize,
    ordblks: usize,
    smblks: usize,
    hblks: usize,
    hblkhd: usize,
    usmblks: usize,
    fsmblks: usize,
    uordblks: usize,
    fordblks: usize,
    keepcost: usize,
}

/// glibc's legacy `struct mallinfo` (int fields).
#[repr(C)]
pub struct Mallinfo {
    arena: c_int,
    ordblks: c_int,
    smblks: c_int,
    hblks: c_int,
    hblkhd: c_int,
    usmblks: c_int,
    fsmblks: c_int,
    uordblks: c_int,
    fordblks: c_int,
    keepcost: c_int,
}

/// # Safety
/// glibc `mallinfo2`, filled from memward's statistics: `arena` is mapped bytes,
/// `uordblks` bytes in use, `fordblks` mapped but not in use.
#[no_mangle]
pub unsafe extern "C" fn mallinfo2() -> Mallinfo2 {
    let s = memward::stats();
    Mallinfo2 {
        arena: s.mapped_bytes as usize,
        ordblks: 0,
        smblks: 0,
        hblks: 0,
        hblkhd: 0,
        usmblks: 0,
        fsmblks: 0,
        uordblks: s.in_use_bytes as usize,
        fordblks: s.mapped_bytes.saturating_sub(s.in_use_bytes) as usize,
        keepcost: 0,
    }
}

/// # Safety
/// glibc's legacy `mallinfo` (values saturate at `INT_MAX`).
#[no_mangle]
pub unsafe extern "C" fn mallinfo() -> Mallinfo {
    // SAFETY: no preconditions.
    let m = unsafe { mallinfo2() };
    let c = |v: usize| v.min(c_int::MAX as usize) as c_int;
    Mallinfo {
        arena: c(m.arena),
        ordblks: 0,
        smblks: 0,
        hblks: 0,
        hblkhd: 0,
        usmblks: 0,
        fsmblks: 0,
        uordblks: c(m.uordblks),
        fordblks: c(m.fordblks),
        keepcost: 0,
    }
}

/// # Safety
/// glibc `malloc_stats`: prints statistics to stderr.
#[no_mangle]
pub unsafe extern "C" fn malloc_stats() {
    report::print_stats();
}
