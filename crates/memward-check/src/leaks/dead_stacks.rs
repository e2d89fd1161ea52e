//! The stacks of threads that have exited, so that their stale frames are not roots.
//!
//! glibc does not unmap a thread's stack when the thread ends: a joined (or detached)
//! thread's stack block goes to a cache of up to 40 MiB for the next `pthread_create`,
//! and a thread not yet joined keeps its block until it is. The block is an ordinary
//! writable mapping, so the root scan (`roots`), which reads every such mapping, would read
//! the dead thread's frames, and a pointer left there to a block the thread leaked would
//! keep it "reachable". LeakSanitizer avoids this by scanning only the stacks its own
//! thread registry lists as running.
//!
//! Here each thread remembers its stack block (`[start, end)` from glibc's descriptor)
//! and its thread pointer (the `fs` base) when it first reaches the checker, in a fixed
//! table of atomics: no lock, no allocation, so the scan reads it while the other threads
//! are stopped, whatever they were doing. No exit hook is needed: at the scan, a block
//! is a live thread's if the stack pointer or the thread pointer of a running thread
//! (every thread is stopped, and tells both) lies in its mapping; a thread that
//! has exited has neither. For a remembered block with no live thread in it the scan
//! reads only from its thread pointer up, which is the thread descriptor (x86-64 keeps
//! static TLS below the thread pointer and the descriptor above): glibc still uses it,
//! and it points to the thread's dynamic TLS vector, a `malloc` block from the loader
//! that must stay reachable. The frames and the dead thread's own TLS, below, are not
//! read: a block reachable only from there is leaked, as LeakSanitizer says too.
//!
//! The table only ever makes the scan read less when all of this holds, and reads as
//! before otherwise: every other thread stopped (one that did not answer could be
//! running on any stack); the mapping is anonymous and still starts where the remembered
//! block did; the word at the thread pointer still holds its own address, as every x86-64 thread
//! control block does (so the memory is still that thread's descriptor, not a later
//! mapping at the same address); and no live thread's stack or thread pointer in the
//! mapping (a cached stack handed to a new thread is that thread's again). When the table
//! is full an older entry is replaced: a forgotten stack is scanned whole, as before.

use super::memory::RootReader;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use memward_symbolize::parse_maps;

/// Stacks remembered at most (32 bytes each).
pub(crate) const CAPACITY: usize = 1024;

const EMPTY: u32 = 0;
const WRITING: u32 = 1;
const FULL: u32 = 2;

struct Entry {
    state: AtomicU32,
    start: AtomicUsize,
    end: AtomicUsize,
    tp: AtomicUsize,
}

static TABLE: [Entry; CAPACITY] = [const {
    Entry {
        state: AtomicU32::new(EMPTY),
        start: AtomicUsize::new(0),
        end: AtomicUsize::new(0),
        tp: AtomicUsize::new(0),
    }
}; CAPACITY];
/// Where the next replacement starts looking.
static VICTIM: AtomicUsize = AtomicUsize::new(0);

/// A remembered thread stack block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ThreadStack {
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// The thread pointer: the thread descriptor's address, inside the block.
    pub(crate) tp: usize,
}

