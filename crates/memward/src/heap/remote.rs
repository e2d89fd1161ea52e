//! Cross-thread frees: the remote queue, the outbox, and routing a free to where its
//! block's segment lives now.
//!
//! A block freed by a thread that does not own its segment goes, in order of preference:
//! 1. to the segment's abandoned-free stack, if the segment has no owner (open stack);
//! 2. to its owner's remote queue at once, if either side is a first-class heap (a
//!    first-class heap frees its segments when dropped, so nothing may wait for it);
//! 3. else to the freeing thread's outbox, which sends up to `OUTBOX_MAX` frees for one
//!    heap with a single CAS.
//!
//! The owner read in step 2/3 may be stale: the segment may have been abandoned and adopted
//! since. The push still lands in a heap that is never unmapped, and whoever drains that
//! heap (its owner, a thread reusing it from the pool, or `pool::drain_retired_heaps`)
//! routes the block again through [`Local::free_from_queue`]. The atomic protocol is in
//! `list.rs` (`BlockStack`, `TaggedBlockStack`) and model-checked by `tests/loom.rs`.
//!
//! Hardening (docs/engine-hardening.md): the freeing thread checks that the pointer is a
//! block start of a page in use, and tags the block (bit 0 of its cross-thread link) when
//! its first word decodes to a plausible link of its page, i.e. when it may already be on
//! the owner's lists. It cannot look at those lists itself (they belong to the owner), so
//! the owner confirms a tagged block with a scan when it applies the free. Every consumer
//! of a chain checks each link against the segment map before following it.

use super::{Heap, Local, OUTBOX_MAX};
use crate::hardening;
use crate::list::Block;
use crate::page::{Page, FLAG_HAS_ALIGNED, FLAG_SINGLE, FLAG_UNUSED};
use crate::segment::Segment;
use crate::segment_map;
use core::ptr;

/// Where a remote free goes (steps 2 and 3 of the module docs).
pub enum RemoteRoute {
    /// Pushed onto the abandoned segment's own stack; `visit`: the freeing thread should
    /// visit the segment (`Local::visit_abandoned`).
    Abandoned { visit: bool },
    /// Push to this heap's queue at once.
    Direct(*mut Heap),
    /// Batch in the freeing thread's outbox for this heap.
    Outbox(*mut Heap),
}

/// Checks a free of `p` from a thread that does not own `seg` (aborting on a pointer that
/// is not a block start, or into a released page), starts its cross-thread link, tagged if
/// the block may be free already, then decides where it goes and does step 1.
///
/// # Safety
/// `p` points into a page slot of `seg`, a live segment, and the caller is freeing it.
#[inline]
pub unsafe fn route_remote_free(seg: &Segment, p: *mut u8, from_first_class: bool) -> RemoteRoute {
    // SAFETY: forwarded contract; the block is the caller's to write.
    unsafe {
        let suspect = check_remote_free(seg.page_of(p), p);
        Block::start_remote(p.cast(), suspect);
        route_block(seg, p, from_first_class)
    }
}

/// The checks of a remote free; true when the block's first word decodes to a plausible
/// link of its page (the owner confirms). A page's `flags` are atomic, and its key, start
/// and block size do not change while one of its blocks lives, so another thread may read
/// them; in a double free the block is not live and the reads are what the error makes of
/// them (the owner's scan decides).
///
/// # Safety
/// As for [`route_remote_free`].
#[inline(always)]
unsafe fn check_remote_free(page: *mut Page, p: *mut u8) -> bool {
    // SAFETY: per the contract, `page` is the descriptor of p's slot.
    unsafe {
        let flags = (*page).flags();
        if flags & (FLAG_UNUSED | FLAG_HAS_ALIGNED | FLAG_SINGLE) != 0 {
            return check_remote_free_flagged(page, p, flags);
        }
        if !(*page).is_block_start(p) {
            hardening::invalid_pointer();
        }
        Page::looks_free(page, p.cast())
    }
}

/// [`check_remote_free`] on a page with aligned pointers, one block, or no page.
///
/// # Safety
/// As for [`route_remote_free`].
#[cold]
#[inline(never)]
unsafe fn check_remote_free_flagged(page: *mut Page, p: *mut u8, flags: u8) -> bool {
    // SAFETY: as for check_remote_free.
    unsafe {
        if flags & FLAG_UNUSED != 0 {
            hardening::free_in_released_page();
        }
        if flags & FLAG_SINGLE != 0 {
            if p != (*page).start() {
                hardening::invalid_pointer();
            }
            // A one-block page has no free list: a second free finds it released.
            return false;
        }
        Page::looks_free(page, (*page).block_start(p).cast())
    }
}

