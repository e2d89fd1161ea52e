//! The platform layer: the only module that talks to the kernel.
//!
//! Everything above this module sees four operations on address space (map, map aligned,
//! unmap, purge), a clock and a thread identity. None of them allocates, panics or takes a
//! lock, so they are safe to call before initialisation, during thread exit and in a child
//! after `fork()`. Preconditions are stated on each function; the callers in `segment.rs`
//! only ever pass ranges they obtained from `map`/`map_aligned`.

use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// The system page size, read at run time (4, 16 and 64 KiB pages all occur in practice).
#[inline]
pub fn page_size() -> usize {
    let cached = PAGE_SIZE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: sysconf has no preconditions; it neither allocates nor touches our memory.
    let raw = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let size = if raw > 0 && (raw as usize).is_power_of_two() {
        raw as usize
    } else {
        4096
    };
    PAGE_SIZE.store(size, Ordering::Relaxed);
    size
}

/// Maps `size` bytes of fresh, zeroed, read-write memory; null on failure.
pub fn map(size: usize) -> *mut u8 {
    if size == 0 {
        return ptr::null_mut();
    }
    // SAFETY: an anonymous private mapping at an address the kernel chooses cannot overlap
    // any memory this process already uses.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        p.cast()
    }
}

/// Maps `size` bytes whose start is a multiple of `align`; null on failure.
///
/// `size` must be a multiple of the page size and `align` a power of two no smaller than it.
/// The mapping is over-allocated by `align` and trimmed at both ends.
pub fn map_aligned(size: usize, align: usize) -> *mut u8 {
    debug_assert!(align.is_power_of_two() && align >= page_size());
    debug_assert!(size % page_size() == 0);
    let Some(over) = size.checked_add(align) else {
        return ptr::null_mut();
    };
    let base = map(over);
    if base.is_null() {
        return base;
    }
    let start = (base as usize + align - 1) & !(align - 1);
    let head = start - base as usize;
    let tail = over - head - size;
    // SAFETY: both ranges lie inside the mapping just made and outside [start, start+size),
    // which is what we hand out; page alignment holds because base, start and size are
    // page-aligned.
    unsafe {
        if head > 0 {
            unmap(base, head);
        }
        if tail > 0 {
            unmap((start + size) as *mut u8, tail);
        }
    }
    start as *mut u8
}

/// Returns a mapping (or the page-aligned part of one) to the kernel.
///
/// # Safety
/// `[p, p+size)` must be page-aligned, come from `map`/`map_aligned`, and hold nothing that
/// is still in use.
pub unsafe fn unmap(p: *mut u8, size: usize) {
    // SAFETY: the caller guarantees the range is ours and unused.
    unsafe {
        libc::munmap(p.cast(), size);
    }
}

/// Tells the kernel it may drop the physical pages behind `[p, p+size)`; they read back as
/// zero afterwards (private anonymous memory). Returns false if the kernel refused.
///
/// # Safety
/// The range must be page-aligned, inside one of our mappings, and hold no live data.
pub unsafe fn purge(p: *mut u8, size: usize) -> bool {
    // SAFETY: the caller guarantees the range is ours and holds no live data.
    unsafe { libc::madvise(p.cast(), size, libc::MADV_DONTNEED) == 0 }
}

/// Asks the kernel to back `[p, p+size)` with transparent huge pages when it can (a hint:
/// ignored where THP is off). Returns false if refused.
///
/// # Safety
/// The range must be page-aligned and inside one of our mappings.
pub unsafe fn advise_huge_pages(p: *mut u8, size: usize) -> bool {
    // SAFETY: the caller guarantees the range is ours; the advice changes no contents.
    unsafe { libc::madvise(p.cast(), size, libc::MADV_HUGEPAGE) == 0 }
}

/// Withdraws [`advise_huge_pages`] for `[p, p+size)`.
///
/// # Safety
/// The range must be page-aligned and inside one of our mappings.
pub unsafe fn advise_no_huge_pages(p: *mut u8, size: usize) -> bool {
    // SAFETY: the caller guarantees the range is ours; the advice changes no contents.
    unsafe { libc::madvise(p.cast(), size, libc::MADV_NOHUGEPAGE) == 0 }
}

/// Milliseconds on the monotonic clock (vDSO call, no syscall on Linux).
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-parameter; CLOCK_MONOTONIC always exists on Linux.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// A number unique to each live thread and never zero: the thread pointer on the platforms
/// that have one in a register (one instruction), else the address of a thread-local.
#[inline(always)]
pub fn thread_id() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let tp: usize;
        // SAFETY: on x86_64 Linux `fs:0` holds the thread control block's pointer to itself,
        // set up by the C runtime before any user code (and our allocator) can run.
        unsafe {
            core::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) tp,
                options(nostack, readonly, preserves_flags, pure));
        }
        tp
    }
    #[cfg(target_arch = "aarch64")]
    {
        let tp: usize;
        // SAFETY: reading TPIDR_EL0 has no side effects; the runtime sets it per thread.
        unsafe {
            core::arch::asm!("mrs {}, tpidr_el0", out(reg) tp,
                options(nostack, nomem, preserves_flags, pure));
        }
        tp
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        std::thread_local!(static ANCHOR: u8 = const { 0 });
        ANCHOR.with(|a| a as *const u8 as usize)
    }
}

/// Writes raw bytes to stderr without allocating (used for fatal messages and stats).
pub fn write_stderr(bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        // SAFETY: the pointer and length describe a live byte slice.
        let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            return;
        }
        rest = &rest[n as usize..];
    }
}

/// Prints a message and aborts the process: the allocator's only way to stop, since it must
/// never unwind.
pub fn fatal(msg: &str) -> ! {
    write_stderr(b"memward: fatal: ");
    write_stderr(msg.as_bytes());
    write_stderr(b"\n");
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_is_a_power_of_two() {
        assert!(page_size().is_power_of_two());
        assert!(page_size() >= 4096);
    }

    #[test]
    fn aligned_mapping_is_aligned_and_zero() {
        let align = 4 << 20;
        let p = map_aligned(align, align);
        assert!(!p.is_null());
        assert_eq!(p as usize % align, 0);
        // SAFETY: p is a fresh mapping of `align` bytes.
        unsafe {
            assert_eq!(*p.add(align - 1), 0);
            *p = 7;
            assert!(purge(p, page_size()));
            assert_eq!(*p, 0, "purged private memory reads back as zero");
            unmap(p, align);
        }
    }

    #[test]
    fn thread_ids_differ_between_threads() {
        let here = thread_id();
        let there = std::thread::spawn(thread_id).join().unwrap();
        assert_ne!(here, 0);
        assert_ne!(here, there);
        assert_eq!(here, thread_id());
    }
}