/// Remembers the stack block of a thread (called on that thread, with its thread
/// pointer). A block already remembered (a cached stack reused) is not added twice.
pub(crate) fn remember(s: ThreadStack) {
    if !(s.start < s.tp && s.tp < s.end) {
        return;
    }
    let same = |e: &Entry| {
        e.state.load(Ordering::Acquire) == FULL
            && e.start.load(Ordering::Relaxed) == s.start
            && e.end.load(Ordering::Relaxed) == s.end
            && e.tp.load(Ordering::Relaxed) == s.tp
    };
    if TABLE.iter().any(same) {
        return;
    }
    let claim = |e: &Entry, from: u32| {
        e.state.load(Ordering::Relaxed) == from
            && e.state
                .compare_exchange(from, WRITING, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    };
    let slot = TABLE.iter().find(|e| claim(e, EMPTY)).or_else(|| {
        (0..CAPACITY)
            .map(|_| &TABLE[VICTIM.fetch_add(1, Ordering::Relaxed) % CAPACITY])
            .find(|e| claim(e, FULL))
    });
    if let Some(e) = slot {
        e.start.store(s.start, Ordering::Relaxed);
        e.end.store(s.end, Ordering::Relaxed);
        e.tp.store(s.tp, Ordering::Relaxed);
        e.state.store(FULL, Ordering::Release);
    }
}

/// Forgets every stack (in a fork child: the other threads' records describe threads
/// that the child never had, and an entry a vanished thread was writing stays claimed).
pub(crate) fn forget_all() {
    for e in &TABLE {
        e.state.store(EMPTY, Ordering::Release);
    }
}

/// Copies the remembered stacks into `out` (cleared first; its capacity must be
/// [`CAPACITY`]), sorted by start. No allocation.
pub(crate) fn snapshot(out: &mut Vec<ThreadStack>) {
    out.clear();
    for e in &TABLE {
        if e.state.load(Ordering::Acquire) == FULL && out.len() < out.capacity() {
            out.push(ThreadStack {
                start: e.start.load(Ordering::Relaxed),
                end: e.end.load(Ordering::Relaxed),
                tp: e.tp.load(Ordering::Relaxed),
            });
        }
    }
    out.sort_unstable();
}

/// For each mapping of `maps` that is a remembered stack block (sorted, from
/// [`snapshot`]) of a thread that has exited, pushes the block's thread pointer onto
/// `floors`: the root scan then reads that mapping from there up. `live` holds the stack
/// and thread pointers of every running thread; only call this when every other thread
/// is stopped. No allocation: `floors` must have room for [`CAPACITY`] more.
pub(crate) fn dead_stack_floors(
    maps: &[u8],
    stacks: &[ThreadStack],
    live: &[usize],
    reader: &mut RootReader,
    floors: &mut Vec<usize>,
) {
    for m in parse_maps(maps) {
        let (start, end) = (m.start as usize, m.end as usize);
        // glibc maps stacks anonymous; a file mapping at the same address is not one
        // (and, read directly, could fault past the end of its file).
        if !m.readable() || !m.writable() || m.inode != 0 {
            continue;
        }
        let first = stacks.partition_point(|s| s.start < start);
        let mut lowest: Option<usize> = None;
        for s in stacks[first..].iter().take_while(|s| s.start == start) {
            if s.tp < end && descriptor_intact(s.tp, reader) {
                lowest = Some(lowest.map_or(s.tp, |l| l.min(s.tp)));
            }
        }
        let Some(tp) = lowest else { continue };
        if live.iter().any(|&a| a >= start && a < end) {
            continue;
        }
        if floors.len() < floors.capacity() {
            floors.push(tp);
        }
    }
}

/// Does the word at `tp` still hold `tp`? (The x86-64 thread control block begins with
/// a pointer to itself.) `tp` lies in a readable mapping.
fn descriptor_intact(tp: usize, reader: &mut RootReader) -> bool {
    let mut word = None;
    reader.scan(tp, tp + core::mem::size_of::<usize>(), |w| word = Some(w));
    word == Some(tp)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 4096;

    /// A fake stack block: eight pages between two inaccessible ones (as glibc puts a
    /// guard page below a stack; they keep the kernel from merging the block with a
    /// neighbouring mapping), its "thread descriptor" in page 6 pointing to itself.
    fn fake_block() -> (usize, usize, usize) {
        // SAFETY: a fresh anonymous mapping, left mapped for the test's life; only its
        // own pages are protected and written.
        unsafe {
            let p = libc::mmap(
                core::ptr::null_mut(),
                10 * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            let guard = p as usize;
            assert_eq!(libc::mprotect(p, PAGE, libc::PROT_NONE), 0);
            let above = (guard + 9 * PAGE) as *mut libc::c_void;
            assert_eq!(libc::mprotect(above, PAGE, libc::PROT_NONE), 0);
            let start = guard + PAGE;
            let tp = start + 6 * PAGE + 0x6c0;
            (tp as *mut usize).write(tp);
            (start, start + 8 * PAGE, tp)
        }
    }

    fn floors_for(stacks: &[ThreadStack], live: &[usize]) -> Vec<usize> {
        let maps = std::fs::read("/proc/self/maps").unwrap();
        let mut reader = RootReader::new();
        let mut floors = Vec::with_capacity(CAPACITY);
        dead_stack_floors(&maps, stacks, live, &mut reader, &mut floors);
        floors
    }

    #[test]
    fn a_dead_threads_block_is_read_from_its_thread_pointer_up() {
        let (start, end, tp) = fake_block();
        let stacks = [ThreadStack { start, end, tp }];
        assert_eq!(floors_for(&stacks, &[]), vec![tp]);
    }

    #[test]
    fn a_live_thread_in_the_block_keeps_it_whole() {
        let (start, end, tp) = fake_block();
        let stacks = [ThreadStack { start, end, tp }];
        // Its stack pointer (a reused cached stack), or only its thread pointer (a thread
        // running on a coroutine stack elsewhere).
        assert_eq!(floors_for(&stacks, &[start + PAGE]), vec![]);
        assert_eq!(floors_for(&stacks, &[tp]), vec![]);
    }

    #[test]
    fn memory_that_is_no_longer_the_thread_descriptor_is_read_whole() {
        let (start, end, tp) = fake_block();
        // SAFETY: inside the mapping, aligned.
        unsafe { (tp as *mut usize).write(0) };
        assert_eq!(floors_for(&[ThreadStack { start, end, tp }], &[]), vec![]);
        // A block remembered at another start (the mapping was replaced).
        let (start, end, tp) = fake_block();
        let moved = ThreadStack {
            start: start + PAGE,
            end,
            tp,
        };
        assert_eq!(floors_for(&[moved], &[]), vec![]);
    }

    #[test]
    fn a_file_mapping_is_never_a_stack() {
        let path = std::env::temp_dir().join(format!("memward-dead-stacks-{}", std::process::id()));
        std::fs::write(&path, [0u8; 2 * PAGE]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: a private mapping of our own file, written only inside, then unmapped.
        unsafe {
            let p = libc::mmap(
                core::ptr::null_mut(),
                2 * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            let (start, tp) = (p as usize, p as usize + PAGE);
            (tp as *mut usize).write(tp);
            let stacks = [ThreadStack {
                start,
                end: start + 2 * PAGE,
                tp,
            }];
            assert_eq!(floors_for(&stacks, &[]), vec![]);
            libc::munmap(p, 2 * PAGE);
        }
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn the_table_remembers_each_block_once() {
        let (start, end, tp) = fake_block();
        let s = ThreadStack { start, end, tp };
        remember(s);
        remember(s);
        // Not inside the block: not a thread pointer.
        remember(ThreadStack { tp: end, ..s });
        let mut all = Vec::with_capacity(CAPACITY);
        snapshot(&mut all);
        assert_eq!(all.iter().filter(|t| t.start == start).count(), 1);
    }
}
