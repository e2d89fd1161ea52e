//! Pages: runs of equal-sized blocks carved from a segment, with sharded free lists.
//!
//! A page keeps two lists, as mimalloc does: `free`, which the allocation fast path pops,
//! and `local_free`, which the owner's `free` pushes. Allocation never looks at `local_free`:
//! when `free` runs dry the slow path swaps the lists, which gives the heap a regular,
//! cheap moment to do housekeeping (draining cross-thread frees, purging). Frees from other
//! threads never touch a page; they go to the owning heap's atomic queue (`heap/remote.rs`).
//!
//! Blocks are carved lazily (`extend`), a few KiB at a time, so a fresh 512 KiB page costs
//! no resident memory until it is used.
//!
//! Both lists are hardened (`hardening.rs`, docs/engine-hardening.md): links are stored
//! encoded with the page's random `key`, `pop` checks each link it follows and clears the
//! word of the block it hands out, and `push_local` refuses a block that is already on a
//! list. `is_block_start` tells a block start from an interior pointer with one multiply
//! (`block_inverse`).
//!
//! Invariant, on every page in use (checked by [`Page::check`], and in parts by
//! `debug_assert!`s where it is relied on):
//!
//! `used + |free| + |local_free| == capacity <= reserved`
//!
//! Fields are private: `init` (unsafe) is the only way to point a page at memory, so the
//! safe methods may rely on every block of `free`, `local_free` and `[start, start +
//! capacity * block_size)` lying in the page's slot. All fields except `flags` belong to the
//! owning thread, which reaches a page through a raw pointer and makes references to it only
//! for the length of one method call; `flags`, `start` and `block_size` may also be read by
//! another thread holding a live block of the page (`usable_size`, `realloc`), and none of
//! them changes while a block lives.

use crate::hardening;
use crate::list::{region_mask, Block, LinkKey, Linked, Links, REGION_SHIFT};
use core::ptr;
use core::sync::atomic::{AtomicU16, AtomicU8, Ordering};

/// The heap that owns a page or segment, as seen from below the heap layer: an opaque
/// pointer that only the heap layer casts back to its `Heap`.
pub enum OwnerHeap {}

/// The page is in the heap's full queue.
pub const FLAG_IN_FULL: u8 = 1;
/// Some pointer handed out from this page is not a block start (aligned allocation).
pub const FLAG_HAS_ALIGNED: u8 = 2;
/// A one-block page (large or huge object): its free takes the slow path, which releases
/// the segment.
pub const FLAG_SINGLE: u8 = 4;
/// A block of this page was handed out in hooked mode (`hooks.rs`): frees take the slow
/// path, which reports them.
pub const FLAG_HOOKED: u8 = 8;
/// The slot holds no page (never used, or retired): a free into it is an error, which the
/// free fast path sends to the slow path at no cost (it tests `flags == 0` anyway).
pub const FLAG_UNUSED: u8 = 16;
/// The page holds live blocks sampled in sampled hook mode (`sampling.rs`): frees take
/// the slow path, which reports the sampled ones. Cleared by the owner once the page's
/// count of live sampled blocks is back to zero.
pub const FLAG_SAMPLED: u8 = 32;

// Links are judged plausible by region (`list.rs`); the region is the segment.
const _: () = assert!(REGION_SHIFT as usize == crate::layout::SEGMENT_SHIFT);

/// Bytes of blocks added to `free` by one extension.
const EXTEND_BYTES: usize = 4096;

