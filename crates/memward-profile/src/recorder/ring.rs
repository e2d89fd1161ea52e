//! Per-thread event rings and the global event order.
//!
//! Each recording thread owns a ring of fixed-size entries in a mapping of its own and
//! appends its events there without a shared lock. Every entry carries a number from one
//! global counter (`SEQ`, one atomic add per entry): the file's order is the counter's
//! order, which is the heap's order wherever it matters. A free takes its number before
//! the block is freed (the hook runs first) and an allocation after the block was handed
//! out, so a free comes before the allocation that reuses its address, whichever threads
//! did them; a stack node takes its number before any other thread can find it (under the
//! trie's lock), so it comes before every event that names it.
//!
//! Whoever holds the output (`output::round`) merges the rings into the file: it reads the
//! counter (`G`), then, ring by ring, waits until the owner is not in the middle of an
//! append (`busy`) and reads how far it has published. Every entry numbered below `G` is
//! then published: its owner set `busy` before taking the number, and the number was taken
//! before `G` was read. The round writes those entries in number order (a merge of
//! sorted rings) and leaves the rest for the next round. So the file holds a prefix of
//! the global order at every round's end, and no event is held back longer than until
//! the next round.
//!
//! A thread whose ring is nearly full runs a round itself if the output is free, or waits
//! until someone else's round has made room (it is not busy meanwhile, so that round does
//! not wait for it): no thread waits on a lock others can keep taking ahead of it. Rings
//! are claimed at a thread's first event and given back at its exit (a thread-specific
//! data destructor); a ring given back keeps its unwritten entries for the next round and
//! the next owner appends after them.

use crate::sys::Region;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Entries per ring (a power of two): 160 KiB, touched as it is used.
pub const CAPACITY: u64 = 4096;

/// Most rings, so most threads recording at once. A thread that finds none free does not
/// record (counted in [`lost`] and reported at exit).
pub const MAX_RINGS: usize = 16384;

/// Entry kinds (the low 4 bits of `Entry::seq_kind`).
pub const ALLOC: u64 = 1;
/// A free.
pub const FREE: u64 = 2;
/// A resize.
pub const REALLOC: u64 = 3;
/// A new stack node.
pub const NODE: u64 = 4;
/// A thread's name.
pub const NAME: u64 = 5;

/// One event. `seq_kind`: the sequence number shifted left by 4, and the kind. The words:
/// alloc `(ptr, size, -, tid | stack << 32)`; free `(ptr, -, -, tid)`; realloc `(old, new,
/// size, tid | stack << 32)`; node `(id, parent, address, -)`; name `(name bytes 0-7,
/// 8-15, length, tid)`.
#[derive(Clone, Copy, Default)]
#[repr(C)]
pub struct Entry {
    pub seq_kind: u64,
    pub a: u64,
    pub b: u64,
    pub c: u64,
    pub d: u64,
}

impl Entry {
    /// The entry's sequence number.
    #[inline]
    pub fn seq(&self) -> u64 {
        self.seq_kind >> 4
    }

    /// The entry's kind.
    #[inline]
    pub fn kind(&self) -> u64 {
        self.seq_kind & 15
    }
}

/// The global event counter.
static SEQ: AtomicU64 = AtomicU64::new(1);

/// The next sequence number (read by a round as its bound).
pub fn bound() -> u64 {
    SEQ.load(Ordering::SeqCst)
}

/// A ring: the owner's side and the reader's side on separate cache lines.
#[repr(C, align(64))]
pub struct Ring {
    /// Entries published (a running count; the slot is `head % CAPACITY`). Written by
    /// the owner only.
    head: AtomicU64,
    /// Nonzero while the owner appends.
    busy: AtomicU32,
    /// The owning thread's id, 0 when free.
    owner: AtomicU32,
    _pad: [u64; 6],
    /// Entries the rounds have written. Written by the output's holder only.
    tail: AtomicU64,
    _pad2: [u64; 7],
    entries: [UnsafeCell<Entry>; CAPACITY as usize],
}

// SAFETY: entries in `[tail, head)` are only read (by the output's holder), the others
// only written (by the owner); they change hands through `head` (owner release, reader
// acquire) and `tail` (reader release, owner acquire).
unsafe impl Sync for Ring {}

/// The rings made so far (a ring is never unmapped: a round may be reading it).
static RINGS: [AtomicPtr<Ring>; MAX_RINGS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_RINGS];
/// How many of `RINGS` are filled in.
static COUNT: AtomicUsize = AtomicUsize::new(0);
/// Events not recorded for want of a ring.
static LOST: AtomicU64 = AtomicU64::new(0);

/// Events not recorded because more than [`MAX_RINGS`] threads recorded at once.
pub fn lost() -> u64 {
    LOST.load(Ordering::Relaxed)
}

/// Counts an event not recorded.
pub fn lose() {
    LOST.fetch_add(1, Ordering::Relaxed);
}

/// The rings made so far.
pub fn rings() -> impl Iterator<Item = &'static Ring> {
    let n = COUNT.load(Ordering::Acquire);
    RINGS[..n].iter().filter_map(|p| {
        let p = p.load(Ordering::Acquire);
        // SAFETY: non-null pointers in RINGS point to rings mapped by `claim`, never
        // unmapped.
        (!p.is_null()).then(|| unsafe { &*p })
    })
}