/// Where a checked remote free goes (steps 1-3 of the module docs); the block's
/// cross-thread link word is already started, and its tag is kept.
///
/// # Safety
/// As for [`route_remote_free`], with the block's link started.
#[inline]
unsafe fn route_block(seg: &Segment, p: *mut u8, from_first_class: bool) -> RemoteRoute {
    // SAFETY: forwarded contract.
    if unsafe { seg.try_push_abandoned_free(p.cast()) } {
        return RemoteRoute::Abandoned {
            visit: seg.note_abandoned_free(),
        };
    }
    let owner = Heap::from_owner(seg.owner());
    // SAFETY: heaps are never unmapped, so even a stale owner is valid memory.
    if from_first_class || unsafe { (*owner).is_first_class() } {
        RemoteRoute::Direct(owner)
    } else {
        RemoteRoute::Outbox(owner)
    }
}

impl Heap {
    /// Pushes a chain of blocks freed by another thread onto this heap's queue.
    ///
    /// # Safety
    /// `first..=last` is a chain of live blocks, being freed by the caller, of segments
    /// this heap owned when the caller read their owner.
    #[inline]
    pub unsafe fn push_remote_chain(&self, first: *mut Block, last: *mut Block) {
        // SAFETY: forwarded contract.
        unsafe { self.remote.push_chain(first, last) }
    }

    /// Pushes one block freed by another thread onto this heap's queue.
    ///
    /// # Safety
    /// As for [`Heap::push_remote_chain`], for the block containing `p` (an aligned interior
    /// pointer is rounded back by the owner when it frees it).
    pub unsafe fn push_remote(&self, p: *mut u8) {
        let block = p.cast::<Block>();
        // SAFETY: a one-block chain, under the caller's guarantee.
        unsafe { self.push_remote_chain(block, block) }
    }
}

/// The next block of a chain taken from a cross-thread stack, after checking that it is
/// null or in memward's memory (aborting otherwise: the link was overwritten).
///
/// # Safety
/// `b` is a block of a taken chain.
#[inline]
pub(crate) unsafe fn queued_next(b: *mut Block) -> *mut Block {
    // SAFETY: per the contract, b's word is a cross-thread link.
    let next = unsafe { Block::remote_next(b) };
    if !next.is_null()
        && (next.addr() & 7 != 0 || !segment_map::contains(Segment::of(next) as usize))
    {
        // SAFETY: forwarded contract.
        unsafe { queued_link_corrupt(b) }
    }
    next
}

/// A taken chain's link leaves memward's memory. If `b` is a block of this thread that is
/// on its page's lists, the chain reached it after it had been freed there (a double free
/// that went through the queue twice); else the link was overwritten.
///
/// # Safety
/// As for [`queued_next`].
#[cold]
#[inline(never)]
unsafe fn queued_link_corrupt(b: *mut Block) -> ! {
    // SAFETY: a block of a taken chain lies in a live segment (it was checked as the link
    // that led here, or is a stack's head).
    unsafe {
        let seg = &*Segment::of(b);
        if seg.thread_id() == crate::os::thread_id() {
            Page::confirm_not_free(seg.page_of(b), b);
        }
    }
    hardening::corrupted_remote_list()
}

impl Local {
    /// Frees every block other threads queued for this heap.
    pub fn drain_remote(&mut self) {
        let mut lanes = self.heap().remote.take_lanes();
        // One block of each lane in turn: the lanes' next links do not depend on each
        // other, so their misses overlap (a single chain waits for each in turn).
        loop {
            let mut any = false;
            for b in &mut lanes {
                if b.is_null() {
                    continue;
                }
                any = true;
                // SAFETY: queued blocks are memward blocks being freed; the pusher's release
                // CAS and our acquire swap make their links visible.
                unsafe {
                    let next = queued_next(*b);
                    self.free_from_queue(b.cast(), Block::remote_tag(*b));
                    *b = next;
                }
            }
            if !any {
                return;
            }
        }
    }

