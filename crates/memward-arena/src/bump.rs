//! The bump engine under [`Arena`](crate::Arena): a bump pointer over a list of chunks.
//!
//! Allocation bumps *upwards* from `cur` towards `end` in the current chunk. Upwards means
//! the most recent allocation ends exactly at `cur`, so growing it (a `Vec` pushing one
//! element at a time) only moves `cur`: no copy, and `reserve_exact(1)` in a loop stays
//! linear (bumpalo bumps downwards and copies, which makes that loop quadratic).
//!
//! The fast path is one subtraction and one comparison: `size <= end - align_up(cur)`. Chunk
//! ends are 16-aligned, so for alignments up to 16 the rounded-up `cur` never passes `end`
//! and the subtraction cannot wrap (larger alignments take a padded form of the test). An
//! empty arena has `cur == end` at a non-null dangling address, so the same test sends it
//! to the slow path without a separate "no chunk yet" branch, and a zero-sized request
//! still gets a non-null, aligned address.
//!
//! The slow path (`alloc_slow`) first looks for an unused chunk after the current one that
//! fits (after `reset` or a scope every chunk is reused in order), moving it right after the
//! current chunk so the list stays in use order; only then does it ask the global allocator
//! for a new chunk. New chunks double in size along a fixed schedule; a large request gets
//! a chunk of its own size without bumping the schedule, and a failed request leaves the
//! schedule alone (no run-away doubling). The limit is checked on bytes of chunks, so it is
//! exact: a chunk that would cross it is shrunk to the smallest size that serves the
//! request, and refused if even that crosses it.
//!
//! Invariants (checked by `debug_assert!` in `check`):
//! `allocated == Σ size(chunk) over the list`, `start(current) <= cur <= end == end(current)`,
//! `end % 16 == 0`, and `current` is `None` only when the list is empty.

use crate::chunk::{self, ChunkHeader, CHUNK_ALIGN, HEADER_SIZE, TOP_GUARD};
use core::alloc::Layout;
use core::cell::Cell;
use core::ptr::NonNull;

/// Total size of the first chunk allocated by an arena with no capacity hint.
const FIRST_CHUNK_SIZE: usize = 512;
/// The doubling schedule stops here; later chunks all have this size (or a large
/// request's own size).
const MAX_SCHEDULED_CHUNK_SIZE: usize = 1 << 28;

/// The address an empty arena points `cur` and `end` at: non-null and aligned to every
/// alignment a chunk can satisfy, so zero-sized requests of those alignments get it.
const EMPTY: *mut u8 = CHUNK_ALIGN as *mut u8;

/// A position in the arena that can be returned to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Checkpoint {
    chunk: Option<NonNull<ChunkHeader>>,
    cur: *mut u8,
}

pub(crate) struct Bump {
    cur: Cell<*mut u8>,
    end: Cell<*mut u8>,
    current: Cell<Option<NonNull<ChunkHeader>>>,
    first: Cell<Option<NonNull<ChunkHeader>>>,
    allocated: Cell<usize>,
    next_size: Cell<usize>,
    limit: Option<usize>,
}

// SAFETY: a `Bump` owns its chunks outright (no other handle points into its list), and
// nothing in it is tied to the thread that created it; the `Cell`s keep it `!Sync`.
unsafe impl Send for Bump {}

impl Bump {
    pub(crate) const fn new() -> Self {
        Bump {
            cur: Cell::new(EMPTY),
            end: Cell::new(EMPTY),
            current: Cell::new(None),
            first: Cell::new(None),
            allocated: Cell::new(0),
            next_size: Cell::new(FIRST_CHUNK_SIZE),
            limit: None,
        }
    }

    /// An arena whose first chunk has room for `bytes` bytes. `None` when the global
    /// allocator refuses.
    pub(crate) fn with_capacity(bytes: usize) -> Option<Self> {
        let bump = Bump::new();
        if bytes > 0 {
            let size = round_up(bytes.checked_add(HEADER_SIZE)?, CHUNK_ALIGN)?;
            let chunk = chunk::new_chunk(size)?;
            bump.link_after_current(chunk);
            bump.allocated.set(size);
            bump.next_size.set(
                size.saturating_mul(2)
                    .clamp(FIRST_CHUNK_SIZE, MAX_SCHEDULED_CHUNK_SIZE),
            );
            bump.enter(chunk);
        }
        Some(bump)
    }

