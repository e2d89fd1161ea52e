//! The stack trie: every distinct stack becomes a chain of (parent, return address) nodes,
//! each written to the profile once, so an event names its stack with one id (heaptrack's
//! trace tree works the same way).
//!
//! Nodes live in a mapping sized for the worst case (pages are touched as nodes are
//! added, in order); the (parent, address) → id index is an open-addressing table in its
//! own mapping, doubled and rebuilt at half load, so its touched pages grow with the
//! number of nodes rather than with a fixed capacity. Nothing comes from the profiled heap.

use crate::sys::{Region, ZeroValid};

/// Most nodes a profile can hold (16 bytes each, reserved up front, touched on use).
const MAX_NODES: usize = 1 << 26;

#[derive(Clone, Copy)]
#[repr(C)]
struct Node {
    address: u64,
    parent: u32,
    _pad: u32,
}

// SAFETY: integers only.
unsafe impl ZeroValid for Node {}

#[derive(Clone, Copy)]
#[repr(C)]
struct Slot {
    address: u64,
    parent: u32,
    /// 0: empty.
    id: u32,
}

// SAFETY: integers only; zero is the empty slot.
unsafe impl ZeroValid for Slot {}

/// The trie.
pub struct Trie {
    nodes: Region,
    /// Node ids in use are 1..=count; index 0 is the root.
    count: u32,
    table: Region,
    mask: usize,
    /// A small direct-mapped copy of recently used index entries, in front of the index:
    /// the few stacks a program allocates from most stay in the processor's cache, while
    /// the index grows to millions of entries.
    front: Option<Region>,
}

/// Entries of the front cache (a power of two).
const FRONT: usize = 4096;

fn hash(parent: u32, address: u64) -> usize {
    let h = (address ^ (u64::from(parent) << 40) ^ u64::from(parent))
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h ^ (h >> 29)) as usize
}

impl Trie {
    /// An empty trie; `None` if memory cannot be mapped.
    pub fn new() -> Option<Trie> {
        let nodes = Region::map(MAX_NODES * core::mem::size_of::<Node>())?;
        let table = Region::map(4096 * core::mem::size_of::<Slot>())?;
        Some(Trie {
            nodes,
            count: 0,
            table,
            mask: 4096 - 1,
            front: Region::map(FRONT * core::mem::size_of::<Slot>()),
        })
    }

    /// Number of nodes.
    #[cfg(test)]
    #[allow(clippy::len_without_is_empty)] // a test helper; a trie always has its root
    pub fn len(&self) -> u32 {
        self.count
    }

    /// The id of the stack `frames` (innermost first), adding the nodes it lacks and
    /// passing each new one to `on_new(id, parent, address)`. Returns 0 (the empty stack)
    /// for no frames, and the longest known prefix's id if the trie is full.
    #[cfg(test)]
    pub fn intern(&mut self, frames: &[u64], mut on_new: impl FnMut(u32, u32, u64)) -> u32 {
        let mut parent = 0;
        for &address in frames.iter().rev() {
            match self.child(parent, address, &mut on_new) {
                Some(id) => parent = id,
                None => break,
            }
        }
        parent
    }

    /// Like `intern`, for the frames inside an already known stack `parent` (the id of
    /// the frames outside them): fills `ids[i]` with the id of `frames[i..]` plus the
    /// outer part, and returns the id of the whole stack. `None` if the trie is full.
    pub fn intern_from(
        &mut self,
        frames: &[u64],
        mut parent: u32,
        ids: &mut [u32],
        mut on_new: impl FnMut(u32, u32, u64),
    ) -> Option<u32> {
        for i in (0..frames.len()).rev() {
            parent = self.child(parent, frames[i], &mut on_new)?;
            ids[i] = parent;
        }
        Some(parent)
    }

