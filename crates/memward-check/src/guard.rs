//! Guard-page blocks: a block placed against an inaccessible page, so that a read or write
//! past its end faults at the instruction that does it (Electric Fence, DUMA, GWP-ASan),
//! and protected whole while it waits in quarantine, so that a read or write after free
//! faults too. The SIGSEGV handler (`signal.rs`) asks [`find`] whether a fault address is
//! one of these blocks.
//!
//! Layout, inside one page-aligned backing block (the engine's memory, so every pointer
//! the program holds is still the engine's):
//!
//! ```text
//! base         data_start                        user        data_end       guard_end
//! | header page | slack (canary) ............... | user bytes | (≤15 canary) | guard page |
//! ```
//!
//! The header keeps a page of its own, so a freed block's data pages can be protected
//! while its header stays readable (double frees of it are still recognised). The user's
//! bytes end against the guard page, up to the block's alignment, at least 16 bytes as
//! glibc's `malloc` guarantees for every block. (GWP-ASan aligns a small block only to the
//! smallest power of two at least its size; `memalign(16, 8)` and `posix_memalign` with
//! 16 then got an 8-byte-aligned block, and the check cannot tell those calls from
//! `malloc`.) So a block whose size is a multiple of 16 ends exactly at the guard page,
//! and otherwise up to 15 bytes of slack lie between: reads there are not caught, writes
//! there are (canaries, checked at free). Explicit
//! larger alignments are honoured the same way, up to a page. Alignments above a page are
//! guarded only where the backing places such blocks itself (`AllocAt`, 2 MiB and up on
//! the engine): the backing block starts one page (the header page) before an aligned
//! address, the user's bytes start there, and the guard page follows the page their end
//! falls in, so up to a page less 16 bytes of slack lie between (caught for writes, by the
//! canaries). Alignments between a page and the backing's `min_align` are not guarded
//! (ordinary blocks with red zones).
//!
//! `MEMWARD_CHECK_GUARD=all` guards every block, `sample` one allocation in
//! `MEMWARD_CHECK_GUARD_RATE` (1024) on average, chosen by a per-thread countdown drawn
//! uniformly from 1 to twice the rate. Each guarded block costs a page of header, its data
//! pages and the guard page, and an `mprotect` at allocation, free and release; each
//! protected range may split a mapping in the kernel, which bounds how many can exist
//! (`vm.max_map_count`, 65530 by default): at most 8192 guarded blocks exist at once in
//! `sample` mode and 30000 in `all` mode, and when `mprotect` fails (the kernel is out of
//! mappings) the block falls back to the ordinary layout.

use crate::block::{Header, Kind, ARMED, CANARY, FILL_NEW, GUARDED};
use crate::checker::{backing, options};
use crate::options::GuardMode;
use crate::registry;
use memward_profile::shared::SpinLock;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};

static PAGE: AtomicUsize = AtomicUsize::new(4096);
/// data_start -> (guard_end, user).
static GUARDS: SpinLock<BTreeMap<usize, (usize, usize)>> = SpinLock::new(BTreeMap::new());
static COUNT: AtomicUsize = AtomicUsize::new(0);

/// The counting filter over pages: how many guarded blocks' pages map to each entry.
/// Zero means no page of any guarded block maps there.
const FILTER_BITS: u32 = 18;
static FILTER: [AtomicU16; 1 << FILTER_BITS] = [const { AtomicU16::new(0) }; 1 << FILTER_BITS];

/// A page's entry: its page number modulo the filter's size, not a hash of it. Every
/// free and realloc asks the filter (twice), and neighbouring pages share a cache line
/// (32 pages, 128 KiB of address space, per line), so a heap of a few dozen MiB keeps its
/// entries in a few KiB of cache; with hashed entries each lookup was a cache miss in a
/// 512 KiB table, and sampled guards cost sqlite3 0.15x even with 1 block in 4,096
/// guarded. Pages 1 GiB apart share an entry: a false "maybe", settled by the table.
fn filter_slot(addr: usize) -> usize {
    // A shift by the page size's log2, not a division (two per free).
    (addr >> page().trailing_zeros()) & ((1 << FILTER_BITS) - 1)
}

/// Adds (`+1`) or removes (`-1`) the pages of `[start, end)` in the filter.
fn filter_pages(start: usize, end: usize, add: bool) {
    let page = page();
    let mut a = start;
    while a < end {
        let slot = &FILTER[filter_slot(a)];
        if add {
            slot.fetch_add(1, Ordering::AcqRel);
        } else {
            slot.fetch_sub(1, Ordering::AcqRel);
        }
        a += page;
    }
}

