//! `SyncArena`: a bump arena many threads allocate from at once.
//!
//! A shared bump pointer would need an atomic read-modify-write per allocation, several
//! times the cost of a plain bump (blink-alloc's shared arena is about 7x its local one).
//! Instead each thread bumps through a *block* it carved from the shared arena, and keeps
//! that block in thread-local storage: the fast path is the single-thread bump plus one
//! comparison of the arena's id with the block's owner id, folded into the size check so
//! it stays one branch. A thread takes a new block, under a mutex, only when its block is
//! used up; blocks double from 1 KiB to 64 KiB per thread, and requests larger than a
//! quarter of the largest block go straight to the shared arena so a block's tail is not
//! thrown away for them.
//!
//! Ids come from a global counter and are never reused; `reset` gives the arena a fresh id,
//! which turns every thread's cached block stale at once without visiting the threads. A
//! thread keeps blocks for up to four arenas, most recently used first.

extern crate std;

use crate::typed::{self, RawBump};
use crate::Arena;
use allocator_api2::alloc::AllocError;
use core::alloc::Layout;
use core::cell::Cell;
use core::fmt;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

const MIN_BLOCK: usize = 1 << 10;
const MAX_BLOCK: usize = 1 << 16;
/// Requests above this go to the shared arena directly.
const DIRECT: usize = MAX_BLOCK / 4;
/// Arenas one thread keeps a block for.
const SLOTS: usize = 4;

/// Where an empty slot points: non-null and 16-aligned, so zero-sized requests can use it.
const DANGLING: *mut u8 = 16 as *mut u8;

/// Ids start at 1; 0 marks an empty slot.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn fresh_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// One thread's block in one arena.
struct Slot {
    id: Cell<u64>,
    cur: Cell<*mut u8>,
    end: Cell<*mut u8>,
    /// Size of the last block taken, for doubling.
    block: Cell<usize>,
}

impl Slot {
    const fn empty() -> Slot {
        Slot {
            id: Cell::new(0),
            cur: Cell::new(DANGLING),
            end: Cell::new(DANGLING),
            block: Cell::new(0),
        }
    }

    fn copy_from(&self, other: &Slot) {
        self.id.set(other.id.get());
        self.cur.set(other.cur.get());
        self.end.set(other.end.get());
        self.block.set(other.block.get());
    }
}

std::thread_local! {
    static BLOCKS: [Slot; SLOTS] = const { [Slot::empty(), Slot::empty(), Slot::empty(), Slot::empty()] };
}

/// A bump arena that is `Send + Sync`: any number of threads allocate through `&self` at
/// once, each from its own block, so the fast path takes no lock and no atomic operation.
///
/// Like [`Arena`], values are never dropped and [`reset`](SyncArena::reset) keeps every
/// chunk.
///
/// ```
/// use memward_arena::SyncArena;
///
/// let arena = SyncArena::new();
/// let sums: Vec<u64> = std::thread::scope(|s| {
///     let handles: Vec<_> = (0..4u64)
///         .map(|t| {
///             let arena = &arena;
///             s.spawn(move || {
///                 let xs = arena.alloc_slice_fill_iter((0..1000u32).map(|i| u64::from(i) * t));
///                 xs.iter().sum::<u64>()
///             })
///         })
///         .collect();
///     handles.into_iter().map(|h| h.join().unwrap()).collect()
/// });
/// assert_eq!(sums, [0, 499500, 999000, 1498500]);
/// ```
pub struct SyncArena {
    id: u64,
    shared: Mutex<Arena>,
}

impl RawBump for SyncArena {
    #[inline(always)]
    fn raw_alloc(&self, layout: Layout) -> Option<NonNull<u8>> {
        BLOCKS.with(|slots| {
            let slot = &slots[0];
            let cur = slot.cur.get();
            let (size, align) = (layout.size(), layout.align());
            let owned = usize::from(slot.id.get() == self.id).wrapping_neg();
            if align <= 16 {
                // Block ends are 16-aligned and `cur <= end`, as in `Bump::alloc_layout`, so
                // the subtraction cannot wrap.
                let aligned = (cur as usize + (align - 1)) & !(align - 1);
                if size <= (slot.end.get() as usize - aligned) & owned {
                    slot.cur.set(cur.with_addr(aligned + size));
                    // SAFETY: `cur` is never null (a block address or the slot's initial
                    // 16), and `aligned` is at or above it.
                    return Some(unsafe { NonNull::new_unchecked(cur.with_addr(aligned)) });
                }
            }
            self.alloc_slow(slots, layout)
        })
    }
}

