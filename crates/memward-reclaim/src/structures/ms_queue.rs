//! The Michael-Scott queue: a linked list with a dummy head, CAS on `tail.next` to enqueue and on
//! `head` to dequeue, and helping to swing a lagging tail.
//!
//! Dequeue needs two protections: the head (the current dummy) and its successor, whose value it
//! takes. The successor is protected through a field of the head, so after protecting it the
//! dequeuer checks that the head is still the head: only then was the successor still linked
//! when its hazard was published (the hazard-pointer rule [`crate::Guard::protect`] describes).
//! The value is read only after winning the CAS that makes its node the new dummy, so no value
//! is ever copied speculatively; nodes keep values in `MaybeUninit` and retiring frees memory only.

use super::Reclaim;
use crate::sync::{AtomicPtr, Ordering};
use crate::Collector;
use core::mem::MaybeUninit;
use core::ptr;

struct Node<T> {
    value: MaybeUninit<T>,
    next: AtomicPtr<Node<T>>,
}

impl<T> Node<T> {
    fn boxed(value: MaybeUninit<T>) -> *mut Self {
        Box::into_raw(Box::new(Self {
            value,
            next: AtomicPtr::new(ptr::null_mut()),
        }))
    }
}

/// A lock-free FIFO queue.
///
/// ```
/// use memward_reclaim::structures::MsQueue;
/// let queue = MsQueue::new();
/// queue.push(1);
/// queue.push(2);
/// assert_eq!(queue.pop(), Some(1));
/// assert_eq!(queue.pop(), Some(2));
/// assert_eq!(queue.pop(), None);
/// ```
pub struct MsQueue<T, R: Reclaim = Collector> {
    head: AtomicPtr<Node<T>>,
    tail: AtomicPtr<Node<T>>,
    reclaim: R,
}

// SAFETY: values move between threads through the queue (`T: Send`); nodes are reached only
// through atomics and the reclamation protocol.
unsafe impl<T: Send, R: Reclaim> Send for MsQueue<T, R> {}
// SAFETY: as above.
unsafe impl<T: Send, R: Reclaim> Sync for MsQueue<T, R> {}

impl<T: Send + 'static> MsQueue<T> {
    /// An empty queue with its own [`Collector`].
    ///
    /// ```
    /// let queue = memward_reclaim::structures::MsQueue::<u8>::new();
    /// assert_eq!(queue.pop(), None);
    /// ```
    pub fn new() -> Self {
        Self::with_reclaim(Collector::new())
    }
}

impl<T: Send + 'static> Default for MsQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Send + 'static, R: Reclaim> MsQueue<T, R> {
    /// An empty queue that reclaims through `reclaim`.
    ///
    /// ```
    /// use memward_reclaim::{structures::MsQueue, Collector};
    /// let queue = MsQueue::<u8, _>::with_reclaim(Collector::with_batch_size(8));
    /// queue.push(1);
    /// ```
    pub fn with_reclaim(reclaim: R) -> Self {
        let dummy = Node::boxed(MaybeUninit::uninit());
        Self {
            head: AtomicPtr::new(dummy),
            tail: AtomicPtr::new(dummy),
            reclaim,
        }
    }

    /// The reclamation scheme.
    ///
    /// ```
    /// let queue = memward_reclaim::structures::MsQueue::<u8>::new();
    /// assert_eq!(queue.reclaim().stats().retired, 0);
    /// ```
    pub fn reclaim(&self) -> &R {
        &self.reclaim
    }

    /// Appends `value`.
    ///
    /// ```
    /// let queue = memward_reclaim::structures::MsQueue::new();
    /// queue.push('x');
    /// assert_eq!(queue.pop(), Some('x'));
    /// ```
    pub fn push(&self, value: T) {
        let node = Node::boxed(MaybeUninit::new(value));
        let mut guard = self.reclaim.enter();
        loop {
            let tail = self.reclaim.protect(&mut guard, 0, &self.tail);
            // SAFETY: `tail` is protected and was reachable (the tail is never a retired node:
            // dequeue swings a lagging tail before retiring the node it points to).
            let next = unsafe { (*tail).next.load(Ordering::Acquire) };
            if tail != self.tail.load(Ordering::Acquire) {
                continue;
            }
            if !next.is_null() {
                // Help the enqueuer that linked `next` but has not swung the tail yet.
                let _ =
                    self.tail
                        .compare_exchange(tail, next, Ordering::Release, Ordering::Relaxed);
                continue;
            }
            // SAFETY: as above, `tail` is protected.
            let linked = unsafe {
                (*tail).next.compare_exchange(
                    ptr::null_mut(),
                    node,
                    Ordering::Release,
                    Ordering::Relaxed,
                )
            };
            if linked.is_ok() {
                let _ =
                    self.tail
                        .compare_exchange(tail, node, Ordering::Release, Ordering::Relaxed);
                return;
            }
        }
    }

    /// Removes the oldest value.
    ///
    /// ```
    /// let queue = memward_reclaim::structures::MsQueue::<u8>::new();
    /// assert_eq!(queue.pop(), None);
    /// ```
    pub fn pop(&self) -> Option<T> {
        let mut guard = self.reclaim.enter();
        loop {
            let head = self.reclaim.protect(&mut guard, 0, &self.head);
            // SAFETY: `head` is protected and was the head (reachable) when protected.
            let next = self
                .reclaim
                .protect(&mut guard, 1, unsafe { &(*head).next });
            if head != self.head.load(Ordering::Acquire) {
                // `next` may have been dequeued (and retired) before its hazard was published.
                continue;
            }
            if next.is_null() {
                return None;
            }
            let tail = self.tail.load(Ordering::Acquire);
            if head == tail {
                // The tail lags behind a linked node; swing it before the head passes it.
                let _ =
                    self.tail
                        .compare_exchange(tail, next, Ordering::Release, Ordering::Relaxed);
                continue;
            }
            if self
                .head
                .compare_exchange(head, next, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                // SAFETY: winning the CAS made `next` the dummy and gave us its value, which its
                // enqueuer initialised before linking it (release/acquire on `next`); `next` is
                // protected, so it is valid even if another dequeuer retires it right away.
                let value = unsafe { (*next).value.assume_init_read() };
                // SAFETY: from `Box::into_raw`, unlinked by the CAS (and the tail is past it),
                // retired once by the CAS winner.
                unsafe { self.reclaim.retire(&guard, head) };
                return Some(value);
            }
        }
    }
}

impl<T, R: Reclaim> Drop for MsQueue<T, R> {
    fn drop(&mut self) {
        // The head is the dummy (no value); every node after it holds one.
        let mut cur = self.head.load(Ordering::Relaxed);
        let mut is_dummy = true;
        while !cur.is_null() {
            // SAFETY: `&mut self`: linked nodes are ours and from `Box::into_raw`.
            let mut node = unsafe { Box::from_raw(cur) };
            if !is_dummy {
                // SAFETY: non-dummy nodes hold an initialised value that nobody took.
                unsafe { node.value.assume_init_drop() };
            }
            is_dummy = false;
            cur = node.next.load(Ordering::Relaxed);
        }
    }
}
