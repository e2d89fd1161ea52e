//! Random graphs against a reachability model.
//!
//! Each case runs a random sequence of operations on thread-local `Gc` nodes (allocate,
//! link, unlink, clone and drop roots, upgrade weak handles, collect) and mirrors it in a
//! plain graph model. After every operation: no reachable node has been dropped, no node
//! was dropped twice, every node that plain reference counting frees is dropped, and
//! weak handles upgrade exactly while their node's destructor has not run. After every
//! `collect()`: every unreachable node is dropped. At the end every node is dropped once
//! and every byte comes back.
use crate::support::live_bytes;
use memward_gc::{collect, Gc, Trace, Weak};
use proptest::prelude::*;
use proptest::sample::Index;
use std::cell::RefCell;
use std::rc::Rc;

type DropLog = Rc<RefCell<Vec<u32>>>;

struct Token {
    id: usize,
    log: DropLog,
}

impl Drop for Token {
    fn drop(&mut self) {
        self.log.borrow_mut()[self.id] += 1;
    }
}

#[derive(Trace)]
struct Node {
    #[trace(skip)]
    id: usize,
    edges: RefCell<Vec<Gc<Node>>>,
    #[trace(skip)]
    token: Token,
}

impl Drop for Node {
    /// Reads every neighbour that is still alive: a destructor reaching into its cycle.
    fn drop(&mut self) {
        for edge in self.edges.borrow().iter() {
            if let Some(node) = Gc::try_deref(edge) {
                assert_eq!(node.id, node.token.id);
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    New,
    Link(Index, Index),
    LinkVia(Index, Index, Index),
    Unlink(Index, Index),
    DropRoot(Index),
    CloneRoot(Index),
    Upgrade(Index),
    Collect,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::New),
        4 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Op::Link(a, b)),
        2 => (any::<Index>(), any::<Index>(), any::<Index>()).prop_map(|(a, b, c)| Op::LinkVia(a, b, c)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Op::Unlink(a, b)),
        3 => any::<Index>().prop_map(Op::DropRoot),
        1 => any::<Index>().prop_map(Op::CloneRoot),
        1 => any::<Index>().prop_map(Op::Upgrade),
        1 => Just(Op::Collect),
    ]
}

/// The model: node ids, their edges in order, and the roots in order.
#[derive(Default)]
struct Model {
    edges: Vec<Vec<usize>>,
    roots: Vec<usize>,
}

impl Model {
    fn reachable(&self) -> Vec<bool> {
        let mut seen = vec![false; self.edges.len()];
        let mut stack = self.roots.clone();
        while let Some(n) = stack.pop() {
            if !seen[n] {
                seen[n] = true;
                stack.extend(&self.edges[n]);
            }
        }
        seen
    }

    /// Nodes that plain reference counting frees: unreachable and not reachable from a
    /// cycle of unreachable nodes (peel nodes without incoming edges, repeatedly).
    fn freed_by_counting(&self, reachable: &[bool], dropped: &[u32]) -> Vec<bool> {
        let n = self.edges.len();
        let mut indegree = vec![0usize; n];
        // Edges of dropped nodes are gone (their values were destroyed).
        for from in (0..n).filter(|&i| !reachable[i] && dropped[i] == 0) {
            for &to in &self.edges[from] {
                indegree[to] += 1;
            }
        }
        let mut freed = vec![false; n];
        let mut stack: Vec<usize> = (0..n)
            .filter(|&i| !reachable[i] && dropped[i] == 0 && indegree[i] == 0)
            .collect();
        while let Some(i) = stack.pop() {
            if freed[i] {
                continue;
            }
            freed[i] = true;
            for &to in &self.edges[i] {
                indegree[to] -= 1;
                if indegree[to] == 0 && !reachable[to] {
                    stack.push(to);
                }
            }
        }
        freed
    }
}

