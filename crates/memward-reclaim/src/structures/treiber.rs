//! A Treiber stack: a CAS on the head for push and pop.
//!
//! Pop protects the head before reading its `next`; the protection is also what rules out ABA
//! (a protected node cannot be freed, so its address cannot come back as a new node while we
//! hold it). Values move out of the popped node before it is retired, so nodes hold them in
//! `ManuallyDrop` and retiring a node frees only its memory.

use super::Reclaim;
use crate::sync::{AtomicPtr, Ordering};
use crate::Collector;
use core::mem::ManuallyDrop;
use core::ptr;

struct Node<T> {
    value: ManuallyDrop<T>,
    next: *mut Node<T>,
}

// SAFETY: a node owns its value; `next` is only an address, dereferenced under the protocol.
unsafe impl<T: Send> Send for Node<T> {}

/// A lock-free LIFO stack.
///
/// ```
/// use memward_reclaim::structures::TreiberStack;
/// let stack = TreiberStack::new();
/// stack.push(1);
/// stack.push(2);
/// assert_eq!(stack.pop(), Some(2));
/// assert_eq!(stack.pop(), Some(1));
/// assert_eq!(stack.pop(), None);
/// ```
pub struct TreiberStack<T, R: Reclaim = Collector> {
    head: AtomicPtr<Node<T>>,
    reclaim: R,
}

// SAFETY: values are moved between threads through the stack (`T: Send`); nodes are reached only
// through the atomic head and the reclamation protocol.
unsafe impl<T: Send, R: Reclaim> Send for TreiberStack<T, R> {}
// SAFETY: as above; `&TreiberStack` only allows atomic operations on the head.
unsafe impl<T: Send, R: Reclaim> Sync for TreiberStack<T, R> {}

impl<T: Send + 'static> TreiberStack<T> {
    /// An empty stack with its own [`Collector`].
    ///
    /// ```
    /// let stack = memward_reclaim::structures::TreiberStack::<u8>::new();
    /// assert!(stack.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::with_reclaim(Collector::new())
    }
}

impl<T: Send + 'static> Default for TreiberStack<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Send + 'static, R: Reclaim> TreiberStack<T, R> {
    /// An empty stack that reclaims through `reclaim`.
    ///
    /// ```
    /// use memward_reclaim::{structures::TreiberStack, Collector};
    /// let stack = TreiberStack::<u8, _>::with_reclaim(Collector::with_batch_size(8));
    /// stack.push(1);
    /// ```
    pub fn with_reclaim(reclaim: R) -> Self {
        Self {
            head: AtomicPtr::new(ptr::null_mut()),
            reclaim,
        }
    }

    /// The reclamation scheme.
    ///
    /// ```
    /// let stack = memward_reclaim::structures::TreiberStack::<u8>::new();
    /// assert_eq!(stack.reclaim().stats().retired, 0);
    /// ```
    pub fn reclaim(&self) -> &R {
        &self.reclaim
    }

    /// Pushes `value`.
    ///
    /// ```
    /// let stack = memward_reclaim::structures::TreiberStack::new();
    /// stack.push("a");
    /// assert!(!stack.is_empty());
    /// ```
    pub fn push(&self, value: T) {
        let node = Box::into_raw(Box::new(Node {
            value: ManuallyDrop::new(value),
            next: ptr::null_mut(),
        }));
        // Push never dereferences the head, so it needs no protection.
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: `node` is ours until the CAS publishes it.
            unsafe { (*node).next = head };
            match self
                .head
                .compare_exchange_weak(head, node, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => head = actual,
            }
        }
    }

    /// Pops the most recently pushed value.
    ///
    /// ```
    /// let stack = memward_reclaim::structures::TreiberStack::new();
    /// stack.push(5);
    /// assert_eq!(stack.pop(), Some(5));
    /// ```
    pub fn pop(&self) -> Option<T> {
        let mut guard = self.reclaim.enter();
        loop {
            let head = self.reclaim.protect(&mut guard, 0, &self.head);
            if head.is_null() {
                return None;
            }
            // SAFETY: `head` is protected and was reachable from the root when protected.
            let next = unsafe { (*head).next };
            if self
                .head
                .compare_exchange(head, next, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                // SAFETY: the CAS unlinked `head`, so we alone take its value; the node stays
                // valid (protected) until retired below.
                let value = unsafe { ManuallyDrop::take(&mut (*head).value) };
                // SAFETY: from `Box::into_raw`, unlinked by the CAS, retired once (only the
                // winning CAS gets here).
                unsafe { self.reclaim.retire(&guard, head) };
                return Some(value);
            }
        }
    }

    /// Whether the stack is empty (a snapshot).
    ///
    /// ```
    /// assert!(memward_reclaim::structures::TreiberStack::<u8>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.head.load(Ordering::Acquire).is_null()
    }
}

impl<T, R: Reclaim> Drop for TreiberStack<T, R> {
    fn drop(&mut self) {
        let mut cur = self.head.load(Ordering::Relaxed);
        while !cur.is_null() {
            // SAFETY: `&mut self`: every linked node is ours, from `Box::into_raw`, and its value
            // has not been taken (only unlinked nodes lose their values).
            let mut node = unsafe { Box::from_raw(cur) };
            // SAFETY: the value is still present (see above) and dropped once.
            unsafe { ManuallyDrop::drop(&mut node.value) };
            cur = node.next;
        }
    }
}
