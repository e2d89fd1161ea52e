//! The engine's linked data structures, written once.
//!
//! - [`List`]: an intrusive doubly linked list for owner-only bookkeeping (a heap's page
//!   queues, its segment lists, the global segment caches under their lock). Nodes carry
//!   their own [`Links`]; the list never allocates.
//! - [`BlockStack`]: a multi-producer, single-consumer stack of free blocks linked through
//!   their first word. Producers push whole chains with one CAS; the consumer takes
//!   everything with one swap. A heap's remote-free queue.
//! - [`TaggedBlockStack`]: the same, with a tag in bit 0 that says whether pushes are
//!   accepted: an abandoned segment collects frees this way until a heap adopts it and
//!   clears the tag with the same swap that takes the collected frees.
//!
//! The two atomic stacks are the whole cross-thread free protocol at the level of memory
//! orderings, and they are what `tests/loom.rs` model-checks (their atomics come from
//! `crate::sync`). A push publishes the chain's links with its release CAS; the consumer's
//! acquire swap makes them visible before it walks the chain.

use crate::sync::{AtomicPtr, AtomicUsize, Ordering};
use core::marker::PhantomData;
use core::ptr;

/// A free block: its first word links to the next free block.
///
/// Two kinds of links share that word. A page's own lists (`free`, `local_free`) store
/// their links encoded with the page's [`LinkKey`] ([`Block::next`], [`Block::set_next`]);
/// the cross-thread stacks below store plain pointers whose bit 0 is a tag the pusher set
/// ([`Block::remote_next`], [`Block::set_remote_next`]): blocks are at least 8-byte aligned,
/// so bit 0 of a link is otherwise always 0.
#[repr(C)]
pub struct Block {
    /// Pointer-typed, so that an encoded or tagged link keeps its target's provenance.
    word: *mut Block,
}

/// Bit 0 of a cross-thread link: set by the pusher on the block that holds the link.
pub const REMOTE_TAG: usize = 1;

/// The address bits above this shift name a 4 MiB region (a segment, `layout.rs`); a
/// plausible link stays in its block's region (see [`region_mask`]).
pub const REGION_SHIFT: u32 = 22;

/// The address bits that a plausible link of a block at `p` does not have: every bit above
/// the region that is clear in `p`. A decoded link `next` is plausible when
/// `next & region_mask(p) == 0`: null, or an address in `p`'s region (or, for a garbage
/// word, one whose region bits happen to be a subset of `p`'s: about 2^-40 for random
/// bits, and never when the stored word had bit 63 clear, see [`LinkKey`]). One `test`.
pub fn region_mask(p: *const u8) -> usize {
    !p.addr() & !((1 << REGION_SHIFT) - 1)
}

/// The key a page encodes its free-list links with: `word = next ^ key`.
///
/// Bit 63 of every key is set. A word with bit 63 clear (every user-space pointer, every
/// small integer, zero) therefore decodes to an address with bit 63 set, which no
/// plausible link has: overwriting a free block with ordinary data is always detected on
/// the next pop, and a live block whose first word is zero or ordinary data never passes
/// for a free one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkKey(usize);

impl LinkKey {
    /// A key from 64 random bits (bit 63 is forced on).
    pub const fn from_bits(bits: u64) -> LinkKey {
        LinkKey(bits as usize | 1 << (usize::BITS - 1))
    }

    /// The key's bits (to derive the next key of a reused page).
    pub const fn bits(self) -> u64 {
        self.0 as u64
    }
}

impl Block {
    /// The decoded link of a block on a page list. Not checked: see
    /// [`region_mask`]. The pointer keeps the provenance of the link stored.
    ///
    /// # Safety
    /// `b` points to at least one readable word (a block being freed or on a page list).
    #[inline(always)]
    pub unsafe fn next(b: *mut Block, key: LinkKey) -> *mut Block {
        // SAFETY: per the contract, the first word is readable.
        let word = unsafe { (*b).word };
        word.map_addr(|a| a ^ key.0)
    }