    /// Frees a block taken from a heap queue: usually a block of ours, but a queue can
    /// hold blocks pushed to a heap that has since been retired or that lost the segment.
    /// `suspect`: the block's tag (it may already be free; confirm before freeing it).
    ///
    /// # Safety
    /// `p` is a memward block, checked by the thread that freed it, that the caller is
    /// freeing; its word is its cross-thread link.
    pub(crate) unsafe fn free_from_queue(&mut self, p: *mut u8, suspect: bool) {
        // SAFETY: p is a memward block, so its segment header is mapped.
        unsafe {
            let seg = &*Segment::of(p);
            if seg.thread_id() == self.thread_id {
                let page = seg.page_of(p);
                if suspect {
                    confirm_queued_not_free(page, p);
                }
                if self.owns_page(page) {
                    self.free_in_page(page, p);
                } else {
                    // Another heap of this thread (a first-class heap) owns it; its
                    // `Local` is distinct from ours and not borrowed on this path.
                    let other = Heap::from_owner((*page).heap());
                    (*other).local().free_in_page(page, p);
                }
            } else {
                self.route(seg, p, route_block(seg, p, self.heap().is_first_class()));
            }
        }
    }

    /// A free of another thread's block by this heap's owner.
    ///
    /// # Safety
    /// `p` points into a page slot of `seg` (not owned by this thread), and the caller is
    /// freeing it.
    pub unsafe fn free_remote(&mut self, seg: &Segment, p: *mut u8) {
        let from_first_class = self.heap().is_first_class();
        // SAFETY: forwarded contract.
        unsafe { self.route(seg, p, route_remote_free(seg, p, from_first_class)) }
    }

    /// Sends a routed remote free on its way.
    ///
    /// # Safety
    /// `route` was decided for `p`, a block of `seg` being freed, with its link started.
    unsafe fn route(&mut self, seg: &Segment, p: *mut u8, route: RemoteRoute) {
        // SAFETY: forwarded contract; heaps are never unmapped.
        unsafe {
            match route {
                RemoteRoute::Abandoned { visit } => {
                    if visit {
                        self.visit_abandoned(ptr::from_ref(seg).cast_mut());
                    }
                }
                RemoteRoute::Direct(owner) => (*owner).push_remote(p),
                RemoteRoute::Outbox(owner) => self.push_outbox(owner, p),
            }
        }
    }

    /// Adds a free for `owner` to the outbox, sending the batch when the owner changes or
    /// it is full.
    ///
    /// # Safety
    /// `p` is a live block, being freed by the caller, of a segment `owner` owned when the
    /// caller read it.
    pub unsafe fn push_outbox(&mut self, owner: *mut Heap, p: *mut u8) {
        if owner != self.outbox_target {
            self.flush_outbox();
            self.outbox_target = owner;
        }
        let b = p.cast::<Block>();
        // SAFETY: the block is being freed; its first word, started by the check, becomes
        // the link (its tag kept).
        unsafe {
            Block::set_remote_next(b, ptr::null_mut());
            if self.outbox_head.is_null() {
                self.outbox_head = b;
            } else {
                Block::set_remote_next(self.outbox_tail, b);
            }
        }
        self.outbox_tail = b;
        self.outbox_len += 1;
        if self.outbox_len >= OUTBOX_MAX {
            self.flush_outbox();
        }
        debug_assert!(self.outbox_len < OUTBOX_MAX);
    }

    /// Sends the outbox to its heap.
    pub fn flush_outbox(&mut self) {
        debug_assert_eq!(self.outbox_head.is_null(), self.outbox_len == 0);
        if self.outbox_head.is_null() {
            return;
        }
        // SAFETY: the chain holds live blocks of segments the target owned when queued; a
        // target that has since retired drains stale pushes (module docs).
        unsafe { (*self.outbox_target).push_remote_chain(self.outbox_head, self.outbox_tail) };
        self.outbox_head = ptr::null_mut();
        self.outbox_tail = ptr::null_mut();
        self.outbox_len = 0;
    }
}

/// The owner's confirmation of a tagged remote free: aborts if the block is on its page's
/// lists.
///
/// # Safety
/// `page` is the calling thread's page that contains `p`.
#[cold]
#[inline(never)]
pub(super) unsafe fn confirm_queued_not_free(page: *mut Page, p: *mut u8) {
    // SAFETY: per the contract; a page with aligned pointers links its block starts.
    unsafe {
        let flags = (*page).flags();
        if flags & FLAG_UNUSED != 0 {
            return; // free_in_page reports it
        }
        let b = if flags & FLAG_HAS_ALIGNED != 0 {
            (*page).block_start(p)
        } else {
            p
        };
        Page::confirm_not_free(page, b.cast());
    }
}
