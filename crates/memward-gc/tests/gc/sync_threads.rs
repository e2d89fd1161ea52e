//! Threads sharing `sync::Gc` cycles while collections run.
use memward_gc::sync::{self, Gc};
use memward_gc::Trace;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

static CREATED: AtomicUsize = AtomicUsize::new(0);
static DROPPED: AtomicUsize = AtomicUsize::new(0);

struct Count;
impl Count {
    fn new() -> Self {
        CREATED.fetch_add(1, Ordering::Relaxed);
        Count
    }
}
impl Drop for Count {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Trace)]
struct Node {
    edges: Mutex<Vec<Gc<Node>>>,
    #[trace(skip)]
    magic: u64,
    #[trace(skip)]
    _count: Count,
}

const MAGIC: u64 = 0x5eed_cafe_f00d_d00d;

fn node() -> Gc<Node> {
    Gc::new(Node {
        edges: Mutex::new(Vec::new()),
        magic: MAGIC,
        _count: Count::new(),
    })
}

/// Visits everything reachable from `root`, checking each node is intact and alive.
fn walk(root: &Gc<Node>) -> usize {
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![root.clone()];
    while let Some(n) = stack.pop() {
        if !seen.insert(Gc::as_ptr(&n) as usize) {
            continue;
        }
        assert!(!Gc::is_dead(&n), "a reachable node was collected");
        assert_eq!(n.magic, MAGIC);
        stack.extend(n.edges.lock().unwrap().iter().cloned());
    }
    seen.len()
}

/// A small xorshift generator (deterministic per thread).
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[test]
fn threads_share_cycles_and_every_destructor_runs_once() {
    let shared: Arc<Vec<Mutex<Vec<Gc<Node>>>>> =
        Arc::new((0..8).map(|_| Mutex::new(Vec::new())).collect());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9 + t as u64);
                for step in 0..20_000 {
                    let slot = &shared[rng.next(shared.len())];
                    match rng.next(6) {
                        0 | 1 => slot.lock().unwrap().push(node()),
                        2 => {
                            // Link two random nodes from two slots (cycles across threads).
                            let a = slot.lock().unwrap().last().cloned();
                            let b = shared[rng.next(shared.len())]
                                .lock()
                                .unwrap()
                                .last()
                                .cloned();
                            if let (Some(a), Some(b)) = (a, b) {
                                a.edges.lock().unwrap().push(b);
                            }
                        }
                        3 => {
                            let mut s = slot.lock().unwrap();
                            if !s.is_empty() {
                                let i = rng.next(s.len());
                                s.swap_remove(i);
                            }
                        }
                        4 => {
                            let root = slot.lock().unwrap().last().cloned();
                            if let Some(root) = root {
                                walk(&root);
                                // Move an edge out of a node while collections run.
                                let moved = root.edges.lock().unwrap().pop();
                                if let Some(m) = moved {
                                    walk(&m);
                                    slot.lock().unwrap().push(m);
                                }
                            }
                        }
                        _ => {
                            if step % 64 == 0 {
                                sync::collect();
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for slot in shared.iter() {
        for root in slot.lock().unwrap().iter() {
            walk(root);
        }
    }
    drop(shared);
    sync::collect();
    sync::collect();
    assert_eq!(
        DROPPED.load(Ordering::Relaxed),
        CREATED.load(Ordering::Relaxed),
        "every node dropped exactly once"
    );
}

#[test]
fn weak_upgrade_races_with_collection() {
    for _ in 0..200 {
        let a = node();
        let b = node();
        a.edges.lock().unwrap().push(b.clone());
        b.edges.lock().unwrap().push(a.clone());
        let weak = Gc::downgrade(&a);
        drop((a, b));
        let upgrader = std::thread::spawn(move || {
            // Either it upgrades before the cycle dies (and keeps it alive, intact) or
            // gets None; never a dead or freed node.
            if let Some(a) = weak.upgrade() {
                walk(&a);
            }
        });
        sync::collect();
        upgrader.join().unwrap();
    }
    sync::collect();
}