    /// Writes the encoded link of a block that is being freed onto a page list.
    ///
    /// # Safety
    /// `b` points to at least one writable word that nobody else uses (a block being freed).
    #[inline(always)]
    pub unsafe fn set_next(b: *mut Block, next: *mut Block, key: LinkKey) {
        // SAFETY: per the contract.
        unsafe { (*b).word = next.map_addr(|a| a ^ key.0) }
    }

    /// Zeroes the link word of a block leaving a list, so that a live block never holds
    /// a stale encoded link (which would look like a free block to the double-free check).
    ///
    /// # Safety
    /// `b` is a block being handed out.
    #[inline(always)]
    pub unsafe fn clear(b: *mut Block) {
        // SAFETY: per the contract.
        unsafe { (*b).word = ptr::null_mut() }
    }

    /// The link of a block on a cross-thread stack or chain (tag removed).
    ///
    /// # Safety
    /// `b` points to a block whose first word was written as a cross-thread link.
    #[inline(always)]
    pub unsafe fn remote_next(b: *mut Block) -> *mut Block {
        // SAFETY: per the contract.
        let word = unsafe { (*b).word };
        word.map_addr(|a| a & !REMOTE_TAG)
    }

    /// Was `b` tagged by [`Block::start_remote`]?
    ///
    /// # Safety
    /// As for [`Block::remote_next`].
    #[inline(always)]
    pub unsafe fn remote_tag(b: *mut Block) -> bool {
        // SAFETY: per the contract.
        unsafe { (*b).word.addr() & REMOTE_TAG != 0 }
    }

    /// Starts a block's life on the cross-thread path: a null link and the tag.
    ///
    /// # Safety
    /// `b` points to a writable word that nobody else uses (a block being freed).
    #[inline(always)]
    pub unsafe fn start_remote(b: *mut Block, tag: bool) {
        // SAFETY: per the contract.
        unsafe { (*b).word = ptr::without_provenance_mut(tag as usize) }
    }

    /// Writes the cross-thread link of `b`, keeping its tag.
    ///
    /// # Safety
    /// `b` is a block being freed whose word was set by [`Block::start_remote`] (or is
    /// zero), and nobody else uses it; `next` is null or a block (8-byte aligned).
    #[inline(always)]
    pub unsafe fn set_remote_next(b: *mut Block, next: *mut Block) {
        debug_assert_eq!(next.addr() & REMOTE_TAG, 0);
        // SAFETY: per the contract.
        unsafe {
            let tag = (*b).word.addr() & REMOTE_TAG;
            (*b).word = next.map_addr(|a| a | tag);
        }
    }

    /// Length of a page list (walks it).
    ///
    /// # Safety
    /// Every block of the list from `b` is a free block with a valid link encoded with
    /// `key`, ending in null.
    pub unsafe fn chain_len(mut b: *mut Block, key: LinkKey) -> u32 {
        let mut n = 0;
        while !b.is_null() {
            n += 1;
            // SAFETY: per the contract.
            b = unsafe { Block::next(b, key) };
        }
        n
    }

    /// Length of a cross-thread chain (walks it; tests).
    ///
    /// # Safety
    /// Every block of the chain from `b` holds a cross-thread link, ending in null.
    #[cfg(any(test, loom))]
    pub unsafe fn remote_chain_len(mut b: *mut Block) -> u32 {
        let mut n = 0;
        while !b.is_null() {
            n += 1;
            // SAFETY: per the contract.
            b = unsafe { Block::remote_next(b) };
        }
        n
    }
}

/// Links of a node of a [`List`].
pub struct Links<T> {
    next: *mut T,
    prev: *mut T,
}

impl<T> Links<T> {
    pub const fn new() -> Self {
        Links {
            next: ptr::null_mut(),
            prev: ptr::null_mut(),
        }
    }

    /// The node has no predecessor: it is the first of its list, or on none.
    #[inline(always)]
    pub fn is_first(&self) -> bool {
        self.prev.is_null()
    }
}

/// A type whose values can be nodes of a [`List`].
///
/// # Safety
/// `links` returns a pointer to the node's own `Links`, valid as long as the node is.
pub unsafe trait Linked: Sized {
    /// The node's links.
    ///
    /// # Safety
    /// `this` points to a live node.
    unsafe fn links(this: *mut Self) -> *mut Links<Self>;
}