/// The ring with index `i` (as `claim` returned it).
pub fn ring(i: u32) -> Option<&'static Ring> {
    let p = RINGS.get(i as usize)?.load(Ordering::Acquire);
    // SAFETY: as in `rings`.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// Claims a free ring for thread `tid` (making one if none is free); its index.
pub fn claim(tid: u32) -> Option<u32> {
    let tid = tid.max(1);
    for (i, r) in rings().enumerate() {
        if r.owner.load(Ordering::Relaxed) == 0
            && r.owner
                .compare_exchange(0, tid, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return Some(i as u32);
        }
    }
    let region = Region::map(core::mem::size_of::<Ring>())?;
    let bytes = region.leak();
    let ring = bytes.as_mut_ptr().cast::<Ring>();
    // SAFETY: a fresh zeroed mapping of the ring's size, page-aligned; all-zero bytes are
    // an empty, free ring (atomics and plain integers).
    unsafe { (*ring).owner.store(tid, Ordering::Relaxed) };
    loop {
        let i = COUNT.load(Ordering::Acquire);
        if i == MAX_RINGS {
            // The mapping is lost; this happens at most once per thread past the limit.
            return None;
        }
        if RINGS[i]
            .compare_exchange(
                core::ptr::null_mut(),
                ring,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            let _ = COUNT.compare_exchange(i, i + 1, Ordering::AcqRel, Ordering::Relaxed);
            return Some(i as u32);
        }
        // Another thread took slot i: help its count along and try the next one.
        let _ = COUNT.compare_exchange(i, i + 1, Ordering::AcqRel, Ordering::Relaxed);
    }
}

/// Entries an append may need at most: a name, a stack's new nodes, the event.
pub const MAX_APPEND: u64 = crate::unwind::MAX_FRAMES as u64 + 2;

impl Ring {
    /// Gives the ring back (its owner exits); its entries stay for the next round.
    pub fn release(&self) {
        self.owner.store(0, Ordering::Release);
    }

    /// Whether `n` more entries fit now.
    #[inline]
    pub fn has_room(&self, n: u64) -> bool {
        let head = self.head.load(Ordering::Relaxed);
        head + n - self.tail.load(Ordering::Acquire) <= CAPACITY
    }

    /// Starts an append of at most [`MAX_APPEND`] entries (the caller made room).
    #[inline]
    pub fn begin(&self) -> Append<'_> {
        // Relaxed: the add of the first sequence number below is a SeqCst read-modify-write,
        // and a round that reads the counter past it synchronises with it, so it sees this
        // store (or a later one).
        self.busy.store(1, Ordering::Relaxed);
        Append {
            ring: self,
            head: self.head.load(Ordering::Relaxed),
        }
    }

    /// For a round: waits until the owner is between appends, then returns the span of
    /// published, unwritten entries `(tail, head)`. `give_up` bounds the wait (the last
    /// round at exit, where an owner may never finish); `None` if it ran out.
    pub fn published(&self, give_up: Option<u32>) -> Option<(u64, u64)> {
        let mut spins = 0u32;
        while self.busy.load(Ordering::Acquire) != 0 {
            spins += 1;
            if give_up.is_some_and(|g| spins > g) {
                return None;
            }
            if spins < 64 {
                core::hint::spin_loop();
            } else {
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
            }
        }
        Some((
            self.tail.load(Ordering::Relaxed),
            self.head.load(Ordering::Acquire),
        ))
    }

    /// Entry number `i` (in `[tail, head)` as `published` returned it).
    #[inline]
    pub fn entry(&self, i: u64) -> Entry {
        // SAFETY: the caller (the output's holder) reads published entries only, which the
        // owner does not write until `tail` passes them.
        unsafe { *self.entries[(i % CAPACITY) as usize].get() }
    }

    /// Marks entries before `i` written (by the output's holder).
    pub fn consumed(&self, i: u64) {
        self.tail.store(i, Ordering::Release);
    }

    /// In a forked child: drops the parent's unwritten entries and frees every ring but
    /// the forking thread's (`keep`). Only the child's one thread runs.
    pub fn reset_in_child(&self, keep: bool) {
        self.tail
            .store(self.head.load(Ordering::Relaxed), Ordering::Relaxed);
        self.busy.store(0, Ordering::Relaxed);
        if !keep {
            self.owner.store(0, Ordering::Relaxed);
        }
    }
}

/// An append in progress: entries are written after the published ones and published
/// together when it ends.
pub struct Append<'a> {
    ring: &'a Ring,
    head: u64,
}

impl Append<'_> {
    /// Writes one entry of `kind`, numbered now.
    #[inline]
    pub fn push(&mut self, kind: u64, a: u64, b: u64, c: u64, d: u64) {
        let seq = SEQ.fetch_add(1, Ordering::SeqCst);
        let slot = &self.ring.entries[(self.head % CAPACITY) as usize];
        // SAFETY: the slot is past `head`, so no round reads it, and room was made for
        // every entry of this append (`has_room`), so the rounds are done with it; only
        // the owner (this thread) writes its ring.
        unsafe {
            *slot.get() = Entry {
                seq_kind: seq << 4 | kind,
                a,
                b,
                c,
                d,
            }
        };
        self.head += 1;
    }
}

impl Drop for Append<'_> {
    fn drop(&mut self) {
        self.ring.head.store(self.head, Ordering::Release);
        self.ring.busy.store(0, Ordering::Release);
    }
}
