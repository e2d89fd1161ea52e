//! Heaps: one per thread (plus first-class heaps), each owning its pages and segments.
//!
//! A heap keeps, per size class, a queue of pages with free blocks; its `direct` table maps
//! small request sizes straight to the first page of their class, so `malloc` is a table
//! lookup and a list pop. Pages that run out of blocks move to the full queue (index 0) and
//! come back when a block is freed to them.
//!
//! Ownership and cross-thread frees:
//! - Only the owning thread touches `Local` (everything but `remote` and the counters).
//! - A thread freeing a block of another heap collects it in its outbox and sends up to
//!   `OUTBOX_MAX` such blocks to one lane of that heap's `remote` queue with one CAS; the
//!   owner takes every lane, one swap each, at its next slow path (`remote.rs`).
//! - When a thread exits, its heap is *abandoned*: each segment still holding live blocks
//!   opens its abandoned-free stack and goes to a global list; frees to it are then collected
//!   on the segment itself, and a heap that needs pages adopts it (`abandon.rs`). The heap
//!   structure goes to a pool for the next thread (`pool.rs`); it is never unmapped, so a
//!   late free that read the old owner can still push to its queue, which whoever reuses or
//!   adopts from the pool drains.
//!
//! Housekeeping (draining remote frees, purging free pages after the purge delay) runs on
//! slow paths, so no background thread is needed.
//!
//! The mechanisms are one file each, all `impl Local` blocks: `page_queue` (queues and the
//! direct table), `refill` (the allocation slow path), `large`, `retire` (owner frees that
//! change a page's state), `remote`, `purge`, `abandon`, `accounting` (statistics), `check`,
//! and `pool` (the registry of heap structures).
//!
//! Invariants (checked by `Local::check`):
//! - `direct[w] == queues[bin(w)].first`, or `EMPTY_PAGE` when that queue is empty;
//! - a page is on queue `FULL` exactly when it has `FLAG_IN_FULL`, else on `queues[bin]`;
//! - `outbox_head.is_null() == (outbox_len == 0)` and `outbox_len < OUTBOX_MAX` between calls.

mod abandon;
mod accounting;
mod check;
mod large;
mod page_queue;
pub mod pool;
mod purge;
mod refill;
pub mod remote;
mod retire;
mod sample;

use crate::list::{Block, BlockStack, List};
use crate::page::{OwnerHeap, Page};
use crate::segment::Segment;
use crate::size_class::{BIN_COUNT, DIRECT_SLOTS};
use crate::stats::HeapCounters;
use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

/// Queue index of the full pages; size-class bins start at 1.
const FULL: usize = 0;
/// Slow-path calls between clock reads for purging.
const TICKS_PER_CLOCK_READ: u32 = 8;
/// Abandoned segments adopted at most per slow path.
const MAX_ADOPT: usize = 8;
/// Frees to another thread's heap collected before they are sent with one CAS.
const OUTBOX_MAX: u32 = 64;
/// In-use bytes a heap accumulates before publishing them to the process-wide total; the
/// process peak is exact to within this much per thread.
const LIVE_BATCH: u64 = 256 * 1024;

/// A page every direct slot points to while its class has no page: `free` is null, so the
/// fast path falls through to the slow path without a separate null check. It is only
/// ever read (`Page::pop` writes nothing when `free` is null).
struct StaticPage(Page);
// SAFETY: the empty page is never written, so sharing it between threads is sound.
unsafe impl Sync for StaticPage {}
static EMPTY_PAGE: StaticPage = StaticPage(Page::EMPTY);
const EMPTY_PAGE_PTR: *mut Page = &EMPTY_PAGE.0 as *const Page as *mut Page;