/// An intrusive doubly linked list. It holds raw node pointers and never owns the nodes:
/// whoever holds the list (a heap's owner thread, or a lock) has exclusive use of the links
/// of its nodes.
///
/// Invariants: `first.is_null() == last.is_null() == (count == 0)`; following `next` from
/// `first` visits `count` nodes and ends at `last`; `prev` mirrors `next`.
pub struct List<T: Linked> {
    first: *mut T,
    last: *mut T,
    count: usize,
    _nodes: PhantomData<*mut T>,
}

// SAFETY: the list only links nodes that its holder has exclusive use of (see the type
// docs); moving it between threads moves that exclusive use with it.
unsafe impl<T: Linked> Send for List<T> {}

impl<T: Linked> List<T> {
    pub const fn new() -> Self {
        List {
            first: ptr::null_mut(),
            last: ptr::null_mut(),
            count: 0,
            _nodes: PhantomData,
        }
    }

    #[inline]
    pub fn first(&self) -> *mut T {
        self.first
    }

    pub fn last(&self) -> *mut T {
        self.last
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The node after `node`.
    ///
    /// # Safety
    /// `node` is on this list.
    #[inline]
    pub unsafe fn next(&self, node: *mut T) -> *mut T {
        // SAFETY: nodes on the list are live (list contract).
        unsafe { (*T::links(node)).next }
    }

    /// # Safety
    /// `node` is live and on no list.
    pub unsafe fn push_front(&mut self, node: *mut T) {
        // SAFETY: node is live and unlinked; `first`, if any, is on this list.
        unsafe {
            let l = T::links(node);
            (*l).prev = ptr::null_mut();
            (*l).next = self.first;
            if self.first.is_null() {
                self.last = node;
            } else {
                (*T::links(self.first)).prev = node;
            }
        }
        self.first = node;
        self.count += 1;
        self.debug_check_ends();
    }

    /// # Safety
    /// `node` is live and on no list.
    pub unsafe fn push_back(&mut self, node: *mut T) {
        // SAFETY: node is live and unlinked; `last`, if any, is on this list.
        unsafe {
            let l = T::links(node);
            (*l).next = ptr::null_mut();
            (*l).prev = self.last;
            if self.last.is_null() {
                self.first = node;
            } else {
                (*T::links(self.last)).next = node;
            }
        }
        self.last = node;
        self.count += 1;
        self.debug_check_ends();
    }

    /// # Safety
    /// `node` is on this list.
    pub unsafe fn remove(&mut self, node: *mut T) {
        debug_assert!(self.count > 0, "remove from an empty list");
        // SAFETY: node and its neighbours are on this list.
        unsafe {
            let l = T::links(node);
            let (next, prev) = ((*l).next, (*l).prev);
            if prev.is_null() {
                debug_assert!(self.first == node, "node is not on this list");
                self.first = next;
            } else {
                (*T::links(prev)).next = next;
            }
            if next.is_null() {
                debug_assert!(self.last == node, "node is not on this list");
                self.last = prev;
            } else {
                (*T::links(next)).prev = prev;
            }
            (*l).next = ptr::null_mut();
            (*l).prev = ptr::null_mut();
        }
        self.count -= 1;
        self.debug_check_ends();
    }

    /// Takes the first node, or null.
    pub fn pop_front(&mut self) -> *mut T {
        let node = self.first;
        if !node.is_null() {
            // SAFETY: `node` is the first node of this list.
            unsafe { self.remove(node) };
        }
        node
    }

    /// Forgets every node (their links are left as they are).
    pub fn clear(&mut self) {
        *self = List::new();
    }

    #[inline]
    fn debug_check_ends(&self) {
        debug_assert_eq!(self.first.is_null(), self.count == 0);
        debug_assert_eq!(self.last.is_null(), self.count == 0);
    }

    /// Walks the whole list and checks the invariants (tests and `expensive-checks`).
    pub fn check(&self) {
        let mut n = 0;
        let mut prev: *mut T = ptr::null_mut();
        let mut node = self.first;
        while !node.is_null() {
            // SAFETY: nodes on the list are live.
            unsafe {
                assert_eq!((*T::links(node)).prev, prev, "list prev link");
                prev = node;
                node = (*T::links(node)).next;
            }
            n += 1;
        }
        assert_eq!(self.last, prev, "list last");
        assert_eq!(n, self.count, "list count");
    }
}

/// A multi-producer, single-consumer stack of blocks (a heap's remote-free queue).
pub struct BlockStack {
    head: AtomicPtr<Block>,
}

impl BlockStack {
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        BlockStack {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    #[cfg(loom)]
    pub fn new() -> Self {
        BlockStack {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Pushes the chain `first..=last` (linked through `next`) with one CAS.
    ///
    /// # Safety
    /// The chain's blocks are being freed by the caller: nobody else reads or writes them
    /// until the consumer takes them.
    #[inline]
    pub unsafe fn push_chain(&self, first: *mut Block, last: *mut Block) {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: `last` is ours until the CAS below publishes it.
            unsafe { Block::set_remote_next(last, head) };
            match self
                .head
                .compare_exchange_weak(head, first, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }

    /// Takes every pushed block (a null-terminated chain; null when empty).
    #[inline]
    pub fn take_all(&self) -> *mut Block {
        self.head.swap(ptr::null_mut(), Ordering::Acquire)
    }

    /// A hint: is anything queued? (One relaxed load; a push may land right after.)
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.head.load(Ordering::Relaxed).is_null()
    }
}

/// Bit 0 of a [`TaggedBlockStack`]: pushes are accepted.
const OPEN: usize = 1;

/// A multi-producer stack that accepts pushes only while open (an abandoned segment's
/// frees). Blocks are at least 8-byte aligned, so bit 0 of the head is free for the tag.
pub struct TaggedBlockStack {
    word: AtomicUsize,
}

impl TaggedBlockStack {
    /// A closed, empty stack.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        TaggedBlockStack {
            word: AtomicUsize::new(0),
        }
    }

    /// A closed, empty stack.
    #[cfg(loom)]
    pub fn new() -> Self {
        TaggedBlockStack {
            word: AtomicUsize::new(0),
        }
    }

    /// Opens the stack: from now on `try_push` succeeds.
    pub fn open(&self) {
        self.word.fetch_or(OPEN, Ordering::AcqRel);
    }

    /// Closes the stack and takes what was pushed while it was open.
    pub fn close_and_take(&self) -> *mut Block {
        (self.word.swap(0, Ordering::AcqRel) & !OPEN) as *mut Block
    }

    /// Pushes `block` if the stack is open; false (and `block` untouched) if closed.
    ///
    /// # Safety
    /// `block` is being freed by the caller and is at least 2-byte aligned.
    pub unsafe fn try_push(&self, block: *mut Block) -> bool {
        debug_assert_eq!(block as usize & OPEN, 0);
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            if word & OPEN == 0 {
                return false;
            }
            // SAFETY: the block is ours until the CAS publishes it.
            unsafe { Block::set_remote_next(block, (word & !OPEN) as *mut Block) };
            match self.word.compare_exchange_weak(
                word,
                block as usize | OPEN,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(now) => word = now,
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    struct Node {
        links: Links<Node>,
        value: u32,
    }

    // SAFETY: returns the node's own links.
    unsafe impl Linked for Node {
        unsafe fn links(this: *mut Self) -> *mut Links<Self> {
            // SAFETY: `this` is live (caller contract); no reference is created.
            unsafe { ptr::addr_of_mut!((*this).links) }
        }
    }

    #[test]
    fn list_push_remove_pop() {
        let mut nodes: Vec<Node> = (0..5)
            .map(|value| Node {
                links: Links::new(),
                value,
            })
            .collect();
        let p: Vec<*mut Node> = nodes.iter_mut().map(|n| n as *mut Node).collect();
        let mut list = List::new();
        // SAFETY: the nodes outlive the list's use of them and are each on one list.
        unsafe {
            list.push_back(p[1]);
            list.push_front(p[0]);
            list.push_back(p[2]);
            list.push_back(p[3]);
            list.check();
            list.remove(p[2]);
            list.check();
            assert_eq!(list.len(), 3);
            assert_eq!(list.next(p[1]), p[3]);
            list.remove(p[3]);
            assert_eq!(list.last(), p[1]);
            list.push_back(p[4]);
            list.check();
            let order: Vec<u32> =
                core::iter::from_fn(|| Some(list.pop_front()).filter(|n| !n.is_null()))
                    .map(|n| (*n).value)
                    .collect();
            assert_eq!(order, [0, 1, 4]);
        }
        assert!(list.is_empty());
        list.check();
    }

    #[test]
    fn stacks_push_and_take() {
        let mut words = [[0usize; 2]; 4];
        let b: Vec<*mut Block> = words.iter_mut().map(|w| w.as_mut_ptr().cast()).collect();
        let stack = BlockStack::new();
        assert!(stack.is_empty());
        // SAFETY: the words are ours and outlive the stacks.
        unsafe {
            Block::start_remote(b[0], false);
            Block::start_remote(b[1], true);
            Block::set_remote_next(b[0], b[1]);
            stack.push_chain(b[0], b[1]);
            Block::start_remote(b[2], false);
            stack.push_chain(b[2], b[2]);
            let chain = stack.take_all();
            assert_eq!(chain, b[2]);
            assert_eq!(Block::remote_chain_len(chain), 3);
            assert!(stack.is_empty());
            // Relinking keeps each block's tag.
            assert!(Block::remote_tag(b[1]) && !Block::remote_tag(b[0]));
            assert_eq!(Block::remote_next(b[0]), b[1]);

            let tagged = TaggedBlockStack::new();
            assert!(!tagged.try_push(b[3]));
            tagged.open();
            assert!(tagged.try_push(b[3]));
            assert!(tagged.try_push(b[0]));
            let taken = tagged.close_and_take();
            assert_eq!(Block::remote_chain_len(taken), 2);
            assert!(!tagged.try_push(b[1]));
            assert!(tagged.close_and_take().is_null());
        }
    }

    #[test]
    fn page_links_are_encoded_and_checked() {
        let mut words = [[0usize; 2]; 3];
        let b: Vec<*mut Block> = words.iter_mut().map(|w| w.as_mut_ptr().cast()).collect();
        let key = LinkKey::from_bits(0x1234_5678_9abc_def0);
        assert_ne!(key.bits() >> 63, 0, "bit 63 is always set");
        // SAFETY: the words are ours.
        unsafe {
            Block::set_next(b[0], b[1], key);
            Block::set_next(b[1], ptr::null_mut(), key);
            assert_ne!(b[0].cast::<usize>().read(), b[1] as usize, "stored encoded");
            assert_eq!(Block::next(b[0], key), b[1]);
            assert_eq!(Block::chain_len(b[0], key), 2);
            // Links in the same region, and null, are plausible.
            let mask = region_mask(b[0].cast());
            assert_eq!(Block::next(b[0], key).addr() & mask, 0);
            assert_eq!(Block::next(b[1], key).addr() & mask, 0);
            // An overwrite with ordinary data (a pointer, a small number, zero) is not.
            for junk in [b[2] as usize, 5, 0, usize::MAX >> 1] {
                b[0].cast::<usize>().write(junk);
                assert_ne!(Block::next(b[0], key).addr() & mask, 0, "{junk:#x}");
            }
            // A live block, cleared when handed out, does not look free.
            Block::set_next(b[2], b[0], key);
            Block::clear(b[2]);
            assert_ne!(Block::next(b[2], key).addr() & mask, 0);
        }
    }

    #[test]
    fn plausibility_is_a_region_test() {
        let mask = region_mask(0x7f12_3440_0010 as *const u8);
        for (next, plausible) in [
            (0x7f12_347f_fff0usize, true),
            (0, true),
            (0x7f12_3480_0010, false),
            (0x7f12_3400_0010, true), // a subset of the region bits: the rare false pass
            (0x8000_0000_0000_0000 | 0x7f12_3440_0010, false),
        ] {
            assert_eq!(next & mask == 0, plausible, "{next:#x}");
        }
    }
}
