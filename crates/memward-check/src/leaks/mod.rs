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
//!    the address space, scan the memory roots (`roots`) and the registers, mark
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
use memory::{current_registers, read_file, ReadError, Registers, RootReader};
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

/// Finds the blocks of `blocks` that nothing reachable points to. `owns` says whether an
/// address is memory of the backing allocator (the heap and the checker's tables), which
/// is never a root.
///
/// Stops every other thread of the process while it scans (see the module docs); the
/// calling thread's roots are its registers and the frames of its callers.
///
/// # Safety
/// Every block is memory the checker handed out and still owns, readable for its size;
/// the set stays the same until the call returns (no checked allocation or free
/// completes meanwhile); `owns` is callable while other threads are stopped (it takes no
/// lock).
///
/// ```
/// use memward_check::leaks::{find_leaks, LiveBlock};
/// let kept: &'static mut [u64; 8] = Box::leak(Box::new([0; 8]));
/// let blocks = vec![LiveBlock { start: kept.as_ptr() as usize, size: 64, stack: 3 }];
/// // A real caller passes its backing's `owns`; nothing is owned here, so the whole
/// // C heap is root memory too.
/// let owns = |_: usize| false;
/// // SAFETY: the block is a leaked Box, readable, and nobody frees it meanwhile.
/// let leaks = unsafe { find_leaks(blocks, &owns) }.unwrap();
/// assert!(leaks.is_empty(), "`kept` is on this stack");
/// ```
#[inline(never)]
pub unsafe fn find_leaks(
    blocks: Vec<LiveBlock>,
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
    blocks: Vec<LiveBlock>,
    owns: &dyn Fn(usize) -> bool,
) -> Result<Leaks, ScanError> {
    let index = BlockIndex::new(blocks);
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
    let mut capacity = 64;
    memory::list_threads(&mut task_buf, |_| capacity += 2)
        .map_err(|_| ScanError::Threads(libc::EIO))?;
    loop {
        let mut marker = Marker::new(&index);
        let mut floors: Vec<usize> = Vec::with_capacity(capacity + 1);
        let mut unsuspended: Vec<i32> = Vec::with_capacity(capacity);
        let world = match World::stop(capacity, &mut task_buf) {
            Ok(world) => world,
            Err(StopError::TooManyThreads) => {
                capacity *= 2;
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
        floors.push(here.sp());
        for t in world.stopped() {
            floors.push(t.sp().saturating_sub(roots::RED_ZONE));
        }
        let root_bytes = roots::scan_memory_roots(&maps, &floors, owns, &mut reader, &mut marker);
        here.0.iter().for_each(|&w| marker.visit(w));
        for t in world.stopped() {
            t.words().for_each(|w| marker.visit(w));
        }
        // A stack inside a block (a coroutine's): that block is a root.
        for &floor in &floors {
            if owns(floor) {
                marker.visit(floor);
                marker.visit(floor.saturating_add(roots::RED_ZONE));
            }
        }
        // SAFETY: the caller's guarantee: the blocks are readable and fixed.
        unsafe { marker.propagate() };
        unsuspended.extend(world.unresponsive());
        drop(world);
        let reached = marker.into_reached();
        // SAFETY: as above.
        let kinds = unsafe { mark::classify(&index, &reached) };
        return Ok(Leaks {
            blocks: index.into_blocks(),
            kinds,
            unsuspended,
            root_bytes,
        });
    }
}
