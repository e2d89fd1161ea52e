//! `Rc` baselines with `Weak` back-pointers (what one writes without a collector).
use crate::workloads::*;
use std::cell::RefCell;
use std::rc::{Rc, Weak};

pub struct Tree {
    l: Option<Rc<Tree>>,
    r: Option<Rc<Tree>>,
}

fn tree(depth: u32) -> Rc<Tree> {
    if depth == 0 {
        Rc::new(Tree { l: None, r: None })
    } else {
        Rc::new(Tree {
            l: Some(tree(depth - 1)),
            r: Some(tree(depth - 1)),
        })
    }
}

fn check(t: &Tree) -> u64 {
    1 + t.l.as_ref().map_or(0, |n| check(n)) + t.r.as_ref().map_or(0, |n| check(n))
}

pub fn binary_trees() -> u64 {
    let long_lived = tree(TREE_MAX);
    tree_schedule(|d| check(&tree(d))) + check(&long_lived)
}

pub struct PTree {
    parent: RefCell<Weak<PTree>>,
    l: Option<Rc<PTree>>,
    r: Option<Rc<PTree>>,
}

fn ptree(depth: u32) -> Rc<PTree> {
    let (l, r) = if depth == 0 {
        (None, None)
    } else {
        (Some(ptree(depth - 1)), Some(ptree(depth - 1)))
    };
    let node = Rc::new(PTree {
        parent: RefCell::new(Weak::new()),
        l,
        r,
    });
    for child in [&node.l, &node.r].into_iter().flatten() {
        *child.parent.borrow_mut() = Rc::downgrade(&node);
    }
    node
}

fn pcheck(t: &PTree) -> u64 {
    let up = t.parent.borrow().upgrade().is_some() as u64;
    up + t.l.as_ref().map_or(0, |n| pcheck(n)) + t.r.as_ref().map_or(0, |n| pcheck(n))
}

pub fn parent_trees() -> u64 {
    let long_lived = ptree(TREE_MAX);
    tree_schedule(|d| pcheck(&ptree(d))) + pcheck(&long_lived)
}

pub struct List {
    next: Option<Rc<List>>,
    prev: RefCell<Weak<List>>,
}

pub fn linked_list() -> u64 {
    let mut sum = 0;
    for _ in 0..LISTS {
        let mut head = Rc::new(List {
            next: None,
            prev: RefCell::new(Weak::new()),
        });
        for _ in 1..LIST_LEN {
            let node = Rc::new(List {
                next: Some(head.clone()),
                prev: RefCell::new(Weak::new()),
            });
            *head.prev.borrow_mut() = Rc::downgrade(&node);
            head = node;
        }
        sum += head.next.is_some() as u64;
        sum += head.prev.borrow().upgrade().is_some() as u64;
    }
    sum
}