    /// Allocates `layout`; about ten instructions and one branch when the current chunk
    /// has room.
    #[inline(always)]
    pub(crate) fn alloc_layout(&self, layout: Layout) -> Option<NonNull<u8>> {
        let cur = self.cur.get();
        let end = self.end.get() as usize;
        let (size, align) = (layout.size(), layout.align());
        if align <= CHUNK_ALIGN && size <= TOP_GUARD {
            // `end` is CHUNK_ALIGN-aligned and `cur <= end`, so rounding `cur` up to a
            // smaller alignment cannot pass `end`, and no chunk ends within TOP_GUARD bytes
            // of the top of the address space, so adding `size` cannot wrap: one addition
            // and one comparison. (For a typed allocation the first test is a constant.)
            let aligned = (cur as usize + (align - 1)) & !(align - 1);
            if aligned + size <= end {
                self.cur.set(cur.with_addr(aligned + size));
                // SAFETY: `cur` is never null (a chunk address or `EMPTY`), and `aligned`
                // lies at or above it within the same chunk.
                return Some(unsafe { NonNull::new_unchecked(cur.with_addr(aligned)) });
            }
        } else if align <= CHUNK_ALIGN {
            // As above, but for a large size: subtract instead, which cannot wrap either.
            let aligned = (cur as usize + (align - 1)) & !(align - 1);
            if size <= end - aligned {
                self.cur.set(cur.with_addr(aligned + size));
                // SAFETY: `cur` is never null (a chunk address or `EMPTY`), and `aligned`
                // lies at or above it within the same chunk.
                return Some(unsafe { NonNull::new_unchecked(cur.with_addr(aligned)) });
            }
        } else {
            let pad = (cur as usize).wrapping_neg() & (align - 1);
            // `pad < align` and `Layout` keeps `size + align - 1 <= isize::MAX`.
            if pad + size <= end - cur as usize {
                let ptr = cur.wrapping_add(pad);
                self.cur.set(ptr.wrapping_add(size));
                // SAFETY: as above, `ptr` is at or above the non-null `cur`.
                return Some(unsafe { NonNull::new_unchecked(ptr) });
            }
        }
        self.alloc_slow(layout)
    }

    #[cold]
    #[inline(never)]
    fn alloc_slow(&self, layout: Layout) -> Option<NonNull<u8>> {
        self.alloc_in_other_chunk(layout, false)
    }

    /// Space for a block that is growing out of the current chunk (a `Vec` doubling): it
    /// goes to the *largest* unused chunk that fits, where it can keep growing in place,
    /// rather than the first, which would make it move again at the next doubling.
    #[cold]
    #[inline(never)]
    pub(crate) fn alloc_for_growth(&self, layout: Layout) -> Option<NonNull<u8>> {
        let ptr = self.alloc_layout_in_current(layout);
        if ptr.is_some() {
            return ptr;
        }
        self.alloc_in_other_chunk(layout, true)
    }

    /// Bumps in the current chunk only; `None` if it has no room.
    fn alloc_layout_in_current(&self, layout: Layout) -> Option<NonNull<u8>> {
        let cur = self.cur.get();
        let pad = (cur as usize).wrapping_neg() & (layout.align() - 1);
        if pad.checked_add(layout.size())? <= self.end.get() as usize - cur as usize {
            let ptr = cur.wrapping_add(pad);
            self.cur.set(ptr.wrapping_add(layout.size()));
            return NonNull::new(ptr);
        }
        None
    }

    fn alloc_in_other_chunk(&self, layout: Layout, largest: bool) -> Option<NonNull<u8>> {
        if let Some(chunk) = self.take_unused_chunk(layout, largest) {
            self.enter(chunk);
        } else {
            let chunk = self.new_chunk_for(layout)?;
            self.link_after_current(chunk);
            self.enter(chunk);
        }
        self.check();
        // The chunk was chosen because the request fits at its start.
        let ptr = self.alloc_layout_in_current(layout);
        debug_assert!(ptr.is_some());
        ptr
    }