/// Fields are ordered for the fast paths (the words they touch come first) and packed
/// (8-byte fields, then 4-byte, 2-byte and 1-byte), which keeps a page at 120 bytes (a
/// segment header's 128 pages must stay under 16 KiB: `segment.rs`).
#[repr(C)]
pub struct Page {
    /// Blocks ready to allocate (fast path).
    free: *mut Block,
    /// Encodes the links of `free` and `local_free`; new at every `init`.
    key: LinkKey,
    /// `list::region_mask` of the page's segment: a decoded link is plausible when it has
    /// none of these bits (null, or an address in the segment).
    link_mask: usize,
    /// Blocks freed by the owning thread, waiting to be moved to `free`.
    local_free: *mut Block,
    /// First block.
    start: *mut u8,
    /// `ceil(2^64 / block_size)`: `offset * block_inverse < block_inverse` exactly when
    /// `offset` (below 2^32) is a multiple of `block_size` (Lemire, Kaser and Kurz, "Faster
    /// remainder by direct computation", 2019).
    block_inverse: u64,
    /// Links in the heap's page queue (`prev` is read by every free that empties a page).
    links: Links<Page>,
    block_size: usize,
    heap: *mut OwnerHeap,
    /// When the slot became free (ms), for delayed purging.
    freed_at: u64,
    /// Blocks handed out and not yet freed back to this page's lists.
    used: u32,
    /// Blocks carved so far.
    capacity: u32,
    /// Bytes of the slot touched since it was mapped or purged (page-rounded estimate,
    /// kept across reuse of the slot; summed in the segment's `touched`).
    touched: u32,
    /// Blocks that fit in the page.
    reserved: u32,
    /// Blocks put on `free` by the last refill (statistics: they are allocated once `free`
    /// runs dry again).
    batch: u32,
    /// `used` as last reported to the heap's statistics.
    used_synced: u32,
    /// Live blocks of this page sampled in sampled hook mode (`sampling.rs`). Raised by
    /// the owner, lowered by whichever thread frees a sampled block; at most the page's
    /// block count (8192 for the smallest blocks), so 16 bits suffice.
    sampled_live: AtomicU16,
    /// Free-path flags; zero means the free fast path applies.
    flags: AtomicU8,
    /// The slot holds a live page.
    in_use: bool,
    /// Memory not yet carved (from `capacity` on) reads as zero.
    is_zero: bool,
    /// Every block on `free` is zero apart from its link word.
    free_is_zero: bool,
    /// The slot's memory has been returned to the OS since it was last used.
    purged: bool,
    bin: u8,
}

const _: () = assert!(size_of::<Page>() == 120);

// SAFETY: returns the page's own links, without creating a reference.
unsafe impl Linked for Page {
    unsafe fn links(this: *mut Self) -> *mut Links<Self> {
        // SAFETY: `this` is a live page (caller contract).
        unsafe { ptr::addr_of_mut!((*this).links) }
    }
}

impl Page {
    // A template copied into fresh memory, never shared: its atomics are not aliased.
    #[allow(clippy::declare_interior_mutable_const)]
    pub const EMPTY: Page = Page {
        free: ptr::null_mut(),
        key: LinkKey::from_bits(0),
        link_mask: usize::MAX,
        used: 0,
        capacity: 0,
        flags: AtomicU8::new(FLAG_UNUSED),
        in_use: false,
        is_zero: true,
        free_is_zero: false,
        purged: false,
        touched: 0,
        bin: 0,
        local_free: ptr::null_mut(),
        block_size: 0,
        start: ptr::null_mut(),
        block_inverse: 0,
        reserved: 0,
        batch: 0,
        used_synced: 0,
        sampled_live: AtomicU16::new(0),
        heap: ptr::null_mut(),
        links: Links::new(),
        freed_at: 0,
    };

    /// Turns a free slot into a page of `block_size` blocks over `[start, end)`.
    ///
    /// # Safety
    /// `[start, end)` is mapped memory of this page's slot that nothing else uses, `start`
    /// is 16-byte aligned, and `block_size >= 8`.
    pub unsafe fn init(
        &mut self,
        heap: *mut OwnerHeap,
        bin: usize,
        block_size: usize,
        start: *mut u8,
        end: usize,
    ) {
        debug_assert!(!self.in_use, "slot already holds a page");
        debug_assert!(block_size >= 8 && end > start as usize);
        self.free = ptr::null_mut();
        self.local_free = ptr::null_mut();
        self.used = 0;
        self.capacity = 0;
        self.batch = 0;
        self.used_synced = 0;
        self.flags.store(0, Ordering::Relaxed);
        self.sampled_live.store(0, Ordering::Relaxed);
        self.in_use = true;
        self.free_is_zero = false;
        self.bin = bin as u8;
        self.block_size = block_size;
        self.start = start;
        self.block_inverse = u64::MAX / block_size as u64 + 1;
        self.key = hardening::page_key(start, self.key);
        self.link_mask = region_mask(start);
        self.reserved = ((end - start as usize) / block_size).min(u32::MAX as usize) as u32;
        self.heap = heap;
        self.links = Links::new();
    }