fn check(model: &Model, log: &DropLog, weaks: &[Weak<Node>], after_collect: bool) {
    let dropped = log.borrow().clone();
    let reachable = model.reachable();
    let freed = model.freed_by_counting(&reachable, &dropped);
    for id in 0..dropped.len() {
        assert!(dropped[id] <= 1, "node {id} dropped {} times", dropped[id]);
        if reachable[id] {
            assert_eq!(dropped[id], 0, "reachable node {id} was dropped");
        } else if freed[id] || after_collect {
            assert_eq!(dropped[id], 1, "unreachable node {id} was not dropped");
        }
        assert_eq!(
            weaks[id].upgrade().is_some(),
            dropped[id] == 0,
            "weak of {id}"
        );
    }
}

fn run(ops: &[Op]) {
    collect();
    let baseline = live_bytes();
    {
        let log: DropLog = Rc::new(RefCell::new(Vec::new()));
        let mut model = Model::default();
        let mut roots: Vec<Gc<Node>> = Vec::new();
        let mut weaks: Vec<Weak<Node>> = Vec::new();
        for op in ops.iter().cloned() {
            let mut collected = false;
            match op {
                Op::New => {
                    let id = model.edges.len();
                    log.borrow_mut().push(0);
                    let node = Gc::new(Node {
                        id,
                        edges: RefCell::new(Vec::new()),
                        token: Token {
                            id,
                            log: log.clone(),
                        },
                    });
                    weaks.push(Gc::downgrade(&node));
                    roots.push(node);
                    model.edges.push(Vec::new());
                    model.roots.push(id);
                }
                Op::Link(a, b) if !roots.is_empty() => {
                    let (a, b) = (a.index(roots.len()), b.index(roots.len()));
                    roots[a].edges.borrow_mut().push(roots[b].clone());
                    model.edges[model.roots[a]].push(model.roots[b]);
                }
                Op::LinkVia(a, b, k) if !roots.is_empty() => {
                    let (a, b) = (a.index(roots.len()), b.index(roots.len()));
                    let target = {
                        let edges = roots[b].edges.borrow();
                        if edges.is_empty() {
                            None
                        } else {
                            let k = k.index(edges.len());
                            Some((edges[k].clone(), model.edges[model.roots[b]][k]))
                        }
                    };
                    if let Some((gc, id)) = target {
                        roots[a].edges.borrow_mut().push(gc);
                        model.edges[model.roots[a]].push(id);
                    }
                }
                Op::Unlink(a, k) if !roots.is_empty() => {
                    let a = a.index(roots.len());
                    let removed = {
                        let mut edges = roots[a].edges.borrow_mut();
                        if edges.is_empty() {
                            None
                        } else {
                            let k = k.index(edges.len());
                            model.edges[model.roots[a]].remove(k);
                            Some(edges.remove(k))
                        }
                    };
                    drop(removed); // outside the borrow: its destructor may run
                }
                Op::DropRoot(a) if !roots.is_empty() => {
                    let a = a.index(roots.len());
                    model.roots.remove(a);
                    drop(roots.remove(a));
                }
                Op::CloneRoot(a) if !roots.is_empty() => {
                    let a = a.index(roots.len());
                    roots.push(roots[a].clone());
                    model.roots.push(model.roots[a]);
                }
                Op::Upgrade(i) if !weaks.is_empty() => {
                    let i = i.index(weaks.len());
                    if let Some(gc) = weaks[i].upgrade() {
                        assert_eq!(gc.id, i);
                        roots.push(gc);
                        model.roots.push(i);
                    }
                }
                Op::Collect => {
                    collect();
                    collected = true;
                }
                _ => {}
            }
            check(&model, &log, &weaks, collected);
        }
        drop(roots);
        model.roots.clear();
        collect();
        check(&model, &log, &weaks, true);
        assert!(log.borrow().iter().all(|&d| d == 1));
    }
    collect();
    assert_eq!(
        live_bytes(),
        baseline,
        "memory of collected objects did not come back"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_graphs_match_reachability(ops in proptest::collection::vec(op(), 1..120)) {
        run(&ops);
    }
}
