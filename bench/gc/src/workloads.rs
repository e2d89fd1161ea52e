//! The workloads, written once as a macro and instantiated per pointer type.
//!
//! rust-cc-benchmarks' suite (binary trees, binary trees with parent pointers, a large
//! doubly linked list, the random-graph stress test) and dumpster's "multiref" churn.
//! Every collector variant uses *strong* back-pointers (that is the point: cycles); the
//! `Rc`/`Arc` baselines use `Weak` back-pointers, as in rust-cc-benchmarks.

/// A xorshift64* generator: deterministic, no dependency.
pub struct Rng(pub u64);

impl Rng {
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

pub const TREE_MIN: u32 = 4;
pub const TREE_MAX: u32 = 11;
pub const LISTS: usize = 30;
pub const LIST_LEN: usize = 4096;
pub const STRESS_NODES: usize = 1 << 15;
pub const STRESS_EDGES: usize = 1 << 15;
pub const STRESS_STEP: usize = 1 << 10;
pub const CHURN_OPS: usize = 1_000_000;
pub const CHURN_ROOTS: usize = 50;

/// The benchmarks-game schedule, given a function that builds, checks and drops a tree
/// of a given depth (returning its node count).
pub fn tree_schedule(mut tree: impl FnMut(u32) -> u64) -> u64 {
    let mut sum = tree(TREE_MAX + 1);
    for depth in (TREE_MIN..=TREE_MAX).step_by(2) {
        for _ in 0..1u32 << (TREE_MAX - depth + TREE_MIN) {
            sum += tree(depth);
        }
    }
    sum
}

/// Instantiates the workloads for a collector: `$P` its pointer, `$Cell` its cell type,
/// `$collect` its collection function, `$mutex_churn` whether a `Mutex` version exists.
macro_rules! collector_workloads {
    ($module:ident, $P:path, $Cell:path, $collect:path, [$(#[$derive:meta])*]) => {
        pub mod $module {
            #![allow(clippy::redundant_clone, dead_code)]
            use super::super::workloads::*;
            use $Cell as Cell;
            use $P as P;

            $(#[$derive])*
            pub struct Tree {
                pub l: Option<P<Tree>>,
                pub r: Option<P<Tree>>,
            }

            fn tree(depth: u32) -> P<Tree> {
                if depth == 0 {
                    P::new(Tree { l: None, r: None })
                } else {
                    P::new(Tree { l: Some(tree(depth - 1)), r: Some(tree(depth - 1)) })
                }
            }

            fn check(t: &Tree) -> u64 {
                1 + t.l.as_ref().map_or(0, |n| check(n)) + t.r.as_ref().map_or(0, |n| check(n))
            }

            pub fn binary_trees() -> u64 {
                let long_lived = tree(TREE_MAX);
                let sum = tree_schedule(|d| check(&tree(d))) + check(&long_lived);
                drop(long_lived);
                $collect();
                sum
            }

            $(#[$derive])*
            pub struct PTree {
                pub parent: Cell<Option<P<PTree>>>,
                pub l: Option<P<PTree>>,
                pub r: Option<P<PTree>>,
            }

            fn ptree(depth: u32) -> P<PTree> {
                let (l, r) = if depth == 0 {
                    (None, None)
                } else {
                    (Some(ptree(depth - 1)), Some(ptree(depth - 1)))
                };
                let node = P::new(PTree { parent: Cell::new(None), l, r });
                for child in [&node.l, &node.r].into_iter().flatten() {
                    *child.parent.borrow_mut() = Some(node.clone());
                }
                node
            }

            fn pcheck(t: &PTree) -> u64 {
                let up = t.parent.borrow().is_some() as u64;
                up + t.l.as_ref().map_or(0, |n| pcheck(n)) + t.r.as_ref().map_or(0, |n| pcheck(n))
            }

            pub fn parent_trees() -> u64 {
                let long_lived = ptree(TREE_MAX);
                let sum = tree_schedule(|d| {
                    let n = pcheck(&ptree(d));
                    $collect();
                    n
                }) + pcheck(&long_lived);
                drop(long_lived);
                $collect();
                sum
            }

            $(#[$derive])*
            pub struct List {
                pub next: Option<P<List>>,
                pub prev: Cell<Option<P<List>>>,
            }

            pub fn linked_list() -> u64 {
                let mut sum = 0;
                for _ in 0..LISTS {
                    let mut head = P::new(List { next: None, prev: Cell::new(None) });
                    for _ in 1..LIST_LEN {
                        let node = P::new(List { next: Some(head.clone()), prev: Cell::new(None) });
                        *head.prev.borrow_mut() = Some(node.clone());
                        head = node;
                    }
                    sum += head.next.is_some() as u64;
                    drop(head);
                    $collect();
                }
                sum
            }

            $(#[$derive])*
            pub struct Graph {
                pub edges: Cell<Vec<P<Graph>>>,
            }

            fn graph_node() -> P<Graph> {
                P::new(Graph { edges: Cell::new(Vec::new()) })
            }

            pub fn stress() -> u64 {
                let mut rng = Rng(0x2545_f491);
                let mut roots: Vec<P<Graph>> = (0..STRESS_NODES).map(|_| graph_node()).collect();
                for _ in 0..STRESS_EDGES {
                    let (a, b) = (rng.below(roots.len()), rng.below(roots.len()));
                    let target = roots[b].clone();
                    roots[a].edges.borrow_mut().push(target);
                }
                let mut steps = 0;
                while !roots.is_empty() {
                    roots.truncate(roots.len().saturating_sub(STRESS_STEP));
                    $collect();
                    steps += 1;
                }
                steps
            }

            pub fn churn() -> u64 {
                let mut rng = Rng(12345);
                let mut roots: Vec<P<Graph>> = (0..CHURN_ROOTS).map(|_| graph_node()).collect();
                for _ in 0..CHURN_OPS {
                    match rng.below(4) {
                        0 => roots.push(graph_node()),
                        1 if !roots.is_empty() => {
                            let b = roots[rng.below(roots.len())].clone();
                            roots[rng.below(roots.len())].edges.borrow_mut().push(b);
                        }
                        2 if !roots.is_empty() => {
                            let i = rng.below(roots.len());
                            roots.swap_remove(i);
                        }
                        3 if !roots.is_empty() => {
                            let a = &roots[rng.below(roots.len())];
                            let removed = {
                                let mut edges = a.edges.borrow_mut();
                                if edges.is_empty() {
                                    None
                                } else {
                                    let i = rng.below(edges.len());
                                    Some(edges.swap_remove(i))
                                }
                            };
                            drop(removed);
                        }
                        _ => {}
                    }
                }
                let n = roots.len() as u64;
                drop(roots);
                $collect();
                n
            }
        }
    };
}

/// The thread-safe churn: `n_threads × 10` mutex-protected root vectors of 50 nodes,
/// `CHURN_OPS` operations split across the threads (seed 12345 + thread index).
macro_rules! sync_churn {
    ($module:ident, $P:path, $collect:path, [$(#[$derive:meta])*]) => {
        pub mod $module {
            use super::super::workloads::*;
            use std::sync::Mutex;
            use $P as P;

            $(#[$derive])*
            pub struct Node {
                pub edges: Mutex<Vec<P<Node>>>,
            }

            fn node() -> P<Node> {
                P::new(Node { edges: Mutex::new(Vec::new()) })
            }

            fn pick(slots: &[Mutex<Vec<P<Node>>>], rng: &mut Rng) -> Option<P<Node>> {
                let slot = slots[rng.below(slots.len())].lock().unwrap();
                if slot.is_empty() {
                    None
                } else {
                    Some(slot[rng.below(slot.len())].clone())
                }
            }

            pub fn churn(threads: usize) -> u64 {
                let slots: Vec<Mutex<Vec<P<Node>>>> = (0..threads * 10)
                    .map(|_| Mutex::new((0..CHURN_ROOTS).map(|_| node()).collect()))
                    .collect();
                std::thread::scope(|s| {
                    for t in 0..threads {
                        let slots = &slots;
                        s.spawn(move || {
                            let mut rng = Rng(12345 + t as u64);
                            for _ in 0..CHURN_OPS / threads {
                                match rng.below(4) {
                                    0 => {
                                        let n = node();
                                        slots[rng.below(slots.len())].lock().unwrap().push(n);
                                    }
                                    1 => {
                                        if let (Some(a), Some(b)) = (pick(slots, &mut rng), pick(slots, &mut rng)) {
                                            a.edges.lock().unwrap().push(b);
                                        }
                                    }
                                    2 => {
                                        let removed = {
                                            let mut slot = slots[rng.below(slots.len())].lock().unwrap();
                                            if slot.is_empty() {
                                                None
                                            } else {
                                                let i = rng.below(slot.len());
                                                Some(slot.swap_remove(i))
                                            }
                                        };
                                        drop(removed);
                                    }
                                    _ => {
                                        if let Some(a) = pick(slots, &mut rng) {
                                            let removed = {
                                                let mut edges = a.edges.lock().unwrap();
                                                if edges.is_empty() {
                                                    None
                                                } else {
                                                    let i = rng.below(edges.len());
                                                    Some(edges.swap_remove(i))
                                                }
                                            };
                                            drop(removed);
                                        }
                                    }
                                }
                            }
                        });
                    }
                });
                let n = slots.iter().map(|s| s.lock().unwrap().len() as u64).sum();
                drop(slots);
                $collect();
                n
            }
        }
    };
}

pub(crate) use {collector_workloads, sync_churn};
