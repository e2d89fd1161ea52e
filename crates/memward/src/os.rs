//! The platform layer: the only module that talks to the kernel.
//!
//! Everything above this module sees a few operations on address space (map, map aligned,
//! reserve, remap, unmap, purge, huge-page advice), a clock and a thread identity.
//! Mappings are committed memory in the kernel's accounting (no `MAP_NORESERVE`), so
//! impossible requests fail as they do for glibc; reservations, which hold address space
//! only, are `PROT_NONE` and not accounted. None of them allocates, panics or takes a
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
///
/// The mapping is accounted like glibc's (no `MAP_NORESERVE`): under the kernel's default
/// overcommit heuristic a request larger than RAM plus swap fails here, as it does for
/// glibc's `mmap`, instead of succeeding and killing the program when it is touched.
pub fn map(size: usize) -> *mut u8 {
    raw_map(ptr::null_mut(), size, libc::PROT_READ | libc::PROT_WRITE, 0)
}

/// Reserves `size` bytes of address space: inaccessible, not accounted as committed
/// memory (`PROT_NONE`, `MAP_NORESERVE`). Null on failure.
pub fn reserve(size: usize) -> *mut u8 {
    raw_map(ptr::null_mut(), size, libc::PROT_NONE, libc::MAP_NORESERVE)
}