    /// Turns a slot into a one-block page (a large or huge object) of `block_size` bytes at
    /// `start`, handed out at once.
    ///
    /// # Safety
    /// As for [`Page::init`], with `end = start + block_size`.
    pub unsafe fn init_single(&mut self, heap: *mut OwnerHeap, start: *mut u8, block_size: usize) {
        // SAFETY: forwarded contract.
        unsafe { self.init(heap, 0, block_size, start, start as usize + block_size) };
        self.capacity = 1;
        self.used = 1;
        self.set_flag(FLAG_SINGLE, true);
    }

    /// Pops a block from `free` (the allocation fast path: three loads, the link decoded
    /// and checked, three stores). Null when `free` is empty. Aborts if the link is
    /// implausible (the free block was overwritten).
    ///
    /// # Safety
    /// `page` is a page owned by the calling thread, or a page whose `free` is null and
    /// stays null (the static empty page, which this then only reads).
    #[inline(always)]
    pub unsafe fn pop(page: *mut Page) -> *mut Block {
        // SAFETY: per the contract.
        match unsafe { Page::pop_or_report(page) } {
            Popped::Block(b) => b,
            Popped::Empty => ptr::null_mut(),
            Popped::Corrupted => hardening::corrupted_free_list(),
        }
    }

    /// As [`Page::pop`], but a corrupted link is returned as [`Popped::Corrupted`] instead
    /// of aborting here, so that the caller's fast path can end in a tail jump to the
    /// report (no call that returns: no stack frame to set up).
    ///
    /// # Safety
    /// As for [`Page::pop`].
    #[inline(always)]
    pub unsafe fn pop_or_report(page: *mut Page) -> Popped {
        // SAFETY: per the contract; blocks on `free` are in the page (module invariant),
        // and a link that leaves the page's region is never followed.
        unsafe {
            let b = (*page).free;
            if b.is_null() {
                return Popped::Empty;
            }
            let next = Block::next(b, (*page).key);
            if !(*page).is_link(next) {
                return Popped::Corrupted;
            }
            Block::clear(b);
            (*page).free = next;
            (*page).used += 1;
            Popped::Block(b)
        }
    }

    /// Pushes a freed block onto `local_free` and returns `used` after the free. Aborts if
    /// the block is already on one of the page's lists (a double free).
    ///
    /// # Safety
    /// `page` is owned by the calling thread and `b` is the start of one of its blocks
    /// (live, unless this is the double free it detects).
    #[inline(always)]
    pub unsafe fn push_local(page: *mut Page, b: *mut Block) -> u32 {
        // SAFETY: per the contract.
        unsafe {
            if Page::looks_free(page, b) {
                Page::confirm_not_free(page, b);
            }
            Page::push_local_live(page, b)
        }
    }

    /// Does `b`'s first word decode to a link of this page? A live block's first word is
    /// zero (cleared by `pop`) or the program's data, which never does (bit 63 of the key,
    /// `list::LinkKey`) unless the program stored exactly such bits; a free block's does.
    /// Three instructions and a branch.
    ///
    /// # Safety
    /// `page` is `b`'s page, and `b` one of its block starts.
    #[inline(always)]
    pub unsafe fn looks_free(page: *mut Page, b: *mut Block) -> bool {
        // SAFETY: per the contract, b's first word is readable.
        unsafe { (*page).is_link(Block::next(b, (*page).key)) }
    }

    /// [`Page::push_local`] of a block the caller found not [`Page::looks_free`].
    ///
    /// # Safety
    /// As for [`Page::push_local`], and `b` is a live block.
    #[inline(always)]
    pub unsafe fn push_local_live(page: *mut Page, b: *mut Block) -> u32 {
        // SAFETY: per the contract; the block is ours to link.
        unsafe {
            debug_assert!((*page).used > 0, "double free: the page has no live block");
            Block::set_next(b, (*page).local_free, (*page).key);
            (*page).local_free = b;
            (*page).used -= 1;
            (*page).used
        }
    }

