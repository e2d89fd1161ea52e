//! Leak detection at exit by reachability, as LeakSanitizer does it.
//!
//! A block is leaked when no pointer to it, or into it, is left where the program can
//! still read one: in a root (memory outside the heap: globals, stacks, thread-local
//! storage, the registers of each thread) or in a block that is itself reachable. The
//! scan is conservative: every aligned word of the roots and of reached blocks is taken
//! for a pointer if it points into a live block. It runs in three steps:
//!
//! 1. **Prepare** (allocating, other threads running): sort the live blocks, reserve the
//!    marking state, the mark stack, the buffers for `/proc/self/maps` and the task list,
//!    and one slot per thread.
//! 2. **Scan** (nothing allocated): stop every other thread (`threads`), read the map of
//!    the address space, find the stacks of threads that have exited (`dead_stacks`),
//!    scan the memory roots (`roots`) and the registers, mark
//!    transitively (`mark`), let the threads go. Allocating here could wait forever on a
//!    lock a stopped thread holds.
//! 3. **Classify and report** (allocating again): unreached blocks are direct or indirect
//!    leaks (`mark::classify`), grouped by allocation stack (`report`).
//!
//! The caller (the checker, from its exit handler in its unchecked section) must keep the
//! set of live blocks fixed from the moment it lists them until the scan returns: no
//! checked allocation or free may complete meanwhile (the checker holds its lock), or a
//! block freed after listing would be reported, and one allocated after it would hide
//! what it points to. The design, with its limits and cost, is in
//! `docs/memward-check-leaks.md`.

mod blocks;
mod dead_stacks;
mod mark;
mod memory;
mod report;
mod roots;
mod threads;

pub use blocks::LiveBlock;
pub use mark::LeakKind;
pub use report::{write_report, LeakRecord};

use blocks::BlockIndex;
use mark::Marker;
use memory::{current_registers, read_file, thread_pointer, ReadError, Registers, RootReader};
use std::fmt;
use threads::{StopError, World};

/// The result of a scan.
#[derive(Debug)]
pub struct Leaks {
    blocks: Vec<LiveBlock>,
    kinds: Vec<Option<LeakKind>>,
    unsuspended: Vec<i32>,
    root_bytes: usize,
}

impl Leaks {
    /// The leaked blocks with their kind, by address.
    pub fn leaked(&self) -> impl Iterator<Item = (LiveBlock, LeakKind)> + '_ {
        self.blocks
            .iter()
            .zip(&self.kinds)
            .filter_map(|(b, k)| Some((*b, (*k)?)))
    }

    /// Whether nothing leaked.
    pub fn is_empty(&self) -> bool {
        self.leaked().next().is_none()
    }

    /// The leaks grouped by allocation stack and kind, in report order: direct before
    /// indirect, then by bytes, largest first.
    pub fn records(&self) -> Vec<LeakRecord> {
        report::group(self.leaked())
    }

    /// Threads that did not stop for the scan (their registers were not scanned).
    pub fn unsuspended_threads(&self) -> &[i32] {
        &self.unsuspended
    }

    /// Bytes of root memory scanned (stacks, data, bss, TLS, mapped memory).
    pub fn root_bytes(&self) -> usize {
        self.root_bytes
    }

    /// The report ([`write_report`]) for these leaks; empty when nothing leaked.
    pub fn report(
        &self,
        stack_of: &mut dyn FnMut(u64) -> Vec<u64>,
        sym: &mut memward_symbolize::Symbolizer,
    ) -> String {
        write_report(&self.records(), &self.unsuspended, stack_of, sym)
    }
}

/// Why no scan was made (then nothing may be reported: a scan that missed roots would
/// report reachable blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanError {
    /// Another scan is running in this process.
    Busy,
    /// `/proc/self/task` could not be read or the stop signal installed (the errno).
    Threads(i32),
    /// `/proc/self/maps` could not be read (the errno).
    Maps(i32),
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = |e: &i32| std::io::Error::from_raw_os_error(*e);
        match self {
            ScanError::Busy => write!(f, "another leak scan is running"),
            ScanError::Threads(e) => write!(f, "cannot stop the other threads: {}", why(e)),
            ScanError::Maps(e) => write!(f, "cannot read /proc/self/maps: {}", why(e)),
        }
    }
}

impl std::error::Error for ScanError {}