/// One `mmap` call: a private anonymous mapping at `at` (fixed, replacing what is there,
/// unless `flags` asks for `MAP_FIXED_NOREPLACE`) or anywhere (`at` null).
fn raw_map(at: *mut u8, size: usize, prot: i32, flags: i32) -> *mut u8 {
    if size == 0 {
        return ptr::null_mut();
    }
    let fixed = if at.is_null() || flags & libc::MAP_FIXED_NOREPLACE != 0 {
        0
    } else {
        libc::MAP_FIXED
    };
    // SAFETY: an anonymous private mapping either goes where the kernel chooses, which
    // cannot overlap memory in use, or (MAP_FIXED) over a reservation of ours that the
    // caller passes and that holds nothing.
    let p = unsafe {
        libc::mmap(
            at.cast(),
            size,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | fixed | flags,
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
pub fn map_aligned(size: usize, align: usize) -> *mut u8 {
    map_aligned_at(size, align, 0)
}

/// Alignment slack above which an aligned mapping reserves address space first and
/// commits only the part it keeps: over-mapping 1 GiB of accounted memory to align a
/// small block would make the kernel refuse requests it should grant.
const RESERVE_FIRST: usize = 64 << 20;

/// Maps `size` bytes at a start `s` with `s + offset` a multiple of `align` (so a block at
/// `offset` is aligned); null on failure.
///
/// `size` and `offset` must be multiples of the page size and `align` a power of two no
/// smaller than it. The mapping is over-allocated by `align` and trimmed at both ends;
/// for a large `align` the over-allocation is a reservation (`reserve`) and only the kept
/// part is committed.
pub fn map_aligned_at(size: usize, align: usize, offset: usize) -> *mut u8 {
    debug_assert!(align.is_power_of_two() && align >= page_size());
    debug_assert!(size % page_size() == 0 && offset % page_size() == 0);
    let Some(over) = size.checked_add(align) else {
        return ptr::null_mut();
    };
    let reserve_first = align > RESERVE_FIRST;
    if !reserve_first && offset == 0 {
        let p = map_below_last(size, align);
        if !p.is_null() {
            return p;
        }
    }
    let base = if reserve_first {
        reserve(over)
    } else {
        map(over)
    };
    if base.is_null() {
        return base;
    }
    // SAFETY: `base` is the mapping of `over` bytes just made.
    let start = unsafe { trim_to_aligned(base, over, size, align, offset) } as usize;
    if !reserve_first && offset == 0 {
        LAST_ALIGNED.store(start, Ordering::Relaxed);
    }
    if reserve_first {
        let committed = raw_map(
            start as *mut u8,
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            0,
        );
        if committed.is_null() {
            // SAFETY: the reservation is ours and holds nothing.
            unsafe { unmap(start as *mut u8, size) };
            return ptr::null_mut();
        }
    }
    start as *mut u8
}

/// Start of the last aligned mapping made (0: none yet).
static LAST_ALIGNED: AtomicUsize = AtomicUsize::new(0);

/// Maps `size` bytes right below the last aligned mapping, if that address is aligned and
/// free (`MAP_FIXED_NOREPLACE`); null otherwise. Segments mapped one after another then
/// sit side by side, so the kernel merges them into one mapping (70,000 large blocks
/// would otherwise cost two mappings per segment: the segment and the hole its trimmed
/// over-allocation leaves), and no over-allocation is mapped and trimmed: one call, not
/// three.
fn map_below_last(size: usize, align: usize) -> *mut u8 {
    let last = LAST_ALIGNED.load(Ordering::Relaxed);
    let Some(want) = last.checked_sub(size) else {
        return ptr::null_mut();
    };
    if last == 0 || want % align != 0 {
        return ptr::null_mut();
    }
    let p = raw_map(
        want as *mut u8,
        size,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_FIXED_NOREPLACE,
    );
    if p.is_null() {
        return p;
    }
    if p as usize != want {
        // A kernel without MAP_FIXED_NOREPLACE took the address as a hint only.
        // SAFETY: the mapping was just made for us and holds nothing.
        unsafe { unmap(p, size) };
        return ptr::null_mut();
    }
    LAST_ALIGNED.store(want, Ordering::Relaxed);
    p
}

/// Unmaps the head and tail of the `over`-byte mapping at `base`, keeping the `size`
/// bytes that start at the first `s >= base` with `s + offset` a multiple of `align`;
/// returns `s`.
///
/// # Safety
/// `base` is a mapping of `over >= size + align` bytes that nothing else uses; `base`,
/// `size`, `align` and `offset` are page-aligned.
unsafe fn trim_to_aligned(
    base: *mut u8,
    over: usize,
    size: usize,
    align: usize,
    offset: usize,
) -> *mut u8 {
    let start = ((base as usize + offset + align - 1) & !(align - 1)) - offset;
    let start = if start < base as usize {
        start + align
    } else {
        start
    };
    let head = start - base as usize;
    let tail = over - head - size;
    // SAFETY: both trimmed ranges lie inside the mapping and outside [start, start+size),
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

/// Reserves `size` bytes at a start `s` with `s + offset` a multiple of `align`, as a
/// target for [`remap_to`]; null on failure. Same preconditions as [`map_aligned_at`].
pub fn reserve_aligned_at(size: usize, align: usize, offset: usize) -> *mut u8 {
    let Some(over) = size.checked_add(align) else {
        return ptr::null_mut();
    };
    let base = reserve(over);
    if base.is_null() {
        return base;
    }
    // SAFETY: `base` is the mapping of `over` bytes just made.
    unsafe { trim_to_aligned(base, over, size, align, offset) }
}

/// Grows or shrinks the mapping at `p` from `old` to `new` bytes without moving it
/// (`mremap` without `MREMAP_MAYMOVE`); false when the address space after it is taken or
/// the kernel refuses the memory. Grown memory reads as zero.
///
/// # Safety
/// `[p, p+old)` is one whole mapping of ours (one `map*` call, never partly unmapped or
/// re-advised); when shrinking, nothing in use lies beyond `p + new`.
pub unsafe fn remap_in_place(p: *mut u8, old: usize, new: usize) -> bool {
    // SAFETY: per the contract; without MAYMOVE the kernel only resizes in place.
    let q = unsafe { libc::mremap(p.cast(), old, new, 0) };
    q != libc::MAP_FAILED
}

/// Moves the mapping at `p` (`old` bytes) to `target`, resized to `new` bytes, replacing
/// the reservation there: the page tables move, no byte is copied. False on failure
/// (the kernel refused the grown size); the old mapping is then unchanged and the
/// reservation is released.
///
/// # Safety
/// As for [`remap_in_place`]; `[target, target+new)` is a reservation of ours from
/// [`reserve_aligned_at`] that holds nothing.
pub unsafe fn remap_to(p: *mut u8, old: usize, new: usize, target: *mut u8) -> bool {
    // SAFETY: per the contract: the target range is ours and unused, so replacing it is
    // sound; the source range is a whole mapping of ours.
    let q = unsafe {
        libc::mremap(
            p.cast(),
            old,
            new,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            target,
        )
    };
    if q != libc::MAP_FAILED {
        return true;
    }
    // The kernel unmaps the target before it checks the accounting, so the reservation
    // may be gone, and another thread may map into the hole meanwhile. Take the range back
    // only if it is entirely free (MAP_FIXED_NOREPLACE), and release what we took; if it
    // is still (partly) mapped, leave it: at worst a reservation of address space leaks.
    let probe = raw_map(
        target,
        new,
        libc::PROT_NONE,
        libc::MAP_NORESERVE | libc::MAP_FIXED_NOREPLACE,
    );
    if !probe.is_null() {
        // SAFETY: `probe` is a mapping just made for us (at `target`, or elsewhere on
        // kernels that ignore MAP_FIXED_NOREPLACE); it holds nothing.
        unsafe { unmap(probe, new) };
    }
    false
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

/// 0: not read yet, 1: the kernel gives huge pages only where asked (or never), 2: it
/// gives them to every anonymous mapping (`[always]`).
static THP_ALWAYS: AtomicUsize = AtomicUsize::new(0);

/// Does the kernel back every anonymous mapping with transparent huge pages unless told
/// not to (`/sys/kernel/mm/transparent_hugepage/enabled` reads `[always]`)? Read once,
/// without allocating.
pub fn thp_always() -> bool {
    let known = THP_ALWAYS.load(Ordering::Relaxed);
    if known != 0 {
        return known == 2;
    }
    let mut buf = [0u8; 128];
    let path = c"/sys/kernel/mm/transparent_hugepage/enabled";
    // SAFETY: a NUL-terminated path; open, read and close touch only `buf`.
    let n = unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            0
        } else {
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            libc::close(fd);
            n.max(0) as usize
        }
    };
    let always = thp_setting_is_always(&buf[..n]);
    THP_ALWAYS.store(if always { 2 } else { 1 }, Ordering::Relaxed);
    always
}

/// Is `always` the selected (bracketed) value of a THP `enabled` setting?
fn thp_setting_is_always(setting: &[u8]) -> bool {
    setting.windows(8).any(|w| w == b"[always]")
}

/// Withdraws [`advise_huge_pages`] for `[p, p+size)`.
///
/// # Safety
/// The range must be page-aligned and inside one of our mappings.
pub unsafe fn advise_no_huge_pages(p: *mut u8, size: usize) -> bool {
    // SAFETY: the caller guarantees the range is ours; the advice changes no contents.
    unsafe { libc::madvise(p.cast(), size, libc::MADV_NOHUGEPAGE) == 0 }
}

/// How many of the OS pages of `[p, p+size)` are resident (`mincore`); None if the kernel
/// refuses. Costs one call per 4 MiB (of 4 KiB pages).
///
/// # Safety
/// The range must be page-aligned and inside one of our mappings.
pub unsafe fn resident_pages(p: *mut u8, size: usize) -> Option<usize> {
    let ps = page_size();
    let mut vec = [0u8; 1024];
    let mut resident = 0;
    let mut off = 0;
    while off < size {
        let len = (size - off).min(vec.len() * ps);
        // SAFETY: per the contract the range is mapped and page-aligned; `vec` has room
        // for one byte per page of `len`.
        let rc = unsafe { libc::mincore(p.add(off).cast(), len, vec.as_mut_ptr()) };
        if rc != 0 {
            return None;
        }
        resident += vec[..len.div_ceil(ps)].iter().filter(|&&b| b & 1 != 0).count();
        off += len;
    }
    Some(resident)
}

/// Sets the calling thread's `errno` (for the C entry points that report exhaustion).
pub fn set_errno(code: i32) {
    // SAFETY: __errno_location returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() = code };
}

/// Milliseconds on the monotonic clock (vDSO call, no syscall on Linux). The coarse clock:
/// it reads the time of the last timer tick (1-4 ms old) instead of the cycle counter,
/// 6 ns against 22 ns here, and every use is a purge delay or an idle time of 100 ms or
/// more. `medium-live` read the clock twice per replacement (2.4% of its samples).
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-parameter; CLOCK_MONOTONIC_COARSE exists on Linux
    // since 2.6.32 (and CLOCK_MONOTONIC, asked if it ever fails).
    unsafe {
        if libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) != 0 {
            libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
        }
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
    fn thp_setting_is_parsed() {
        assert!(thp_setting_is_always(b"[always] madvise never\n"));
        assert!(!thp_setting_is_always(b"always [madvise] never\n"));
        assert!(!thp_setting_is_always(b"always madvise [never]\n"));
        assert!(!thp_setting_is_always(b""));
        // Whatever this machine says, asking twice gives the same answer.
        assert_eq!(thp_always(), thp_always());
    }

    #[test]
    fn remap_grows_and_moves_without_copying() {
        let ps = page_size();
        let p = map(4 * ps);
        assert!(!p.is_null());
        // SAFETY: p is a fresh 4-page mapping; every access stays inside what is mapped.
        unsafe {
            *p = 42;
            let target = reserve_aligned_at(64 * ps, 16 * ps, 0);
            assert!(!target.is_null() && target as usize % (16 * ps) == 0);
            assert!(remap_to(p, 4 * ps, 64 * ps, target));
            assert_eq!(*target, 42, "the page moved with its content");
            assert_eq!(*target.add(64 * ps - 1), 0, "grown memory reads as zero");
            assert_eq!(resident_pages(target, 64 * ps), Some(2));
            assert!(remap_in_place(target, 64 * ps, 8 * ps));
            unmap(target, 8 * ps);
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