    /// Is `next`, a decoded link, null or an address in the page's segment?
    #[inline(always)]
    fn is_link(&self, next: *mut Block) -> bool {
        next.addr() & self.link_mask == 0
    }

    /// The slow half of the double-free check: aborts if `b` is on `free` or
    /// `local_free`; returns if the plausible word was the program's own data.
    ///
    /// # Safety
    /// `page` is owned by the calling thread.
    #[cold]
    #[inline(never)]
    pub unsafe fn confirm_not_free(page: *mut Page, b: *mut Block) {
        // SAFETY: per the contract; `holds` follows only plausible links.
        if unsafe { (*page).holds(b) } {
            hardening::double_free();
        }
    }

    /// Is `b` on `free` or `local_free`? Walks both (at most `capacity` steps each),
    /// aborting on an implausible link.
    fn holds(&self, b: *mut Block) -> bool {
        let on = |mut x: *mut Block| {
            let mut steps = 0;
            while !x.is_null() && steps <= self.capacity {
                if x == b {
                    return true;
                }
                // SAFETY: list blocks are in the page; the link is checked before use.
                let next = unsafe { Block::next(x, self.key) };
                if !self.is_link(next) {
                    hardening::corrupted_free_list();
                }
                x = next;
                steps += 1;
            }
            false
        };
        on(self.free) || on(self.local_free)
    }

    /// Is `p` the start of one of the page's block slots? Exact for pointers at or after
    /// `start` within 4 GiB (every page but a one-block page, whose only start is `start`).
    /// One subtraction, one multiply, one comparison.
    #[inline(always)]
    pub fn is_block_start(&self, p: *const u8) -> bool {
        let offset = p.addr().wrapping_sub(self.start.addr()) as u64;
        offset.wrapping_mul(self.block_inverse) < self.block_inverse
    }

    /// The key that encodes this page's links (tests).
    #[cfg(test)]
    pub fn key(&self) -> LinkKey {
        self.key
    }

    /// First in its queue (or on none): the page the class allocates from.
    #[inline(always)]
    pub fn is_queue_head(&self) -> bool {
        self.links.is_first()
    }

    #[inline]
    pub fn flags(&self) -> u8 {
        self.flags.load(Ordering::Relaxed)
    }

    #[inline]
    pub fn set_flag(&self, flag: u8, on: bool) {
        let old = self.flags.load(Ordering::Relaxed);
        let new = if on { old | flag } else { old & !flag };
        self.flags.store(new, Ordering::Relaxed);
    }

    /// Makes `free` non-empty if possible: first from `local_free`, then by carving fresh
    /// blocks. Returns the number of blocks now on `free` (0 if the page is full).
    /// Only called when `free` is empty.
    pub fn refill(&mut self) -> u32 {
        debug_assert!(self.free.is_null());
        if !self.local_free.is_null() {
            self.free = self.local_free;
            self.local_free = ptr::null_mut();
            self.free_is_zero = false;
            // With `free` empty, the invariant gives the length of what was `local_free`.
            let n = self.capacity - self.used;
            #[cfg(feature = "expensive-checks")]
            assert_eq!(n, self.free_len(), "used + |local_free| == capacity");
            return n;
        }
        if self.capacity < self.reserved {
            return self.extend();
        }
        0
    }

    /// Carves up to `EXTEND_BYTES` worth of never-used blocks (at least one) onto `free`.
    fn extend(&mut self) -> u32 {
        let bs = self.block_size;
        let want = (EXTEND_BYTES / bs).max(1) as u32;
        let n = want.min(self.reserved - self.capacity);
        // SAFETY: blocks capacity..capacity+n lie within the page (capacity + n <= reserved,
        // and `init`'s contract puts reserved blocks between `start` and the slot's end).
        unsafe {
            let first = self.start.add(self.capacity as usize * bs);
            let mut b = first;
            for _ in 1..n {
                let next = b.add(bs);
                Block::set_next(b.cast(), next.cast(), self.key);
                b = next;
            }
            Block::set_next(b.cast(), ptr::null_mut(), self.key);
            self.free = first.cast();
        }
        self.capacity += n;
        self.free_is_zero = self.is_zero;
        n
    }