    /// Finds an unused chunk after the current one whose bump region fits `layout` (the
    /// first such, or with `largest` the largest), moving it right after the current chunk.
    fn take_unused_chunk(&self, layout: Layout, largest: bool) -> Option<NonNull<ChunkHeader>> {
        let current = self.current.get()?;
        // (chunk, the chunk before it, its size)
        let mut best: Option<(NonNull<ChunkHeader>, NonNull<ChunkHeader>, usize)> = None;
        let mut prev = current;
        // SAFETY: every chunk in the list is live; the list is only changed through `&self`
        // methods of this single-threaded type, none of which is running now.
        let mut candidate = unsafe { chunk::next(current) };
        while let Some(c) = candidate {
            // SAFETY: `c` is a live chunk of the list.
            let (start, end) = unsafe { chunk::bounds(c) };
            let room = end as usize - start as usize;
            let pad = (start as usize).wrapping_neg() & (layout.align() - 1);
            // `pad < align` and `Layout` keeps `size + align - 1 <= isize::MAX`: no overflow.
            if pad + layout.size() <= room {
                if best.is_none_or(|(_, _, size)| room > size) {
                    best = Some((c, prev, room));
                }
                if !largest {
                    break;
                }
            }
            prev = c;
            // SAFETY: as above, `c` is live.
            candidate = unsafe { chunk::next(c) };
        }
        let (c, prev, _) = best?;
        if prev != current {
            // SAFETY: `prev`, `c` and `current` are live chunks of the list and no references
            // to their headers are held; this unlinks `c` and puts it right after `current`.
            unsafe {
                chunk::set_next(prev, chunk::next(c));
                chunk::set_next(c, chunk::next(current));
                chunk::set_next(current, Some(c));
            }
        }
        Some(c)
    }

    /// A new chunk that fits `layout`, within the limit.
    fn new_chunk_for(&self, layout: Layout) -> Option<NonNull<ChunkHeader>> {
        let extra = layout.align().saturating_sub(CHUNK_ALIGN);
        let min = round_up(
            HEADER_SIZE.checked_add(layout.size())?.checked_add(extra)?,
            CHUNK_ALIGN,
        )?;
        let scheduled = self.next_size.get();
        let mut want = scheduled.max(min);
        if let Some(limit) = self.limit {
            let room = limit.saturating_sub(self.allocated.get()) & !(CHUNK_ALIGN - 1);
            if min > room {
                return None;
            }
            want = want.min(room);
        }
        let chunk = match chunk::new_chunk(want) {
            Some(c) => c,
            None if want > min => {
                want = min;
                chunk::new_chunk(min)?
            }
            None => return None,
        };
        self.allocated.set(self.allocated.get() + want);
        if want == scheduled {
            // Only chunks from the schedule advance it; a large request's chunk does not.
            self.next_size
                .set(scheduled.saturating_mul(2).min(MAX_SCHEDULED_CHUNK_SIZE));
        }
        Some(chunk)
    }

    fn link_after_current(&self, chunk: NonNull<ChunkHeader>) {
        match self.current.get() {
            // SAFETY: `current` and `chunk` are live; `chunk` is not yet in the list.
            Some(current) => unsafe {
                chunk::set_next(chunk, chunk::next(current));
                chunk::set_next(current, Some(chunk));
            },
            None => {
                // SAFETY: `chunk` is live and not yet in the list.
                unsafe { chunk::set_next(chunk, self.first.get()) };
                self.first.set(Some(chunk));
            }
        }
    }

    /// Makes `chunk` the current chunk, bumping from its start.
    fn enter(&self, chunk: NonNull<ChunkHeader>) {
        // SAFETY: `chunk` is a live chunk of the list.
        let (start, end) = unsafe { chunk::bounds(chunk) };
        self.current.set(Some(chunk));
        self.cur.set(start);
        self.end.set(end);
    }