/// Whether `addr` may lie in a page of a guarded block (false: it certainly does not).
#[inline]
pub fn maybe_guarded(addr: usize) -> bool {
    COUNT.load(Ordering::Relaxed) != 0 && FILTER[filter_slot(addr)].load(Ordering::Acquire) != 0
}
static WARNED: AtomicBool = AtomicBool::new(false);

/// A thread's countdown to its next guarded allocation in `sample` mode, and its
/// generator's state. Kept in the thread's checker state (`threads.rs`), which a capture
/// reads anyway: a thread-local of its own cost a `__tls_get_addr` call per allocation.
pub struct Countdown {
    left: u32,
    rng: u64,
}

impl Countdown {
    /// A countdown that draws its first value at its first use.
    pub const fn new() -> Countdown {
        Countdown { left: 0, rng: 0 }
    }

    /// Whether this thread's next allocation is one the guard mode picks: every one in
    /// `all` mode, one in `MEMWARD_CHECK_GUARD_RATE` on average in `sample` mode.
    #[inline(always)]
    pub fn pick(&mut self) -> bool {
        let o = options();
        match o.guard {
            GuardMode::None => false,
            GuardMode::All => true,
            GuardMode::Sample => {
                let rate = o.guard_rate as u64;
                let draw = |rng: &mut u64| {
                    *rng ^= *rng << 13;
                    *rng ^= *rng >> 7;
                    *rng ^= *rng << 17;
                    1 + (*rng % (2 * rate)) as u32
                };
                if self.rng == 0 {
                    // SAFETY: gettid has no preconditions.
                    let tid = unsafe { libc::gettid() } as u64;
                    self.rng = (tid | 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    self.left = draw(&mut self.rng);
                }
                self.left -= 1;
                if self.left != 0 {
                    return false;
                }
                self.left = draw(&mut self.rng);
                true
            }
        }
    }
}

/// Reads the page size (at configuration).
pub fn init() {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        PAGE.store(n as usize, Ordering::Relaxed);
    }
}

/// The page size.
pub fn page() -> usize {
    PAGE.load(Ordering::Relaxed)
}

fn limit(mode: GuardMode) -> usize {
    match mode {
        GuardMode::All => 30_000,
        _ => 8192,
    }
}

/// Whether a block of `size` bytes aligned to `align`, which the thread's countdown
/// `picked` ([`Countdown::pick`]), is guarded: if its size and alignment allow, and
/// fewer than the mode's limit of guarded blocks exist.
pub fn wanted(size: usize, align: usize, picked: bool) -> bool {
    picked
        && size > 0
        && (align <= page() || placed_by_backing(align))
        && size <= (1 << 40)
        && COUNT.load(Ordering::Relaxed) < limit(options().guard)
}

/// Whether the backing places blocks aligned to `align` one page before an aligned
/// address (`AllocAt`).
fn placed_by_backing(align: usize) -> bool {
    backing()
        .alloc_at
        .as_ref()
        .is_some_and(|at| align >= at.min_align)
}

/// The granule a guarded block's size is rounded to, so that its end (or the guard page
/// after it) keeps the block aligned: its alignment, or the page for larger alignments
/// (their user's bytes start on the data's first page).
fn granule(align: usize) -> usize {
    align.min(page())
}

/// The alignment a guarded block gets for a requested `align`: the request, at least 16.
pub fn alignment(align: usize) -> usize {
    align.max(16)
}

fn protect(addr: usize, len: usize, prot: i32) -> bool {
    // SAFETY: `[addr, addr + len)` is page-aligned memory inside a backing block the
    // checker owns (the caller's contract); changing its protection touches nothing else.
    unsafe { libc::mprotect(addr as *mut libc::c_void, len, prot) == 0 }
}