/// The owner-only part of a heap.
pub struct Local {
    /// First page of the class for each request size in words (fast path).
    direct: [*mut Page; DIRECT_SLOTS],
    queues: [List<Page>; BIN_COUNT],
    /// Small, medium and large segments with a free page slot, and without
    /// (`SegmentKind::class_index`).
    avail: [List<Segment>; 3],
    full: [List<Segment>; 3],
    /// Huge segments (one block each).
    huge: List<Segment>,
    this: *mut Heap,
    thread_id: usize,
    slow_count: u32,
    next_purge: u64,
    /// Free, unpurged page slots that may be due for purging.
    pending_purge: usize,
    /// Resident bytes of those slots (estimate): above `Local::free_resident_bound()`
    /// they are purged at once, where the page is freed.
    pending_bytes: usize,
    /// The runs of the large blocks freed last, tried first by the next large
    /// allocations, newest first: their pages are resident and likely cached, as a
    /// size-class free list's newest blocks are (`large.rs`).
    recent_runs: large::RecentRuns,
    /// Our segments that may hold free slots waiting to be purged.
    purge_set: purge::PurgeSet,
    /// Change of in-use bytes not yet added to the process total (batched to keep atomic
    /// read-modify-writes off the slow path).
    pending_live: i64,
    /// Frees of blocks owned by another thread heap (`outbox_target`), chained through the
    /// blocks and sent as one batch (snmalloc's message batching): one CAS per batch
    /// instead of one per free, and less contention on the owner's queue. At most
    /// `OUTBOX_MAX` blocks wait; the batch goes out at the owner change, at this heap's
    /// slow paths and when its thread exits.
    outbox_target: *mut Heap,
    outbox_head: *mut Block,
    outbox_tail: *mut Block,
    outbox_len: u32,
    /// Fast, hooked or sampled (`hook_table::MODE_*`, `hooks.rs`). In hooked mode
    /// `direct` points only at the empty page, so every allocation takes the slow path,
    /// where the hooks are called; sampled mode is `heap/sample.rs`.
    mode: u8,
    /// Sampled mode: the state of the sampling (`heap/sample.rs`).
    sampling: sample::Sampling,
    /// The heap is being abandoned or destroyed: it must not take segments over.
    leaving: bool,
    /// The abandoned segment being visited (`abandon.rs`): emptied pages of it are freed
    /// but the segment itself is not released until the visit ends.
    visiting: *mut Segment,
}

/// Lanes of a heap's remote queue. A taken chain is walked one dependent load at a time,
/// and each load misses: the block was last written by the freeing thread, on another
/// core. The owner walks the lanes' chains side by side, so that several misses are in
/// flight at once (`Local::drain_remote`).
const REMOTE_LANES: usize = 8;

/// The remote-free stacks on a cache line of their own: other threads CAS them while the
/// owner writes its counters, which would otherwise share the line.
#[repr(C, align(64))]
struct RemoteQueue([BlockStack; REMOTE_LANES]);

impl RemoteQueue {
    #[cfg(not(loom))]
    const fn new() -> Self {
        RemoteQueue([const { BlockStack::new() }; REMOTE_LANES])
    }

    #[cfg(loom)]
    fn new() -> Self {
        RemoteQueue(core::array::from_fn(|_| BlockStack::new()))
    }

    /// Pushes the chain `first..=last` onto the lane its first block's address picks
    /// (pushes of one thread spread over the lanes, and no counter is shared).
    ///
    /// # Safety
    /// As for [`BlockStack::push_chain`].
    #[inline]
    unsafe fn push_chain(&self, first: *mut Block, last: *mut Block) {
        let a = first.addr();
        let lane = ((a >> 4) ^ (a >> 10)) % REMOTE_LANES;
        // SAFETY: forwarded contract.
        unsafe { self.0[lane].push_chain(first, last) }
    }

    /// Takes every lane's chain (null for an empty lane).
    #[inline]
    fn take_lanes(&self) -> [*mut Block; REMOTE_LANES] {
        core::array::from_fn(|i| self.0[i].take_all())
    }

    /// A hint: is anything queued?
    #[inline]
    fn is_empty(&self) -> bool {
        self.0.iter().all(BlockStack::is_empty)
    }
}

#[repr(C)]
pub struct Heap {
    local: UnsafeCell<Local>,
    /// Blocks freed by other threads, linked through their first word.
    remote: RemoteQueue,
    counters: HeapCounters,
    /// All heaps ever created, through this link (set once, read by `stats()`).
    registry_next: AtomicPtr<Heap>,
    /// Pool of retired heaps (under the registry lock).
    dead_next: AtomicPtr<Heap>,
    owner_thread: AtomicUsize,
    /// A first-class heap: frees to it are never batched, since dropping it releases its
    /// segments, and a batched free arriving later would write into released memory.
    first_class: AtomicBool,
    /// The owning thread is inside a hook (or an operation that reports itself once):
    /// nested allocations and frees are not reported. Only the owner touches it.
    in_hook: AtomicBool,
}

// SAFETY: `local` is only touched by the owning thread (see module docs); everything else
// is atomic.
unsafe impl Sync for Heap {}

impl Local {
    const EMPTY: Local = Local {
        direct: [EMPTY_PAGE_PTR; DIRECT_SLOTS],
        queues: [const { List::new() }; BIN_COUNT],
        avail: [const { List::new() }; 3],
        full: [const { List::new() }; 3],
        huge: List::new(),
        this: ptr::null_mut(),
        thread_id: 0,
        slow_count: 0,
        next_purge: 0,
        pending_purge: 0,
        pending_bytes: 0,
        recent_runs: large::RecentRuns::new(),
            purge_set: purge::PurgeSet::new(),
        pending_live: 0,
        outbox_target: ptr::null_mut(),
        outbox_head: ptr::null_mut(),
        outbox_tail: ptr::null_mut(),
        outbox_len: 0,
        mode: crate::hook_table::MODE_FAST,
        sampling: sample::Sampling::OFF,
        leaving: false,
        visiting: ptr::null_mut(),
    };

