//! The registry of the checker's blocks: how an address the program passes is recognised
//! as a block, and how every block is enumerated.
//!
//! Recognition reads the header at a fixed offset before the address (`HEADER_AT` bytes;
//! see `block.rs`) and checks its magic word, which encodes the block's own address: no
//! table lookup, and no cache miss beyond the header, which sits next to bytes the
//! program just used. Reading there must be safe for any address the engine routes to the
//! checker (any address of engine memory, including wild ones), and two things could make
//! it fault: the address could lie in a protected page of a guard-page block (its guard
//! page, or its data pages while it is in quarantine), or the header's page could be
//! outside the engine's memory. The first is answered by a counting filter over pages
//! (`guard::maybe_guarded`, exact lookups in the guard table only on a hit), the second
//! by the backing (`Backing::readable_from`: the engine's page of blocks starts at or
//! before the header) or, failing that, the kernel (`process_vm_readv`: an error, not a
//! fault, for an unreadable range) when the header lies on the page before the address. A
//! guard-page block keeps its header on a page of its own and is found through the guard
//! table instead.
//!
//! Enumeration (the leak scan's list of live blocks, the checks at exit, the block that
//! contains an interior pointer) uses tables of (user address, header address) slots,
//! eight of them, each behind its lock, a thread adding to the one its number picks (one
//! table made every allocation and free of a program's threads wait for one lock). A
//! block's header holds its slot (index and table), and freed slots are reused last in,
//! first out, so a table stays as long as the most blocks it held at once and its hot end
//! stays in cache.

use crate::block::{Header, FREEING, GUARDED, HEADER, LEFT_CANARY, LIVE};
use crate::checker::backing;
use crate::guard;
use crate::threads;
use memward_profile::shared::{Guard, SpinLock};
use std::sync::atomic::{AtomicI32, Ordering};

/// How far before the user's bytes an ordinary block's header starts.
pub const HEADER_AT: usize = HEADER + LEFT_CANARY;

struct Slots {
    entries: Vec<(usize, usize)>,
    free: Vec<u32>,
}

/// Tables; a slot number is `index * TABLES + table`.
const TABLES: usize = 8;

static SLOTS: [SpinLock<Slots>; TABLES] = [const {
    SpinLock::new(Slots {
        entries: Vec::new(),
        free: Vec::new(),
    })
}; TABLES];

/// Records the block at `user` with header `header`; sets the header's slot.
pub fn insert(user: usize, header: &mut Header) {
    let h = header as *mut Header as usize;
    let table = threads::shard(TABLES);
    let mut s = SLOTS[table].lock();
    let index = match s.free.pop() {
        Some(index) => {
            s.entries[index as usize] = (user, h);
            index
        }
        None => {
            s.entries.push((user, h));
            (s.entries.len() - 1) as u32
        }
    };
    drop(s);
    header.slot = index * TABLES as u32 + table as u32;
}

/// Forgets the block with header `header`.
pub fn remove(header: &Header) {
    let (index, table) = (header.slot / TABLES as u32, header.slot as usize % TABLES);
    let mut s = SLOTS[table].lock();
    if let Some(e) = s.entries.get_mut(index as usize) {
        *e = (0, 0);
        s.free.push(index);
    }
}

fn page_of(addr: usize) -> usize {
    addr & !(guard::page() - 1)
}

/// The header of the checker's block at exactly `user`, if it is one (live, being freed
/// or in quarantine); `None` for any other address of engine memory.
pub fn lookup(user: usize) -> Option<&'static Header> {
    if user < guard::page() {
        return None;
    }
    let at = user - HEADER_AT;
    if guard::maybe_guarded(user) || guard::maybe_guarded(at) {
        if let Some((u, h)) = guard::find(user) {
            // SAFETY: guarded blocks' headers are on their own readable page until the
            // block is released.
            return (u == user).then(|| unsafe { &*(h as *const Header) });
        }
        if guard::find(at).is_some() {
            // The header's place is in a guarded block: `user` is no block's start.
            return None;
        }
    }
    // An ordinary block's user address is 16-aligned, so its header 8-aligned.
    if at % 8 != 0
        || (page_of(at) != page_of(user)
            && at < (backing().readable_from)(user as *const u8)
            && !readable(at))
    {
        return None;
    }
    // The engine routes only its own addresses here, and the header's page is the
    // user's, or readable by the backing's account or the kernel's; the filter above
    // ruled out pages the checker protected.
    // SAFETY: so `at` is mapped and readable; a `Header` is plain data, and the magic
    // word tells a header from other bytes.
    let h = unsafe { &*(at as *const Header) };
    (h.valid_for(user) && h.flags() & GUARDED == 0).then_some(h)
}

