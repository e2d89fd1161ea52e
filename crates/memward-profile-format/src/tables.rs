//! Lookup tables a reader of profiles builds from the records: the stack trie (stack id
//! to frames) and the module map (address to module). Kept here so every consumer
//! resolves ids and addresses the same way.

use crate::record::{Module, StackNode};

/// The stack trie, indexed by node id; id 0 is the empty stack.
///
/// ```
/// use memward_profile_format::{StackNode, StackTable};
/// let mut t = StackTable::default();
/// t.insert(StackNode { id: 1, parent: 0, address: 0x10 }).unwrap();
/// t.insert(StackNode { id: 2, parent: 1, address: 0x20 }).unwrap();
/// assert_eq!(t.frames(2).collect::<Vec<_>>(), [0x20, 0x10]);
/// assert_eq!(t.frames(0).count(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct StackTable {
    /// (parent, address) per id; entry 0 is the root.
    nodes: Vec<(u32, u64)>,
}

impl Default for StackTable {
    fn default() -> Self {
        StackTable {
            nodes: vec![(0, 0)],
        }
    }
}

/// A stack node that cannot be added to the table.
///
/// ```
/// use memward_profile_format::{StackNode, StackTable};
/// let mut t = StackTable::default();
/// assert!(t.insert(StackNode { id: 5, parent: 0, address: 1 }).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadNode(pub StackNode);

impl std::fmt::Display for BadNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stack node {} (parent {}) does not extend the table",
            self.0.id, self.0.parent
        )
    }
}

impl std::error::Error for BadNode {}

impl StackTable {
    /// Adds a node. Ids must come in order (each the next id, its parent an earlier one);
    /// a node that repeats an existing id with the same contents is accepted (a forked
    /// child re-sends the trie).
    ///
    /// ```
    /// # use memward_profile_format::{StackNode, StackTable};
    /// let mut t = StackTable::default();
    /// let n = StackNode { id: 1, parent: 0, address: 7 };
    /// t.insert(n).unwrap();
    /// t.insert(n).unwrap();
    /// assert_eq!(t.len(), 2);
    /// ```
    pub fn insert(&mut self, n: StackNode) -> Result<(), BadNode> {
        let id = n.id as usize;
        if n.id == 0 || n.parent >= n.id {
            return Err(BadNode(n));
        }
        if id == self.nodes.len() {
            self.nodes.push((n.parent, n.address));
            Ok(())
        } else if self.nodes.get(id) == Some(&(n.parent, n.address)) {
            Ok(())
        } else {
            Err(BadNode(n))
        }
    }

    /// Number of ids, the root included.
    ///
    /// ```
    /// assert_eq!(memward_profile_format::StackTable::default().len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether only the root is present.
    ///
    /// ```
    /// assert!(memward_profile_format::StackTable::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.nodes.len() == 1
    }

    /// The node's parent and address; `None` for unknown ids and the root.
    ///
    /// ```
    /// # use memward_profile_format::{StackNode, StackTable};
    /// let mut t = StackTable::default();
    /// t.insert(StackNode { id: 1, parent: 0, address: 9 }).unwrap();
    /// assert_eq!(t.node(1), Some((0, 9)));
    /// assert_eq!(t.node(0), None);
    /// ```
    pub fn node(&self, id: u32) -> Option<(u32, u64)> {
        if id == 0 {
            return None;
        }
        self.nodes.get(id as usize).copied()
    }

    /// The stack's addresses, innermost (the allocation's caller) first. Unknown ids give
    /// an empty stack.
    ///
    /// ```
    /// # use memward_profile_format::StackTable;
    /// assert_eq!(StackTable::default().frames(99).count(), 0);
    /// ```
    pub fn frames(&self, id: u32) -> impl Iterator<Item = u64> + '_ {
        let mut cur = id;
        std::iter::from_fn(move || {
            let (parent, addr) = self.node(cur)?;
            cur = parent;
            Some(addr)
        })
    }
}

/// The modules of a process, in the order the file introduced them; lookups prefer the
/// latest module covering an address (a library unloaded and another loaded in its place).
///
/// ```
/// use memward_profile_format::{Module, ModuleMap, Segment};
/// let mut m = ModuleMap::default();
/// m.insert(Module {
///     id: 1,
///     path: b"/bin/prog".to_vec(),
///     segments: vec![Segment { start: 0x1000, len: 0x1000, file_offset: 0, flags: Segment::EXEC }],
///     ..Default::default()
/// });
/// assert_eq!(m.find(0x1fff).map(|m| m.id), Some(1));
/// assert!(m.find(0x2000).is_none());
/// ```
#[derive(Debug, Clone, Default)]
pub struct ModuleMap {
    modules: Vec<Module>,
}

impl ModuleMap {
    /// Adds a module (a repeated id replaces the earlier entry).
    ///
    /// ```
    /// # use memward_profile_format::{Module, ModuleMap};
    /// let mut m = ModuleMap::default();
    /// m.insert(Module { id: 1, ..Default::default() });
    /// m.insert(Module { id: 1, ..Default::default() });
    /// assert_eq!(m.modules().len(), 1);
    /// ```
    pub fn insert(&mut self, module: Module) {
        if let Some(old) = self.modules.iter_mut().find(|m| m.id == module.id) {
            *old = module;
        } else {
            self.modules.push(module);
        }
    }

    /// The module whose segments contain `addr`.
    ///
    /// ```
    /// # use memward_profile_format::ModuleMap;
    /// assert!(ModuleMap::default().find(0x1000).is_none());
    /// ```
    pub fn find(&self, addr: u64) -> Option<&Module> {
        self.modules
            .iter()
            .rev()
            .find(|m| m.segment_of(addr).is_some())
    }

    /// All modules, in file order.
    ///
    /// ```
    /// # use memward_profile_format::ModuleMap;
    /// assert!(ModuleMap::default().modules().is_empty());
    /// ```
    pub fn modules(&self) -> &[Module] {
        &self.modules
    }
}
