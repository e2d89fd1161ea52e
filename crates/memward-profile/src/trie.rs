//! The stack trie: every distinct stack becomes a chain of (parent, return address) nodes,
//! each written to the profile once, so an event names its stack with one id (heaptrack's
//! trace tree works the same way).
//!
//! Threads look stacks up at once, without a lock; only adding a node takes the trie's
//! lock, so a stack seen before never does. The (parent, address) → id index is an
//! open-addressing table of 64-bit atomics in its own mapping: a slot is written once
//! (address, then the parent and id word with release order, so a reader that sees the
//! id sees the address) and never changes. At half load the adder builds a table twice
//! the size and publishes it with one atomic store; the old table is never unmapped (a
//! reader may still be probing it, and finds there every node it held: a node it misses
//! sends it to the lock, where the current table is searched again). The tables leaked
//! that way add up to less than the last one.
//!
//! A small direct-mapped front cache keeps recently used entries in the processor's cache
//! while the index grows to millions of entries. Its slots are overwritten by any thread,
//! so each holds the address xor a mix of its parent and id word, as the unwinder's rule
//! table does: a reader that catches a slot half rewritten sees a key that does not match
//! and goes on to the index.
//!
//! Nodes themselves (for a forked child's new file) live in a mapping sized for the worst
//! case, touched in order as nodes are added, under the lock. Nothing comes from the
//! profiled heap.

use crate::lock::SpinLock;
use crate::sys::{Region, ZeroValid};
use core::sync::atomic::{AtomicU64, Ordering};

/// Most nodes a profile can hold (16 bytes each, reserved up front, touched on use).
const MAX_NODES: usize = 1 << 26;

/// Slots of the first index table (a power of two).
const FIRST_SLOTS: usize = 4096;

/// Entries of the front cache (a power of two).
const FRONT: usize = 4096;

#[derive(Clone, Copy)]
#[repr(C)]
struct Node {
    address: u64,
    parent: u32,
    _pad: u32,
}

// SAFETY: integers only.
unsafe impl ZeroValid for Node {}

/// What only the adder touches.
struct Adder {
    nodes: Region,
    /// Node ids in use are 1..=count; index 0 is the root.
    count: u32,
    /// The current index (two words per slot) and its slot mask.
    table: &'static [AtomicU64],
    mask: usize,
}

/// The trie.
pub struct Trie {
    adder: SpinLock<Adder>,
    /// The current index for readers: its address, with log2 of its slot count in the low
    /// bits (the mapping is page-aligned).
    index: AtomicU64,
    front: Option<&'static [AtomicU64]>,
}

fn hash(parent: u32, address: u64) -> usize {
    let h = (address ^ (u64::from(parent) << 40) ^ u64::from(parent))
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h ^ (h >> 29)) as usize
}

#[inline]
fn mix(meta: u64) -> u64 {
    meta.wrapping_mul(0xff51_afd7_ed55_8ccd)
}

/// The word that names a node in a slot: its parent and its id (never 0: ids start at 1).
#[inline]
fn meta(parent: u32, id: u32) -> u64 {
    u64::from(parent) << 32 | u64::from(id)
}

fn descriptor(table: &'static [AtomicU64]) -> u64 {
    let slots = table.len() / 2;
    table.as_ptr() as u64 | u64::from(slots.trailing_zeros())
}

fn new_table(slots: usize) -> Option<&'static [AtomicU64]> {
    Region::map(slots * 16).map(Region::leak_atomics)
}

impl Trie {
    /// An empty trie; `None` if memory cannot be mapped.
    pub fn new() -> Option<Trie> {
        let nodes = Region::map(MAX_NODES * core::mem::size_of::<Node>())?;
        let table = new_table(FIRST_SLOTS)?;
        Some(Trie {
            adder: SpinLock::new(Adder {
                nodes,
                count: 0,
                table,
                mask: FIRST_SLOTS - 1,
            }),
            index: AtomicU64::new(descriptor(table)),
            front: Region::map(FRONT * 16).map(Region::leak_atomics),
        })
    }