impl SyncArena {
    #[cold]
    #[inline(never)]
    fn alloc_slow(&self, slots: &[Slot; SLOTS], layout: Layout) -> Option<NonNull<u8>> {
        let size = layout.size().checked_add(layout.align() - 1)?;
        if size > DIRECT {
            return self.lock().raw_alloc(layout);
        }
        // Bring this arena's slot (or the least recently used one) to the front.
        let found = slots.iter().position(|s| s.id.get() == self.id);
        let from = found.unwrap_or(SLOTS - 1);
        if from != 0 {
            let moved = Slot::empty();
            moved.copy_from(&slots[from]);
            for i in (0..from).rev() {
                slots[i + 1].copy_from(&slots[i]);
            }
            slots[0].copy_from(&moved);
        }
        let slot = &slots[0];
        if found.is_none() {
            slot.id.set(self.id);
            slot.block.set(0);
            slot.cur.set(DANGLING);
            slot.end.set(DANGLING);
        }
        let pad = (slot.cur.get() as usize).wrapping_neg() & (layout.align() - 1);
        if pad + layout.size() > slot.end.get() as usize - slot.cur.get() as usize {
            let block = (slot.block.get() * 2)
                .clamp(MIN_BLOCK, MAX_BLOCK)
                .max((size + 15) & !15);
            let shared = self.lock();
            match shared.raw_alloc(Layout::from_size_align(block, 16).ok()?) {
                Some(start) => {
                    slot.block.set(block);
                    slot.cur.set(start.as_ptr());
                    slot.end.set(start.as_ptr().wrapping_add(block));
                }
                // Near the limit a whole block may not fit where the request does.
                None => return shared.raw_alloc(layout),
            }
        }
        // The block now has room: `pad + size` fits (checked above, or the new block was
        // sized for `size + align - 1` from a 16-aligned start).
        let cur = slot.cur.get();
        let pad = (cur as usize).wrapping_neg() & (layout.align() - 1);
        let ptr = cur.wrapping_add(pad);
        slot.cur.set(ptr.wrapping_add(layout.size()));
        NonNull::new(ptr)
    }

    fn lock(&self) -> MutexGuard<'_, Arena> {
        // A panic while holding the lock cannot leave the arena inconsistent: every
        // mutation of it completes before anything that can panic.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for SyncArena {
    fn default() -> Self {
        SyncArena::new()
    }
}

impl fmt::Debug for SyncArena {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncArena")
            .field("allocated_bytes", &self.allocated_bytes())
            .field("limit", &self.limit())
            .finish()
    }
}

// `&mut T` from `&self`: each call returns fresh memory no other reference can reach.
#[allow(clippy::mut_from_ref)]
impl SyncArena {
    /// An empty shared arena; it allocates nothing until the first allocation.
    ///
    /// ```
    /// let arena = memward_arena::SyncArena::new();
    /// assert_eq!(arena.allocated_bytes(), 0);
    /// ```
    pub fn new() -> Self {
        SyncArena {
            id: fresh_id(),
            shared: Mutex::new(Arena::new()),
        }
    }

    /// Moves `value` into the arena; panics if the limit or the global allocator refuses.
    ///
    /// ```
    /// let arena = memward_arena::SyncArena::new();
    /// assert_eq!(*arena.alloc(7u8), 7);
    /// ```
    #[inline(always)]
    pub fn alloc<T>(&self, value: T) -> &mut T {
        typed::alloc_with(self, || value)
    }

    /// Moves `value` into the arena, or returns [`AllocError`].
    ///
    /// ```
    /// let mut arena = memward_arena::SyncArena::new();
    /// arena.set_limit(Some(0));
    /// assert!(arena.try_alloc(1u64).is_err());
    /// ```
    #[inline(always)]
    pub fn try_alloc<T>(&self, value: T) -> Result<&mut T, AllocError> {
        typed::try_alloc_with(self, || value)
    }

    /// Writes `f()` straight into fresh space in the arena.
    ///
    /// ```
    /// let arena = memward_arena::SyncArena::new();
    /// assert_eq!(arena.alloc_with(|| [1u16; 8]).len(), 8);
    /// ```
    #[inline(always)]
    pub fn alloc_with<T, F: FnOnce() -> T>(&self, f: F) -> &mut T {
        typed::alloc_with(self, f)
    }