    /// Keeps the first `keep` blocks of `free` and moves the rest to the front of
    /// `local_free`, so that the allocation fast path runs dry after `keep` pops (the
    /// sampled mode's cut, `sampling.rs`). Returns the number of blocks moved (0 when
    /// `free` has at most `keep`). Walks `keep` blocks, and the moved ones too when
    /// `local_free` is not empty (to link them in front of it).
    pub fn cut_free(&mut self, keep: u32) -> u32 {
        let key = self.key;
        let mut last: *mut Block = ptr::null_mut();
        let mut rest = self.free;
        let mut i = 0;
        // SAFETY: `free` holds blocks of this page with valid links (module invariant).
        unsafe {
            while i < keep && !rest.is_null() {
                last = rest;
                rest = Block::next(rest, key);
                i += 1;
            }
            if rest.is_null() {
                return 0;
            }
            if last.is_null() {
                self.free = ptr::null_mut();
            } else {
                Block::set_next(last, ptr::null_mut(), key);
            }
            if self.local_free.is_null() {
                // With `local_free` empty, the invariant gives the rest's length.
                self.local_free = rest;
                return self.capacity - self.used - i;
            }
            let mut moved = 1;
            let mut tail = rest;
            loop {
                let next = Block::next(tail, key);
                if next.is_null() {
                    break;
                }
                tail = next;
                moved += 1;
            }
            Block::set_next(tail, self.local_free, key);
            self.local_free = rest;
            moved
        }
    }

    /// The key's bits: a page slot gets a new key at every `init`, so a (page, key)
    /// pair names one life of the page.
    pub fn key_bits(&self) -> u64 {
        self.key.bits()
    }

    /// One more live sampled block (owner only).
    pub fn sampled_add(&self) {
        self.sampled_live.fetch_add(1, Ordering::Relaxed);
    }

    /// One sampled block less (any thread holding the block); the count left.
    pub fn sampled_sub(&self) -> u16 {
        self.sampled_live.fetch_sub(1, Ordering::Relaxed).wrapping_sub(1)
    }

    /// Live sampled blocks of the page.
    pub fn sampled_live(&self) -> u16 {
        self.sampled_live.load(Ordering::Relaxed)
    }

    /// Length of `free` (walks it).
    pub fn free_len(&self) -> u32 {
        // SAFETY: `free` holds blocks of this page with valid links (module invariant).
        unsafe { Block::chain_len(self.free, self.key) }
    }

    /// The block that contains `p`, for pages that handed out aligned interior pointers.
    /// Only meaningful for `p` inside the page's blocks.
    #[inline]
    pub fn block_start(&self, p: *const u8) -> *mut u8 {
        let offset = (p as usize).wrapping_sub(self.start as usize);
        self.start.wrapping_add(offset - offset % self.block_size)
    }

    /// Bytes of the page's span that blocks may use.
    pub fn span_end(&self) -> usize {
        self.start as usize + self.reserved as usize * self.block_size
    }

    /// Gives the slot up after its last block came back (`used == 0`).
    pub fn retire(&mut self) {
        debug_assert_eq!(self.used, 0, "retiring a page with live blocks");
        self.in_use = false;
        self.free = ptr::null_mut();
        self.local_free = ptr::null_mut();
        self.flags.store(FLAG_UNUSED, Ordering::Relaxed);
        self.is_zero = self.is_zero && self.capacity == 0;
    }

    /// Forgets every live block at once (a first-class heap dropped with blocks in use).
    pub fn discard_blocks(&mut self) {
        self.used = 0;
    }

    /// Grows or shrinks the single block of a large or huge page.
    pub fn resize_single(&mut self, block_size: usize) {
        debug_assert!(self.flags() & FLAG_SINGLE != 0);
        self.block_size = block_size;
        self.block_inverse = u64::MAX / block_size as u64 + 1;
        self.reserved = 1;
    }

