//! Single-thread fast paths, for instruction counts under callgrind:
//! `valgrind --tool=callgrind target/release/memward-gc-bench --micro OP N`, run with
//! N = 0 and N = 100000; the difference of the totals divided by N is the cost of one
//! operation (program start-up cancels out).
use std::hint::black_box;

pub const OPS: &[&str] = &[
    "rc-new-drop",
    "gc-new-drop",
    "rc-clone-drop",
    "gc-clone-drop",
    "rc-deref",
    "gc-deref",
    "arc-new-drop",
    "sync-gc-new-drop",
    "arc-clone-drop",
    "sync-gc-clone-drop",
];

pub fn run(op: &str, n: usize) {
    use memward_gc::{sync, Gc};
    use std::rc::Rc;
    use std::sync::Arc;
    match op {
        "rc-new-drop" => (0..n).for_each(|i| drop(black_box(Rc::new(i)))),
        "gc-new-drop" => (0..n).for_each(|i| drop(black_box(Gc::new(i)))),
        "arc-new-drop" => (0..n).for_each(|i| drop(black_box(Arc::new(i)))),
        "sync-gc-new-drop" => (0..n).for_each(|i| drop(black_box(sync::Gc::new(i)))),
        "rc-clone-drop" => {
            let a = Rc::new(1usize);
            (0..n).for_each(|_| drop(black_box(a.clone())));
        }
        "gc-clone-drop" => {
            let a = Gc::new(1usize);
            (0..n).for_each(|_| drop(black_box(a.clone())));
        }
        "arc-clone-drop" => {
            let a = Arc::new(1usize);
            (0..n).for_each(|_| drop(black_box(a.clone())));
        }
        "sync-gc-clone-drop" => {
            let a = sync::Gc::new(1usize);
            (0..n).for_each(|_| drop(black_box(a.clone())));
        }
        "rc-deref" => {
            let a = black_box(Rc::new(1usize));
            black_box((0..n).fold(0usize, |s, _| s + *black_box(&a).as_ref()));
        }
        "gc-deref" => {
            let a = black_box(Gc::new(1usize));
            black_box((0..n).fold(0usize, |s, _| s + **black_box(&a)));
        }
        _ => panic!("unknown micro op {op}; known: {OPS:?}"),
    }
}
