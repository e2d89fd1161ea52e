//! Threads sharing `sync::Gc` cycles while collections run.
use memward_gc::sync::{self, Gc};
use memward_gc::Trace;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Nodes created and dropped, one pair per test (tests run in parallel threads).
struct Counters {
    created: AtomicUsize,
    dropped: AtomicUsize,
}

static SHARED_CYCLES: Counters = Counters {
    created: AtomicUsize::new(0),
    dropped: AtomicUsize::new(0),
};
static UPGRADES: Counters = Counters {
    created: AtomicUsize::new(0),
    dropped: AtomicUsize::new(0),
};

struct Count(&'static Counters);
impl Count {
    fn new(counters: &'static Counters) -> Self {
        counters.created.fetch_add(1, Ordering::Relaxed);
        Count(counters)
    }
}
impl Drop for Count {
    fn drop(&mut self) {
        self.0.dropped.fetch_add(1, Ordering::Relaxed);
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

fn node_in(counters: &'static Counters) -> Gc<Node> {
    Gc::new(Node {
        edges: Mutex::new(Vec::new()),
        magic: MAGIC,
        _count: Count::new(counters),
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
                        0 | 1 => slot.lock().unwrap().push(node_in(&SHARED_CYCLES)),
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
        SHARED_CYCLES.dropped.load(Ordering::Relaxed),
        SHARED_CYCLES.created.load(Ordering::Relaxed),
        "every node dropped exactly once"
    );
}

#[test]
fn weak_upgrade_races_with_collection() {
    for _ in 0..200 {
        let a = node_in(&UPGRADES);
        let b = node_in(&UPGRADES);
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
    sync::collect();
    assert_eq!(
        UPGRADES.dropped.load(Ordering::Relaxed),
        UPGRADES.created.load(Ordering::Relaxed)
    );
}

#[derive(Trace)]
struct Linked {
    next: Mutex<Option<Gc<Linked>>>,
    #[trace(skip)]
    stash: bool,
}

static STASHED: Mutex<Vec<Gc<Linked>>> = Mutex::new(Vec::new());

impl Drop for Linked {
    /// Reaches its cycle neighbour: it is alive or dead, never freed.
    fn drop(&mut self) {
        let next = self.next.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(next) = next.as_ref() {
            if let Some(n) = Gc::try_deref(next) {
                assert!(n.next.try_lock().is_ok() || Gc::is_dead(next));
            }
            if self.stash {
                STASHED.lock().unwrap().push(next.clone());
            }
        }
    }
}

fn linked_ring(n: usize, stash: bool) -> Vec<sync::Weak<Linked>> {
    linked_ring_strong(n, stash)
        .iter()
        .map(Gc::downgrade)
        .collect()
}

fn linked_ring_strong(n: usize, stash: bool) -> Vec<Gc<Linked>> {
    let nodes: Vec<Gc<Linked>> = (0..n)
        .map(|_| {
            Gc::new(Linked {
                next: Mutex::new(None),
                stash,
            })
        })
        .collect();
    for i in 0..n {
        *nodes[i].next.lock().unwrap() = Some(nodes[(i + 1) % n].clone());
    }
    nodes
}

#[test]
fn sync_destructors_reach_dead_members_and_resurrected_handles_stay_dead() {
    let weaks = linked_ring(5, true);
    sync::collect();
    assert!(weaks.iter().all(|w| w.upgrade().is_none()));
    let stashed = std::mem::take(&mut *STASHED.lock().unwrap());
    assert!(!stashed.is_empty());
    for gc in &stashed {
        assert!(Gc::is_dead(gc));
        assert!(Gc::try_deref(gc).is_none());
    }
    let moved = std::thread::spawn(move || {
        // Dead handles can move to another thread and drop there (freeing the memory).
        assert!(stashed.iter().all(Gc::is_dead));
        drop(stashed);
    });
    moved.join().unwrap();
}

#[test]
fn a_cycle_locked_by_another_thread_survives_until_released() {
    let nodes = linked_ring_strong(3, false);
    let weaks: Vec<_> = nodes.iter().map(Gc::downgrade).collect();
    let held = nodes[0].clone();
    drop(nodes);
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let guard = held.next.lock().unwrap();
        locked_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        drop(guard);
        drop(held);
    });
    locked_rx.recv().unwrap();
    sync::collect();
    assert!(weaks.iter().all(|w| w.upgrade().is_some()));
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    sync::collect();
    assert!(weaks.iter().all(|w| w.upgrade().is_none()));
}

#[test]
fn sync_new_cyclic_and_automatic_collection() {
    #[derive(Trace)]
    struct Me {
        me: sync::Weak<Me>,
        again: Mutex<Option<Gc<Me>>>,
    }
    let first = Gc::new_cyclic(|me| Me {
        me: me.clone(),
        again: Mutex::new(None),
    });
    assert!(Gc::ptr_eq(&first.me.upgrade().unwrap(), &first));
    let first_weak = Gc::downgrade(&first);
    *first.again.lock().unwrap() = Some(first.clone());
    drop(first);
    // Many more self-cycles, never collected by hand: pacing must reach them all.
    for _ in 0..100_000 {
        let g = Gc::new_cyclic(|me| Me {
            me: me.clone(),
            again: Mutex::new(None),
        });
        *g.again.lock().unwrap() = Some(g.clone());
    }
    assert!(
        first_weak.upgrade().is_none(),
        "automatic collection never ran"
    );
}