    fn child(
        &mut self,
        parent: u32,
        address: u64,
        on_new: &mut impl FnMut(u32, u32, u64),
    ) -> Option<u32> {
        let h = hash(parent, address);
        let front = self
            .front
            .as_mut()
            .map(|f| &mut f.slice_of::<Slot>()[h & (FRONT - 1)]);
        if let Some(f) = &front {
            if f.id != 0 && f.address == address && f.parent == parent {
                return Some(f.id);
            }
        }
        let mask = self.mask;
        let table = self.table.slice_of::<Slot>();
        let mut i = h & mask;
        loop {
            let s = table[i];
            if s.id == 0 {
                break;
            }
            if s.address == address && s.parent == parent {
                if let Some(f) = front {
                    *f = s;
                }
                return Some(s.id);
            }
            i = (i + 1) & mask;
        }
        if self.count as usize + 1 >= MAX_NODES {
            return None;
        }
        self.count += 1;
        let id = self.count;
        table[i] = Slot {
            address,
            parent,
            id,
        };
        self.nodes.slice_of::<Node>()[id as usize] = Node {
            address,
            parent,
            _pad: 0,
        };
        on_new(id, parent, address);
        if (self.count as usize) * 2 > self.mask {
            self.grow();
        }
        Some(id)
    }

    /// Doubles the index; on failure to map, keeps the old one (lookups get slower).
    fn grow(&mut self) {
        let cap = (self.mask + 1) * 2;
        let Some(mut table) = Region::map(cap * core::mem::size_of::<Slot>()) else {
            return;
        };
        let mask = cap - 1;
        {
            let new = table.slice_of::<Slot>();
            for s in self.table.slice_of::<Slot>().iter().filter(|s| s.id != 0) {
                let mut i = hash(s.parent, s.address) & mask;
                while new[i].id != 0 {
                    i = (i + 1) & mask;
                }
                new[i] = *s;
            }
        }
        self.table = table;
        self.mask = mask;
    }

    /// The address ranges of the trie's own mappings (its nodes, its index, its front
    /// cache), for a leak scan that must not take them for roots: they are reserved for
    /// the worst case, and reading their untouched pages costs a page fault each.
    pub fn mappings(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        [Some(&self.nodes), Some(&self.table), self.front.as_ref()]
            .into_iter()
            .flatten()
            .map(Region::range)
    }

    /// The return address and parent of node `id` (`None` for 0, the empty stack, and
    /// for ids not handed out): walking parents from a stack id gives its frames,
    /// innermost first.
    pub fn node(&mut self, id: u32) -> Option<(u64, u32)> {
        if id == 0 || id > self.count {
            return None;
        }
        let n = self.nodes.slice_of::<Node>()[id as usize];
        Some((n.address, n.parent))
    }

    /// Every node in id order, for a forked child's new file.
    pub fn for_each(&mut self, mut f: impl FnMut(u32, u32, u64)) {
        let count = self.count as usize;
        for (id, n) in self.nodes.slice_of::<Node>()[1..=count].iter().enumerate() {
            f(id as u32 + 1, n.parent, n.address);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_prefixes_and_reports_new_nodes_once() {
        let mut t = Trie::new().unwrap();
        let mut new = Vec::new();
        let a = t.intern(&[3, 2, 1], |id, p, addr| new.push((id, p, addr)));
        assert_eq!(new, [(1, 0, 1), (2, 1, 2), (3, 2, 3)]);
        new.clear();
        let b = t.intern(&[4, 2, 1], |id, p, addr| new.push((id, p, addr)));
        assert_eq!(new, [(4, 2, 4)]);
        assert_eq!((a, b), (3, 4));
        assert_eq!(t.intern(&[3, 2, 1], |_, _, _| panic!("known")), 3);
        assert_eq!(t.intern(&[], |_, _, _| panic!("empty")), 0);
    }

    #[test]
    fn interns_inside_a_known_outer_stack() {
        let mut t = Trie::new().unwrap();
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
        let mut t = Trie::new().unwrap();
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
}