    /// Number of nodes.
    #[cfg(test)]
    #[allow(clippy::len_without_is_empty)] // a test helper; a trie always has its root
    pub fn len(&self) -> u32 {
        self.adder.lock().count
    }

    /// The id of the stack `frames` (innermost first), adding the nodes it lacks and
    /// passing each new one to `on_new(id, parent, address)`. Returns 0 (the empty stack)
    /// for no frames, and the longest known prefix's id if the trie is full.
    #[cfg(test)]
    pub fn intern(&self, frames: &[u64], on_new: impl FnMut(u32, u32, u64)) -> u32 {
        let mut ids = [0u32; 256];
        let n = frames.len().min(ids.len());
        self.intern_from(&frames[..n], 0, &mut ids[..n], on_new)
            .unwrap_or(0)
    }

    /// Like `intern`, for the frames inside an already known stack `parent` (the id of
    /// the frames outside them): fills `ids[i]` with the id of `frames[i..]` plus the
    /// outer part, and returns the id of the whole stack. `None` if the trie is full.
    ///
    /// Known nodes are found without a lock. New ones are added under the trie's lock,
    /// and `on_new` runs under it, before any other thread can find the node: whatever
    /// it records about the node (the recorder takes the event sequence number there)
    /// comes before every use of the node by another thread.
    pub fn intern_from(
        &self,
        frames: &[u64],
        mut parent: u32,
        ids: &mut [u32],
        mut on_new: impl FnMut(u32, u32, u64),
    ) -> Option<u32> {
        let mut adder = None;
        for i in (0..frames.len()).rev() {
            parent = match self.find(parent, frames[i]) {
                Some(id) => id,
                None => {
                    let a = adder.get_or_insert_with(|| self.adder.lock());
                    self.add(a, parent, frames[i], &mut on_new)?
                }
            };
            ids[i] = parent;
        }
        Some(parent)
    }