    /// [`alloc_with`](SyncArena::alloc_with) that returns [`AllocError`] instead of
    /// panicking.
    ///
    /// ```
    /// let arena = memward_arena::SyncArena::new();
    /// assert!(arena.try_alloc_with(|| 1).is_ok());
    /// ```
    #[inline(always)]
    pub fn try_alloc_with<T, F: FnOnce() -> T>(&self, f: F) -> Result<&mut T, AllocError> {
        typed::try_alloc_with(self, f)
    }

    /// Copies a string into the arena.
    ///
    /// ```
    /// let arena = memward_arena::SyncArena::new();
    /// assert_eq!(arena.alloc_str("shared"), "shared");
    /// ```
    pub fn alloc_str(&self, s: &str) -> &mut str {
        typed::alloc_str(self, s)
    }

    /// Copies a slice of `Copy` values into the arena.
    ///
    /// ```
    /// let arena = memward_arena::SyncArena::new();
    /// assert_eq!(arena.alloc_slice_copy(&[1, 2]), &[1, 2]);
    /// ```
    pub fn alloc_slice_copy<T: Copy>(&self, src: &[T]) -> &mut [T] {
        typed::alloc_slice_copy(self, src)
    }

    /// [`alloc_slice_copy`](SyncArena::alloc_slice_copy) that returns [`AllocError`].
    ///
    /// ```
    /// let mut arena = memward_arena::SyncArena::new();
    /// arena.set_limit(Some(100));
    /// assert!(arena.try_alloc_slice_copy(&[0u8; 200]).is_err());
    /// ```
    pub fn try_alloc_slice_copy<T: Copy>(&self, src: &[T]) -> Result<&mut [T], AllocError> {
        typed::try_alloc_slice_copy(self, src)
    }

    /// Collects an iterator of known length into a slice in the arena; panics if it
    /// yields fewer items than its `len()` promised.
    ///
    /// ```
    /// let arena = memward_arena::SyncArena::new();
    /// assert_eq!(arena.alloc_slice_fill_iter(0..3), &[0, 1, 2]);
    /// ```
    pub fn alloc_slice_fill_iter<T, I>(&self, iter: I) -> &mut [T]
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: ExactSizeIterator,
    {
        typed::alloc_slice_fill_iter(self, iter)
    }

    /// Reserves raw, aligned, uninitialised space for `layout`.
    ///
    /// ```
    /// use core::alloc::Layout;
    /// let arena = memward_arena::SyncArena::new();
    /// let p = arena.try_alloc_layout(Layout::from_size_align(8, 32).unwrap()).unwrap();
    /// assert_eq!(p.as_ptr() as usize % 32, 0);
    /// ```
    #[inline(always)]
    pub fn try_alloc_layout(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        self.raw_alloc(layout).ok_or(AllocError)
    }

    /// Frees everything allocated by every thread, keeping every chunk. Threads' blocks
    /// become stale at once (the arena takes a fresh id).
    ///
    /// ```
    /// let mut arena = memward_arena::SyncArena::new();
    /// arena.alloc_slice_copy(&[0u8; 5000]);
    /// let held = arena.allocated_bytes();
    /// arena.reset();
    /// arena.alloc_slice_copy(&[0u8; 5000]);
    /// assert_eq!(arena.allocated_bytes(), held);
    /// ```
    pub fn reset(&mut self) {
        self.id = fresh_id();
        self.shared
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .reset();
    }

    /// Bytes of the chunks the arena holds (headers included). Threads' blocks are
    /// carved from these chunks, so this counts their unused tails too.
    ///
    /// ```
    /// let arena = memward_arena::SyncArena::new();
    /// arena.alloc(0u64);
    /// assert!(arena.allocated_bytes() >= 1024);
    /// ```
    pub fn allocated_bytes(&self) -> usize {
        self.lock().allocated_bytes()
    }

    /// The cap set by [`set_limit`](SyncArena::set_limit), if any.
    ///
    /// ```
    /// let arena = memward_arena::SyncArena::new();
    /// assert_eq!(arena.limit(), None);
    /// ```
    pub fn limit(&self) -> Option<usize> {
        self.lock().limit()
    }

    /// Caps [`allocated_bytes`](SyncArena::allocated_bytes) exactly, as
    /// [`Arena::set_limit`] does.
    ///
    /// ```
    /// let mut arena = memward_arena::SyncArena::new();
    /// arena.set_limit(Some(8192));
    /// while arena.try_alloc([0u8; 64]).is_ok() {}
    /// assert!(arena.allocated_bytes() <= 8192);
    /// ```
    pub fn set_limit(&mut self, limit: Option<usize>) {
        self.shared
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .set_limit(limit);
    }
}