/// Where the scan takes the live blocks from: the checker's block table.
///
/// ```
/// use memward_check::leaks::{LiveBlock, LiveBlocks};
/// let blocks = vec![LiveBlock { start: 0x1000, size: 16, stack: 1 }];
/// let mut n = 0;
/// blocks.for_each(&mut |_| n += 1);
/// assert_eq!((blocks.estimate(), n), (1, 1));
/// ```
pub trait LiveBlocks {
    /// About how many blocks there are. Asked before the other threads stop; the scan
    /// reserves room for twice as many, and starts over with more room if
    /// [`LiveBlocks::for_each`] gives more.
    fn estimate(&self) -> usize;

    /// Calls `f` with every live block (not freed, not in quarantine). Runs while every
    /// other thread is stopped, so that no block can change meanwhile: it must not
    /// allocate, nor wait for a lock that another thread may hold.
    fn for_each(&self, f: &mut dyn FnMut(LiveBlock));
}

impl LiveBlocks for Vec<LiveBlock> {
    fn estimate(&self) -> usize {
        self.len()
    }

    fn for_each(&self, f: &mut dyn FnMut(LiveBlock)) {
        self.iter().for_each(|&b| f(b));
    }
}

/// Remembers the calling thread's stack, so that once the thread has exited a scan reads
/// only its thread descriptor there, not its dead frames: glibc keeps an exited thread's
/// stack mapped (for a join, then for reuse), and a pointer left in a dead frame would
/// keep a leaked block reachable. The checker calls this on each thread's first checked
/// call; a caller of [`find_leaks`] whose threads allocate calls it on each of them.
/// Does nothing on the main thread, whose stack outlives every other thread. Allocates
/// (glibc's `pthread_getattr_np`), once.
///
/// ```
/// std::thread::spawn(memward_check::leaks::remember_thread_stack)
///     .join()
///     .unwrap();
/// ```
pub fn remember_thread_stack() {
    if memory::gettid() == std::process::id() as i32 {
        return;
    }
    if let Some((start, end)) = memward_profile::shared::thread_stack() {
        remember_stack(start, end);
    }
}

/// [`remember_thread_stack`] for a thread whose stack block, from
/// `memward_profile::shared::thread_stack`, is `[start, end)`.
pub(crate) fn remember_stack(start: u64, end: u64) {
    dead_stacks::remember(dead_stacks::ThreadStack {
        start: start as usize,
        end: end as usize,
        tp: thread_pointer(),
    });
}

/// Forgets every remembered thread stack: in a fork child, whose other threads never
/// ran (their stacks are then read whole, as memory of the parent's).
pub(crate) fn forget_thread_stacks() {
    dead_stacks::forget_all();
}

/// Finds the live blocks that nothing reachable points to. `owns` says whether an
/// address is memory of the backing allocator (the heap and the checker's tables), which
/// is never a root.
///
/// Stops every other thread of the process while it lists the blocks and scans (see the
/// module docs); the calling thread's roots are its registers and the frames of its
/// callers. The stacks of threads that have exited ([`remember_thread_stack`]) are not
/// roots. Allocates before and after the stop, through the global allocator and C
/// `malloc`, which the caller routes to the backing (the checker's unchecked section).
///
/// # Safety
/// Every block `blocks` lists is memory the checker handed out and still owns, readable
/// for its size; a thread that was stopped in the middle of an allocation, free or
/// reallocation leaves the listed blocks readable and every pointer the program holds in
/// a listed block or in root memory (a reallocation lists the new block before it frees
/// the old one); `owns` is callable while other threads are stopped (it takes no lock).
///
/// ```
/// use memward_check::leaks::{find_leaks, LiveBlock};
/// let kept: &'static mut [u64; 8] = Box::leak(Box::new([0; 8]));
/// let blocks = vec![LiveBlock { start: kept.as_ptr() as usize, size: 64, stack: 3 }];
/// // A real caller passes its backing's `owns`; nothing is owned here, so the whole
/// // C heap is root memory too.
/// let owns = |_: usize| false;
/// // SAFETY: the block is a leaked Box, readable, and nobody frees it meanwhile.
/// let leaks = unsafe { find_leaks(&blocks, &owns) }.unwrap();
/// assert!(leaks.is_empty(), "`kept` is on this stack");
/// ```
#[inline(never)]
pub unsafe fn find_leaks(
    blocks: &dyn LiveBlocks,
    owns: &dyn Fn(usize) -> bool,
) -> Result<Leaks, ScanError> {
    // This frame's stack pointer: the callers' frames above it are this thread's stack
    // roots; the scan's own frames, below, are not.
    let here = current_registers();
    // SAFETY: forwarded.
    unsafe { scan(here, blocks, owns) }
}