    /// Points the single block of a huge page at `start` after its segment moved.
    pub fn move_single(&mut self, start: *mut u8) {
        debug_assert!(self.flags() & FLAG_SINGLE != 0);
        self.start = start;
    }

    /// `free` is non-empty.
    #[inline]
    pub fn has_free(&self) -> bool {
        !self.free.is_null()
    }

    /// Starts loading the next block `pop` would hand out (a hint: it never faults). For
    /// callers whose blocks come back cold, as the checker's do after its quarantine:
    /// the read of the block's link was most of their allocation's time.
    #[inline(always)]
    pub fn prefetch_next(&self) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch reads nothing the program sees and does not fault.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                self.free.cast::<i8>(),
            )
        };
    }

    /// A block can be handed out without a new page: on `free`, on `local_free`, or not yet
    /// carved.
    pub fn has_room(&self) -> bool {
        !self.free.is_null() || !self.local_free.is_null() || self.capacity < self.reserved
    }

    pub fn used(&self) -> u32 {
        self.used
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    pub fn in_use(&self) -> bool {
        self.in_use
    }

    pub fn bin(&self) -> usize {
        self.bin as usize
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    pub fn start(&self) -> *mut u8 {
        self.start
    }

    pub fn heap(&self) -> *mut OwnerHeap {
        self.heap
    }

    pub fn set_heap(&mut self, heap: *mut OwnerHeap) {
        self.heap = heap;
    }

    pub fn is_zero(&self) -> bool {
        self.is_zero
    }

    pub fn set_is_zero(&mut self, zero: bool) {
        self.is_zero = zero;
    }

    pub fn free_is_zero(&self) -> bool {
        self.free_is_zero
    }

    pub fn purged(&self) -> bool {
        self.purged
    }

    pub fn set_purged(&mut self, purged: bool) {
        self.purged = purged;
    }

    /// Never carved since mapped or purged: nothing to purge.
    pub fn is_pristine(&self) -> bool {
        self.capacity == 0 && self.is_zero
    }

    pub fn touched(&self) -> u32 {
        self.touched
    }

    pub fn set_touched(&mut self, bytes: u32) {
        self.touched = bytes;
    }

    pub fn freed_at(&self) -> u64 {
        self.freed_at
    }

    pub fn set_freed_at(&mut self, ms: u64) {
        self.freed_at = ms;
    }

    /// Blocks put on `free` by the last refill (statistics).
    pub fn batch(&self) -> u32 {
        self.batch
    }

    pub fn set_batch(&mut self, n: u32) {
        self.batch = n;
    }

    /// `used` as last reported to the statistics.
    pub fn used_synced(&self) -> u32 {
        self.used_synced
    }

    pub fn mark_synced(&mut self) {
        self.used_synced = self.used;
    }

    /// Checks the page invariant by walking both lists (tests and `expensive-checks`).
    pub fn check(&self) {
        let count = |mut b: *mut Block| {
            let mut n = 0u32;
            while !b.is_null() {
                let a = b as usize;
                assert!(
                    a >= self.start as usize && a < self.span_end(),
                    "block outside its page"
                );
                assert_eq!(
                    (a - self.start as usize) % self.block_size,
                    0,
                    "misaligned block"
                );
                n += 1;
                // SAFETY: list blocks are inside the page (just asserted).
                b = unsafe { Block::next(b, self.key) };
            }
            n
        };
        let total = self.used + count(self.free) + count(self.local_free);
        assert_eq!(
            total, self.capacity,
            "used + |free| + |local_free| == capacity"
        );
        assert!(self.capacity <= self.reserved, "capacity <= reserved");
    }
}

/// What [`Page::pop_or_report`] found.
pub enum Popped {
    /// The block taken off `free`.
    Block(*mut Block),
    /// `free` was empty.
    Empty,
    /// The first block's link leaves the page: a write after free or a double free.
    Corrupted,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 64 KiB of zeroed memory aligned to its size, like a small page, so that its blocks
    /// share one 4 MiB region (as a page's blocks share their segment's).
    struct Memory(*mut u8);

    impl Memory {
        const LAYOUT: std::alloc::Layout = match std::alloc::Layout::from_size_align(65536, 65536)
        {
            Ok(l) => l,
            Err(_) => panic!("layout"),
        };

        fn new() -> Memory {
            // SAFETY: the layout has a non-zero size.
            let p = unsafe { std::alloc::alloc_zeroed(Self::LAYOUT) };
            assert!(!p.is_null());
            Memory(p)
        }
    }

    impl Drop for Memory {
        fn drop(&mut self) {
            // SAFETY: allocated in `new` with this layout.
            unsafe { std::alloc::dealloc(self.0, Self::LAYOUT) };
        }
    }

    #[test]
    fn extend_refill_and_invariant() {
        let memory = Memory::new();
        let start = memory.0;
        let mut page = Page::EMPTY;
        // SAFETY: 64 KiB of memory used by this page only.
        unsafe { page.init(ptr::null_mut(), 3, 32, start, start as usize + 65536) };
        page.set_is_zero(true);
        assert_eq!(page.reserved, 2048);
        let n = page.refill();
        assert_eq!(n, 128, "4 KiB of 32-byte blocks per extension");
        assert!(page.free_is_zero());
        assert_eq!(page.free_len(), 128);
        page.check();
        let p: *mut Page = &mut page;
        // Pop three, free two locally, through the fast-path functions themselves.
        // SAFETY: the page is this thread's; the blocks come from it.
        let taken: Vec<*mut Block> = (0..3).map(|_| unsafe { Page::pop(p) }).collect();
        // SAFETY: as above.
        unsafe {
            (*p).check();
            assert_eq!(Page::push_local(p, taken[0]), 2);
            assert_eq!(Page::push_local(p, taken[1]), 1);
            (*p).check();
            // Drain free, then refill takes local_free first.
            while !Page::pop(p).is_null() {}
            assert_eq!((*p).used(), 126);
            (*p).check();
            assert_eq!((*p).refill(), 2);
            assert!(!(*p).free_is_zero());
            (*p).check();
            let inner = start.add(32 * 5 + 7);
            assert_eq!((*p).block_start(inner) as usize, start as usize + 160);
        }
    }

    #[test]
    fn block_starts_and_the_double_free_scan() {
        let memory = Memory::new();
        let start = memory.0;
        let mut page = Page::EMPTY;
        assert_ne!(page.flags() & FLAG_UNUSED, 0, "an unused slot takes the slow path");
        // SAFETY: 64 KiB of memory used by this page only; 48-byte blocks.
        unsafe { page.init(ptr::null_mut(), 4, 48, start, start as usize + 65536) };
        assert_eq!(page.flags(), 0);
        // SAFETY: offsets inside the memory.
        unsafe {
            for i in [0usize, 1, 2, 85, 1364] {
                assert!(page.is_block_start(start.add(48 * i)), "block {i}");
                for d in [1usize, 8, 16, 32, 47] {
                    assert!(!page.is_block_start(start.add(48 * i + d)), "{i}+{d}");
                }
            }
        }
        page.refill();
        let p: *mut Page = &mut page;
        // SAFETY: the page is this thread's; the blocks come from it.
        unsafe {
            let a = Page::pop(p);
            let b = Page::pop(p);
            assert!(!(*p).holds(a) && !(*p).holds(b));
            Page::push_local(p, a);
            assert!((*p).holds(a), "on local_free");
            assert!(!(*p).holds(b));
            // A live block whose first word the program set to a plausible link is not
            // confused with a free one: the scan does not find it.
            Block::set_next(b, a, (*p).key());
            Page::confirm_not_free(p, b);
            assert_eq!(Page::push_local(p, b), 0);
            (*p).check();
            let c = Page::pop(p);
            assert!(!(*p).holds(c), "a popped block is off the lists");
            assert_eq!((*p).free_len(), 82, "85 blocks per 4 KiB extension, 3 popped");
            Page::push_local(p, c);
        }
        let old_key = page.key();
        page.retire();
        assert_ne!(page.flags() & FLAG_UNUSED, 0);
        // SAFETY: as above.
        unsafe { page.init(ptr::null_mut(), 4, 48, start, start as usize + 65536) };
        assert_ne!(page.key(), old_key, "a reused slot gets a new key");
    }
}