    #[inline]
    fn heap(&self) -> &Heap {
        // SAFETY: `this` is set when the heap is given an owner and heaps are never unmapped.
        unsafe { &*self.this }
    }

    /// This heap as pages and segments record their owner.
    #[inline]
    fn tag(&self) -> *mut OwnerHeap {
        self.this.cast()
    }

    /// Does this heap own `page` (as opposed to another heap of the same thread)?
    ///
    /// # Safety
    /// `page` is a page of a segment the calling thread owns, not borrowed elsewhere.
    unsafe fn owns_page(&self, page: *mut Page) -> bool {
        // SAFETY: per the contract.
        unsafe { (*page).heap() == self.tag() }
    }
}

impl Heap {
    /// The heap every thread starts with: it owns nothing, and its first slow path replaces
    /// it with a real heap.
    // A template copied into fresh memory, never shared: its atomics are not aliased.
    #[allow(clippy::declare_interior_mutable_const)]
    pub const EMPTY: Heap = Heap {
        local: UnsafeCell::new(Local::EMPTY),
        remote: RemoteQueue::new(),
        counters: HeapCounters::new(),
        registry_next: AtomicPtr::new(ptr::null_mut()),
        dead_next: AtomicPtr::new(ptr::null_mut()),
        owner_thread: AtomicUsize::new(0),
        first_class: AtomicBool::new(false),
        in_hook: AtomicBool::new(false),
    };

    /// The heap a page or segment records as its owner.
    #[inline]
    pub fn from_owner(owner: *mut OwnerHeap) -> *mut Heap {
        owner.cast()
    }

    /// The owner-only state.
    ///
    /// # Safety
    /// Only the owning thread may call this, and it must not hold another `&mut Local` of
    /// the same heap.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn local(&self) -> &mut Local {
        // SAFETY: guaranteed by the caller.
        unsafe { &mut *self.local.get() }
    }

    /// Direct-table lookup for the fast path.
    ///
    /// # Safety
    /// `h` is a live heap owned by the calling thread (or the static empty heap), and
    /// `size <= SMALL_DIRECT_MAX`.
    #[inline(always)]
    pub unsafe fn direct_page(h: *const Heap, size: usize) -> *mut Page {
        // SAFETY: the index is at most DIRECT_SLOTS - 1 for size <= SMALL_DIRECT_MAX, and
        // only the owner writes the table; no reference to `Local` is made.
        unsafe {
            let direct = ptr::addr_of!((*(*h).local.get()).direct).cast::<*mut Page>();
            *direct.add((size + 7) >> 3)
        }
    }

    /// Per-heap statistics, readable from any thread.
    #[inline(always)]
    pub fn counters(&self) -> &HeapCounters {
        &self.counters
    }

    /// Is this a first-class heap (`memward::Heap`)?
    #[inline]
    pub fn is_first_class(&self) -> bool {
        self.first_class.load(Ordering::Relaxed)
    }

    /// Enters a section in which allocations and frees are not reported to hooks; returns
    /// whether the thread was already in one (pass it to [`Heap::leave_hook`]). Owner only.
    #[inline]
    pub fn enter_hook(&self) -> bool {
        // A load and a store, not `swap`: only the owner touches the flag, and `swap` is
        // a locked instruction, tens of cycles on every hooked allocation and free.
        let was_in = self.in_hook.load(Ordering::Relaxed);
        self.in_hook.store(true, Ordering::Relaxed);
        was_in
    }

    /// Is the owning thread in such a section? Owner only.
    #[inline]
    pub fn in_hook_now(&self) -> bool {
        self.in_hook.load(Ordering::Relaxed)
    }

    /// Enters (true) or leaves (false) such a section, when the caller knows it was not
    /// in one ([`Heap::in_hook_now`]): a plain store. Owner only.
    #[inline]
    pub fn set_in_hook(&self, on: bool) {
        self.in_hook.store(on, Ordering::Relaxed);
    }

    /// Ends the section [`Heap::enter_hook`] began.
    #[inline]
    pub fn leave_hook(&self, was_in: bool) {
        self.in_hook.store(was_in, Ordering::Relaxed);
    }

    /// Marks a heap just given to this thread as first-class.
    pub fn set_first_class(&self) {
        self.first_class.store(true, Ordering::Relaxed);
    }
}