/// # Safety
/// As for [`find_leaks`].
#[inline(never)]
unsafe fn scan(
    here: Registers,
    source: &dyn LiveBlocks,
    owns: &dyn Fn(usize) -> bool,
) -> Result<Leaks, ScanError> {
    let mut reader = RootReader::new();
    let mut maps = Vec::with_capacity(64 << 10);
    loop {
        match read_file(c"/proc/self/maps", &mut maps) {
            Ok(()) => break,
            Err(ReadError::Full) => maps.reserve(maps.capacity()),
            Err(ReadError::Os(e)) => return Err(ScanError::Maps(e)),
        }
    }
    // Room for mappings created before the threads stop.
    maps.reserve(maps.len() + (16 << 10));
    let mut task_buf = Vec::with_capacity(64 << 10);
    let mut threads = 64;
    memory::list_threads(&mut task_buf, |_| threads += 2).map_err(|e| match e {
        ReadError::Os(e) => ScanError::Threads(e),
        ReadError::Full => ScanError::Threads(libc::ENOBUFS),
    })?;
    let mut room = source.estimate().saturating_mul(2).max(1024);
    let mut stacks = Vec::with_capacity(dead_stacks::CAPACITY);
    loop {
        let mut blocks: Vec<LiveBlock> = Vec::with_capacity(room);
        let reached: Vec<bool> = Vec::with_capacity(room);
        let pending: Vec<u32> = Vec::with_capacity(room);
        let starts: Vec<usize> = Vec::with_capacity(room);
        let mut floors: Vec<usize> = Vec::with_capacity(threads + 1 + dead_stacks::CAPACITY);
        let mut live: Vec<usize> = Vec::with_capacity(2 * threads + 2);
        let mut unsuspended: Vec<i32> = Vec::with_capacity(threads);
        let world = match World::stop(threads, &mut task_buf) {
            Ok(world) => world,
            Err(StopError::TooManyThreads) => {
                threads *= 2;
                continue;
            }
            Err(StopError::Busy) => return Err(ScanError::Busy),
            Err(StopError::Os(e)) => return Err(ScanError::Threads(e)),
        };
        // From here until `world` is dropped: no allocation.
        match read_file(c"/proc/self/maps", &mut maps) {
            Ok(()) => {}
            Err(ReadError::Full) => {
                drop(world);
                maps.reserve(maps.capacity());
                continue;
            }
            Err(ReadError::Os(e)) => return Err(ScanError::Maps(e)),
        }
        let mut overflow = false;
        source.for_each(&mut |b| {
            if blocks.len() < blocks.capacity() {
                blocks.push(b);
            } else {
                overflow = true;
            }
        });
        if overflow {
            drop(world);
            room = room.saturating_mul(2);
            continue;
        }
        let index = BlockIndex::with_buffer(blocks, starts);
        let mut marker = Marker::with_buffers(&index, reached, pending);
        floors.push(here.sp());
        for t in world.stopped() {
            floors.push(t.sp().saturating_sub(roots::RED_ZONE));
        }
        let live_floors = floors.len();
        // A thread that did not stop could be running on any stack: then every stack
        // is read as a live one.
        if world.unresponsive().next().is_none() {
            live.extend([here.sp(), thread_pointer()]);
            live.extend(world.stopped().flat_map(|t| [t.sp(), t.tp()]));
            dead_stacks::snapshot(&mut stacks);
            dead_stacks::dead_stack_floors(&maps, &stacks, &live, &mut reader, &mut floors);
        }
        let root_bytes = roots::scan_memory_roots(&maps, &floors, owns, &mut reader, &mut marker);
        here.0.iter().for_each(|&w| marker.visit(w));
        for t in world.stopped() {
            t.words().for_each(|w| marker.visit(w));
        }
        // A stack inside a block (a coroutine's): that block is a root.
        for &floor in &floors[..live_floors] {
            if owns(floor) {
                marker.visit(floor);
                marker.visit(floor.saturating_add(roots::RED_ZONE));
            }
        }
        // SAFETY: the caller's guarantee: the blocks are readable, and no thread runs.
        unsafe { marker.propagate() };
        unsuspended.extend(world.unresponsive());
        drop(world);
        let reached = marker.into_reached();
        // SAFETY: as above; the blocks were live when listed and the caller keeps them.
        let kinds = unsafe { mark::classify(&index, &reached) };
        return Ok(Leaks {
            blocks: index.into_blocks(),
            kinds,
            unsuspended,
            root_bytes,
        });
    }
}