    /// The current index table, for readers.
    #[inline]
    fn current(&self) -> &'static [AtomicU64] {
        let d = self.index.load(Ordering::Acquire);
        let ptr = (d & !0xfff) as *const AtomicU64;
        let slots = 1usize << (d & 0xfff);
        // SAFETY: `d` was made by `descriptor` from a table that `new_table` leaked (never
        // unmapped) of exactly `slots` two-word slots; the acquire load pairs with the
        // release store that published it, after its slots were filled.
        unsafe { core::slice::from_raw_parts(ptr, slots * 2) }
    }

    /// The id of node (parent, address), if it exists; no lock.
    #[inline]
    fn find(&self, parent: u32, address: u64) -> Option<u32> {
        let h = hash(parent, address);
        let front = self.front.map(|f| &f[(h & (FRONT - 1)) * 2..][..2]);
        if let Some(f) = front {
            let m = f[1].load(Ordering::Acquire);
            let key = f[0].load(Ordering::Acquire);
            if m != 0 && (m >> 32) as u32 == parent && key == address ^ mix(m) {
                return Some(m as u32);
            }
        }
        let table = self.current();
        let mask = table.len() / 2 - 1;
        let mut i = h & mask;
        loop {
            let m = table[2 * i + 1].load(Ordering::Acquire);
            if m == 0 {
                return None;
            }
            if (m >> 32) as u32 == parent && table[2 * i].load(Ordering::Relaxed) == address {
                if let Some(f) = front {
                    // The key first goes to a value no reader's address matches.
                    f[0].store(0, Ordering::Release);
                    f[1].store(m, Ordering::Release);
                    f[0].store(address ^ mix(m), Ordering::Release);
                }
                return Some(m as u32);
            }
            i = (i + 1) & mask;
        }
    }

    /// Adds node (parent, address) unless another thread has (the caller holds the
    /// lock); `None` if the trie is full.
    fn add(
        &self,
        a: &mut Adder,
        parent: u32,
        address: u64,
        on_new: &mut impl FnMut(u32, u32, u64),
    ) -> Option<u32> {
        let mut i = hash(parent, address) & a.mask;
        loop {
            let m = a.table[2 * i + 1].load(Ordering::Relaxed);
            if m == 0 {
                break;
            }
            if (m >> 32) as u32 == parent && a.table[2 * i].load(Ordering::Relaxed) == address {
                return Some(m as u32);
            }
            i = (i + 1) & a.mask;
        }
        if a.count as usize + 1 >= MAX_NODES {
            return None;
        }
        a.count += 1;
        let id = a.count;
        a.nodes.slice_of::<Node>()[id as usize] = Node {
            address,
            parent,
            _pad: 0,
        };
        on_new(id, parent, address);
        a.table[2 * i].store(address, Ordering::Relaxed);
        a.table[2 * i + 1].store(meta(parent, id), Ordering::Release);
        if (a.count as usize) * 2 > a.mask {
            self.grow(a);
        }
        Some(id)
    }

    /// Doubles the index; on failure to map, keeps the old one (lookups get slower).
    fn grow(&self, a: &mut Adder) {
        let cap = (a.mask + 1) * 2;
        let Some(table) = new_table(cap) else {
            return;
        };
        let mask = cap - 1;
        for old in a.table.chunks_exact(2) {
            let m = old[1].load(Ordering::Relaxed);
            if m == 0 {
                continue;
            }
            let address = old[0].load(Ordering::Relaxed);
            let mut i = hash((m >> 32) as u32, address) & mask;
            while table[2 * i + 1].load(Ordering::Relaxed) != 0 {
                i = (i + 1) & mask;
            }
            table[2 * i].store(address, Ordering::Relaxed);
            table[2 * i + 1].store(m, Ordering::Relaxed);
        }
        self.index.store(descriptor(table), Ordering::Release);
        a.table = table;
        a.mask = mask;
    }

    /// The return address and parent of node `id` (`None` for 0, the empty stack, and
    /// for ids not handed out): walking parents from a stack id gives its frames,
    /// innermost first.
    pub fn node(&self, id: u32) -> Option<(u64, u32)> {
        let mut a = self.adder.lock();
        if id == 0 || id > a.count {
            return None;
        }
        let n = a.nodes.slice_of::<Node>()[id as usize];
        Some((n.address, n.parent))
    }

    /// Every node in id order, for a forked child's new file.
    pub fn for_each(&self, mut f: impl FnMut(u32, u32, u64)) {
        let mut a = self.adder.lock();
        let count = a.count as usize;
        for (id, n) in a.nodes.slice_of::<Node>()[1..=count].iter().enumerate() {
            f(id as u32 + 1, n.parent, n.address);
        }
    }

    /// [`Trie::for_each`] for the thread that holds the lock through [`Trie::hold`].
    ///
    /// # Safety
    /// The caller took the lock with `hold` and holds no guard of it.
    pub unsafe fn for_each_held(&self, mut f: impl FnMut(u32, u32, u64)) {
        // SAFETY: per the contract, the lock is ours and no other reference exists.
        let a = unsafe { self.adder.get_locked() };
        let count = a.count as usize;
        for (id, n) in a.nodes.slice_of::<Node>()[1..=count].iter().enumerate() {
            f(id as u32 + 1, n.parent, n.address);
        }
    }

    /// Takes the trie's lock and keeps it (`fork`'s prepare handler: a forked child must
    /// not inherit it held by a thread that does not exist there).
    pub fn hold(&self) {
        self.adder.lock_forever();
    }

    /// Releases the lock [`Trie::hold`] took.
    ///
    /// # Safety
    /// The caller took it with `hold` and holds no other guard of it.
    pub unsafe fn release(&self) {
        // SAFETY: per the contract.
        unsafe { self.adder.force_unlock() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_prefixes_and_reports_new_nodes_once() {
        let t = Trie::new().unwrap();
        let mut new = Vec::new();
        let a = t.intern(&[3, 2, 1], |id, p, addr| new.push((id, p, addr)));
        assert_eq!(new, [(1, 0, 1), (2, 1, 2), (3, 2, 3)]);
        new.clear();
        let b = t.intern(&[4, 2, 1], |id, p, addr| new.push((id, p, addr)));
        assert_eq!(new, [(4, 2, 4)]);
        assert_eq!((a, b), (3, 4));
        assert_eq!(t.intern(&[3, 2, 1], |_, _, _| panic!("known")), 3);
        assert_eq!(t.intern(&[], |_, _, _| panic!("empty")), 0);
        assert_eq!(t.node(4), Some((4, 2)));
        assert_eq!(t.node(5), None);
    }

    #[test]
    fn interns_inside_a_known_outer_stack() {
        let t = Trie::new().unwrap();
        let outer = t.intern(&[2, 1], |_, _, _| {});
        let mut ids = [0u32; 2];
        let mut new = Vec::new();
        let id = t.intern_from(&[4, 3], outer, &mut ids, |id, p, a| new.push((id, p, a)));
        assert_eq!(id, Some(ids[0]));
        assert_eq!(new, [(3, 2, 3), (4, 3, 4)]);
        assert_eq!(ids, [4, 3]);
        assert_eq!(t.intern(&[4, 3, 2, 1], |_, _, _| panic!("known")), 4);
        assert_eq!(
            t.intern_from(&[], outer, &mut [], |_, _, _| {}),
            Some(outer)
        );
    }

    #[test]
    fn grows_past_its_first_table() {
        let t = Trie::new().unwrap();
        let mut ids = Vec::new();
        for i in 0..20_000u64 {
            ids.push(t.intern(&[i * 16 + 1, 7], |_, _, _| {}));
        }
        for i in 0..20_000u64 {
            assert_eq!(
                t.intern(&[i * 16 + 1, 7], |_, _, _| panic!()),
                ids[i as usize]
            );
        }
        assert_eq!(t.len(), 20_001);
        let mut n = 0;
        t.for_each(|id, parent, _| {
            assert!(parent < id);
            n += 1;
        });
        assert_eq!(n, 20_001);
    }

    /// Threads interning overlapping stacks at once (the index growing under them) agree
    /// on every id, and each node is reported exactly once.
    #[test]
    fn threads_agree_on_ids_while_the_index_grows() {
        let t = Trie::new().unwrap();
        let reported = std::sync::Mutex::new(Vec::new());
        let results: Vec<Vec<u32>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8u64)
                .map(|k| {
                    let (t, reported) = (&t, &reported);
                    s.spawn(move || {
                        (0..6_000u64)
                            .map(|i| {
                                // Every thread walks the same stacks, from a different start.
                                let i = (i + k * 750) % 6_000;
                                t.intern(&[i * 8 + 3, i % 50 + 1, 9], |id, p, a| {
                                    reported.lock().unwrap().push((id, p, a))
                                })
                            })
                            .collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut reported = reported.into_inner().unwrap();
        reported.sort_unstable();
        let count = t.len() as usize;
        assert_eq!(reported.len(), count, "each node reported once");
        for (i, r) in reported.iter().enumerate() {
            assert_eq!(r.0 as usize, i + 1);
        }
        for (k, ids) in results.iter().enumerate() {
            for (i, id) in ids.iter().enumerate() {
                let j = (i as u64 + k as u64 * 750) % 6_000;
                assert_eq!(
                    *id,
                    t.intern(&[j * 8 + 3, j % 50 + 1, 9], |_, _, _| panic!())
                );
            }
        }
    }
}
