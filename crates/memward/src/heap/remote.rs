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

use super::{Heap, Local, OUTBOX_MAX};
use crate::list::Block;
use crate::segment::Segment;
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

/// Decides where a free of `p` from a thread that does not own `seg` goes, and does step 1.
///
/// # Safety
/// `p` is a live block (or aligned pointer into one) of `seg` that the caller is freeing.
#[inline]
pub unsafe fn route_remote_free(seg: &Segment, p: *mut u8, from_first_class: bool) -> RemoteRoute {
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
        unsafe { self.remote.0.push_chain(first, last) }
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

impl Local {
    /// Frees every block other threads queued for this heap.
    pub fn drain_remote(&mut self) {
        let mut b = self.heap().remote.0.take_all();
        while !b.is_null() {
            // SAFETY: queued blocks are live memward blocks; the pusher's release CAS and
            // our acquire swap make their links visible.
            unsafe {
                let next = Block::next(b);
                self.free_from_queue(b.cast());
                b = next;
            }
        }
    }

    /// Frees a block taken from a heap queue: usually a block of ours, but a queue can
    /// hold blocks pushed to a heap that has since been retired or that lost the segment.
    ///
    /// # Safety
    /// `p` is a live memward block that the caller is freeing.
    pub(crate) unsafe fn free_from_queue(&mut self, p: *mut u8) {
        // SAFETY: p is a live memward block, so its segment header is mapped.
        unsafe {
            let seg = &*Segment::of(p);
            if seg.thread_id() == self.thread_id {
                let page = seg.page_of(p);
                if self.owns_page(page) {
                    self.free_in_page(page, p);
                } else {
                    // Another heap of this thread (a first-class heap) owns it; its
                    // `Local` is distinct from ours and not borrowed on this path.
                    let other = Heap::from_owner((*page).heap());
                    (*other).local().free_in_page(page, p);
                }
            } else {
                self.free_remote(seg, p);
            }
        }
    }

    /// A free of another thread's block by this heap's owner.
    ///
    /// # Safety
    /// `p` is a live block of `seg` (not owned by this thread) that the caller is freeing.
    pub unsafe fn free_remote(&mut self, seg: &Segment, p: *mut u8) {
        let from_first_class = self.heap().is_first_class();
        // SAFETY: forwarded contract; heaps are never unmapped.
        unsafe {
            match route_remote_free(seg, p, from_first_class) {
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
        // SAFETY: the block is being freed; its first word becomes the link.
        unsafe {
            Block::set_next(b, ptr::null_mut());
            if self.outbox_head.is_null() {
                self.outbox_head = b;
            } else {
                Block::set_next(self.outbox_tail, b);
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