/// Allocates a guarded block; `None` if the backing or the kernel refuse (the caller
/// falls back to an ordinary block).
///
/// # Safety
/// Called inside an entry point (the backing serves the checker's own memory).
pub unsafe fn alloc(
    size: usize,
    align: usize,
    zeroed: bool,
    kind: Kind,
    stack: u32,
    tid: u16,
) -> Option<usize> {
    let page = page();
    let a = alignment(align);
    let g = granule(a);
    let rsize = size.checked_add(g - 1)? & !(g - 1);
    let data = rsize.checked_add(page - 1)? & !(page - 1);
    let total = data.checked_add(2 * page)?;
    let base = match backing().alloc_at.as_ref() {
        // SAFETY: the backing's placement with a power-of-two alignment of at least its
        // `min_align` (`wanted` checked) and the page as the offset: the data start one
        // page in is aligned to `a`, and the user's bytes start there (rsize == data).
        Some(at) if a > page => unsafe { (at.alloc)(total, a, page) },
        // SAFETY: the backing's allocation function with a power-of-two alignment.
        _ => unsafe { (backing().alloc)(total, page) },
    } as usize;
    if base == 0 {
        return None;
    }
    let data_start = base + page;
    let data_end = data_start + data;
    let user = data_end - rsize;
    if !protect(data_end, page, libc::PROT_NONE) {
        // SAFETY: `base` came from the backing's `alloc` and is unprotected.
        unsafe { (backing().free)(base as *mut u8) };
        if !WARNED.swap(true, Ordering::Relaxed) {
            crate::report::warn(
                "mprotect failed (too many mappings? see vm.max_map_count); \
                 blocks that cannot be guarded get red zones only",
            );
        }
        return None;
    }
    let header = Header::new(user, size, a, kind, stack, tid);
    header.flags.store(GUARDED | ARMED, Ordering::Release);
    // SAFETY: `[base, data_end)` is writable memory of the backing block just allocated
    // (only the guard page after it is protected); the header fits in the first page.
    unsafe {
        core::ptr::write(base as *mut Header, header);
        core::ptr::write_bytes(data_start as *mut u8, CANARY, user - data_start);
        if zeroed {
            core::ptr::write_bytes(user as *mut u8, 0, size);
        } else {
            let fill = size.min(options().malloc_fill_max);
            core::ptr::write_bytes(user as *mut u8, FILL_NEW, fill);
        }
        core::ptr::write_bytes((user + size) as *mut u8, CANARY, data_end - user - size);
    }
    filter_pages(data_start, data_end + page, true);
    GUARDS.lock().insert(data_start, (data_end + page, user));
    COUNT.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the header just written at `base`, not otherwise referenced yet.
    registry::insert(user, unsafe { &mut *(base as *mut Header) });
    Some(user)
}

/// The guarded block's regions: (data_start, data_end, guard_end).
pub fn regions(user: usize, header: &Header) -> (usize, usize, usize) {
    let page = page();
    let g = granule(1usize << header.align_log2);
    let rsize = (header.len() + g - 1) & !(g - 1);
    let data_end = user + rsize;
    let data_start = data_end - ((rsize + page - 1) & !(page - 1));
    (data_start, data_end, data_end + page)
}

/// Where a guarded block's backing block starts (its header page).
pub fn base(user: usize, header: &Header) -> usize {
    regions(user, header).0 - page()
}

/// Protects a freed guarded block's data pages; false if the kernel refused (then the
/// caller poisons it instead, and the block is no longer armed).
pub fn protect_freed(user: usize, header: &Header) -> bool {
    let (data_start, data_end, _) = regions(user, header);
    if protect(data_start, data_end - data_start, libc::PROT_NONE) {
        return true;
    }
    disarm(user, header);
    false
}

/// Lifts every protection of a guarded block and forgets it as one (after a fault the
/// user chose to continue from, or before release).
pub fn disarm(user: usize, header: &Header) {
    let (data_start, _, guard_end) = regions(user, header);
    protect(
        data_start,
        guard_end - data_start,
        libc::PROT_READ | libc::PROT_WRITE,
    );
    header.flags.fetch_and(!ARMED, Ordering::AcqRel);
    if GUARDS.lock().remove(&data_start).is_some() {
        filter_pages(data_start, guard_end, false);
        COUNT.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The guarded block whose pages contain `addr`: (user, header address).
pub fn find(addr: usize) -> Option<(usize, usize)> {
    let guards = GUARDS.lock();
    let (&start, &(end, user)) = guards.range(..=addr).next_back()?;
    if addr < start || addr >= end {
        return None;
    }
    // The header is at the backing block's start, the page before the data.
    Some((user, start - page()))
}

/// Takes the lock before `fork`.
pub fn lock() {
    GUARDS.lock_forever();
}

/// Releases the lock `lock` took.
///
/// # Safety
/// The caller took it with `lock` on this thread and holds no guard.
pub unsafe fn unlock() {
    // SAFETY: per the contract.
    unsafe { GUARDS.force_unlock() };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_block_keeps_mallocs_sixteen_bytes() {
        assert_eq!(alignment(16), 16);
        assert_eq!(alignment(8), 16);
        assert_eq!(alignment(1), 16);
        assert_eq!(alignment(64), 64);
        assert_eq!(alignment(1 << 21), 1 << 21);
    }

    #[test]
    fn sizes_round_to_the_alignment_up_to_a_page() {
        assert_eq!(granule(16), 16);
        assert_eq!(granule(4096), 4096);
        assert_eq!(granule(4 << 20), page());
    }
}