    /// Where the arena is now.
    pub(crate) fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            chunk: self.current.get(),
            cur: self.cur.get(),
        }
    }

    /// Returns to `cp`: everything allocated since is free again, every chunk is kept.
    ///
    /// The caller makes sure nothing allocated since `cp` is still referenced and that `cp`
    /// was taken from this arena with no `reset`/`trim` in between; both hold for the scope
    /// guards, which take `&mut Arena`.
    pub(crate) fn restore(&mut self, cp: Checkpoint) {
        match cp.chunk {
            Some(chunk) => {
                self.current.set(Some(chunk));
                // SAFETY: the checkpoint's chunk is still in the list (chunks are only
                // freed by `trim_unused`, which keeps the current chunk and the ones
                // before it, and the scope holds `&mut` so nothing trims meanwhile).
                let (_, end) = unsafe { chunk::bounds(chunk) };
                self.cur.set(cp.cur);
                self.end.set(end);
            }
            None => self.reset(),
        }
        self.check();
    }

    /// Frees everything allocated, keeping every chunk for reuse.
    pub(crate) fn reset(&mut self) {
        match self.first.get() {
            Some(first) => self.enter(first),
            None => {
                self.cur.set(EMPTY);
                self.end.set(EMPTY);
            }
        }
    }

    pub(crate) fn allocated_bytes(&self) -> usize {
        self.allocated.get()
    }

    pub(crate) fn limit(&self) -> Option<usize> {
        self.limit
    }

    /// Sets the cap on `allocated_bytes`; unused chunks are freed until the arena fits
    /// under it, if they can make it fit.
    pub(crate) fn set_limit(&mut self, limit: Option<usize>) {
        self.limit = limit;
        if let Some(limit) = limit {
            self.trim_unused(limit);
        }
    }

    /// Frees chunks after the current one until `allocated <= target` or none is left.
    fn trim_unused(&mut self, target: usize) {
        let Some(current) = self.current.get() else {
            return;
        };
        // SAFETY: `current` is live; `&mut self` means no allocation is in progress.
        let mut next = unsafe { chunk::next(current) };
        while let Some(c) = next {
            if self.allocated.get() <= target {
                break;
            }
            // SAFETY: `c` is a live chunk after the current one, so nothing allocated
            // points into it; it is unlinked before being freed.
            unsafe {
                next = chunk::next(c);
                chunk::set_next(current, next);
                self.allocated.set(self.allocated.get() - chunk::size(c));
                chunk::free_chunk(c);
            }
        }
        self.check();
    }

    /// If `[ptr, ptr + size)` is the most recent allocation, frees it.
    #[inline]
    pub(crate) fn free_last(&self, ptr: NonNull<u8>, size: usize) {
        if ptr.as_ptr().wrapping_add(size) == self.cur.get() {
            self.cur.set(ptr.as_ptr());
        }
    }

    /// Resizes the allocation at `ptr` of `old_size` bytes to `new_size` bytes in place if
    /// it is the most recent allocation and the chunk has room; returns whether it did.
    #[inline]
    pub(crate) fn resize_last(&self, ptr: NonNull<u8>, old_size: usize, new_size: usize) -> bool {
        let p = ptr.as_ptr();
        if p.wrapping_add(old_size) == self.cur.get()
            && new_size <= self.end.get() as usize - p as usize
        {
            self.cur.set(p.wrapping_add(new_size));
            true
        } else {
            false
        }
    }

    /// Debug check of the invariants in the module docs.
    fn check(&self) {
        #[cfg(debug_assertions)]
        {
            let mut total = 0usize;
            let mut found_current = self.current.get().is_none();
            let mut c = self.first.get();
            while let Some(chunk) = c {
                // SAFETY: every chunk in the list is live.
                unsafe {
                    total += chunk::size(chunk);
                    if Some(chunk) == self.current.get() {
                        found_current = true;
                        let (start, end) = chunk::bounds(chunk);
                        debug_assert!(start <= self.cur.get() && self.cur.get() <= end);
                        debug_assert!(end == self.end.get());
                        debug_assert!(end as usize % CHUNK_ALIGN == 0);
                    }
                    c = chunk::next(chunk);
                }
            }
            debug_assert_eq!(total, self.allocated.get());
            debug_assert!(found_current);
            debug_assert_eq!(self.current.get().is_none(), self.first.get().is_none());
        }
    }
}

impl Drop for Bump {
    fn drop(&mut self) {
        let mut c = self.first.get();
        while let Some(chunk) = c {
            // SAFETY: the arena is being dropped, so nothing borrows its memory; each chunk
            // is read before it is freed and freed once.
            unsafe {
                c = chunk::next(chunk);
                chunk::free_chunk(chunk);
            }
        }
    }
}

fn round_up(n: usize, align: usize) -> Option<usize> {
    Some(n.checked_add(align - 1)? & !(align - 1))
}