/// Whether the header-sized range at `at` can be read (for a header on the page before
/// the address the program passed: that page may be unmapped, or a reservation the
/// engine keeps inaccessible). Asks the kernel, which reports an unreadable range as an
/// error instead of a fault; where the call is refused (seccomp), falls back to the
/// backing's `owns`. About 1% of valid blocks have their header on the previous page.
/// This process's id, cached: `getpid` is a system call in glibc, and `readable` needs it
/// for about 1% of frees. A forked child forgets the parent's (`forget_pid`).
fn own_pid() -> libc::pid_t {
    let cached = PID.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    PID.store(pid, Ordering::Relaxed);
    pid
}

static PID: AtomicI32 = AtomicI32::new(0);

/// In a forked child: the cached process id was the parent's.
pub fn forget_pid() {
    PID.store(0, Ordering::Relaxed);
}

fn readable(at: usize) -> bool {
    let mut buf = [0u8; HEADER];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: HEADER,
    };
    let remote = libc::iovec {
        iov_base: at as *mut libc::c_void,
        iov_len: HEADER,
    };
    // SAFETY: reads this process's memory into `buf` through the kernel, which checks
    // the remote range; the local one is `buf`.
    let n = unsafe { libc::process_vm_readv(own_pid(), &local, 1, &remote, 1, 0) };
    if n == HEADER as isize {
        return true;
    }
    // SAFETY: reads the calling thread's errno.
    let errno = unsafe { *libc::__errno_location() };
    if errno == libc::EFAULT {
        return false;
    }
    (backing().owns)(at as *const u8)
}

/// The block whose bytes (or red zones) contain `addr`: its user address and header.
/// Scans every block; for error reports only. `extent(user, header)` gives the range of
/// addresses that count as the block's.
pub fn containing(
    addr: usize,
    extent: impl Fn(usize, &Header) -> (usize, usize),
) -> Option<(usize, usize)> {
    let mut best: Option<(usize, usize)> = None;
    for (user, h) in all_blocks() {
        // SAFETY: registered headers stay readable until their block is released.
        let header = unsafe { &*(h as *const Header) };
        let (lo, hi) = extent(user, header);
        if addr >= lo && addr < hi {
            // Prefer the block whose user bytes hold `addr` over a neighbour's red zone.
            let inside = addr >= user && addr < user + header.len().max(1);
            if inside || best.is_none() {
                best = Some((user, h));
            }
        }
    }
    best
}

/// The live blocks as the leak scan lists them: a view of the slot tables whose locks it
/// holds, so no block can be added or freed while the scan runs (threads that try wait).
pub struct LockedLiveBlocks {
    tables: [Guard<'static, Slots>; TABLES],
}

/// Locks the slot tables for a leak scan (released when the view is dropped).
pub fn lock_live_blocks() -> LockedLiveBlocks {
    LockedLiveBlocks {
        tables: core::array::from_fn(|i| SLOTS[i].lock()),
    }
}

impl crate::leaks::LiveBlocks for LockedLiveBlocks {
    fn estimate(&self) -> usize {
        self.tables
            .iter()
            .map(|t| t.entries.len() - t.free.len())
            .sum()
    }

    fn for_each(&self, f: &mut dyn FnMut(crate::leaks::LiveBlock)) {
        for &(user, h) in self.tables.iter().flat_map(|t| t.entries.iter()) {
            if user == 0 {
                continue;
            }
            // SAFETY: registered headers stay readable until their block is released,
            // which needs this lock.
            let header = unsafe { &*(h as *const Header) };
            // A block a stopped thread is freeing or reallocating (unless guarded: its
            // pages may be protected already) is listed too: a reallocation copies from
            // it, and the pointers it has not copied yet must still be found.
            let state = header.state();
            let readable = state == LIVE || (state == FREEING && header.flags() & GUARDED == 0);
            if header.valid_for(user) && readable {
                f(crate::leaks::LiveBlock {
                    start: user,
                    size: header.len(),
                    stack: u64::from(header.alloc_stack),
                });
            }
        }
    }
}

/// Every registered block (user address, header address).
pub fn all_blocks() -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for table in &SLOTS {
        let s = table.lock();
        out.extend(s.entries.iter().copied().filter(|e| e.0 != 0));
    }
    out
}

/// Takes the locks and keeps them (before `fork`).
pub fn lock_all() {
    for table in &SLOTS {
        table.lock_forever();
    }
}

/// Releases the locks `lock_all` took (after `fork`, in parent and child).
///
/// # Safety
/// The caller took them with `lock_all` on this thread and holds no guard.
pub unsafe fn unlock_all() {
    for table in SLOTS.iter().rev() {
        // SAFETY: per the contract.
        unsafe { table.force_unlock() };
    }
}
