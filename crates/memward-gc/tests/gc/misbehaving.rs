//! Wrong `Trace` impls, written without `unsafe`: whatever they do while the collector
//! traces (report a global's `Gc`, report a field twice, report a `Gc` taken out of a
//! `Cell`, move a `Gc` out of a cell later in the same collection, clone, drop or
//! create `Gc`s, collect, panic), every object still reachable stays alive and intact
//! (no early destructor, `Weak::upgrade` works), and the garbage that a correct impl
//! around them describes is still collected. The same tests run for both collectors.
//!
//! Each world: `victim` is reachable only from a global (`SINK`) or from a live handle
//! the test keeps, *and* from a garbage cycle whose rogue field misbehaves, so that an
//! over-reporting collector would free it with the cycle.

/// The tests, for one collector flavour: `$gcmod` (the module with `Gc`, `Weak`,
/// `collect`), `$cell` (the interior-mutable cell its objects use) and `$lock` (how to
/// borrow it: see `lock_cell!`), `$globals` (the module with the flavour's globals:
/// `SINK`, where a handle keeps its object reachable, and the disarm switch).
macro_rules! misbehaving_tests {
    ($flavour:ident, $gcmod:path, $cell:ident, $lock:ident, $globals:ident) => {
        mod $flavour {
            use super::$globals::{disarm, disarmed, global, serial, victims};
            use gcm::{collect, Gc, Weak};
            use memward_gc::{Trace, Tracer};
            use std::sync::atomic::{AtomicUsize, Ordering};
            use std::sync::Arc;
            use $gcmod as gcm;

            #[allow(unused_imports)]
            use std::cell::RefCell;
            #[allow(unused_imports)]
            use std::sync::Mutex;

            /// What a rogue field does each time it is traced.
            #[derive(Clone, Copy, PartialEq, Debug)]
            pub enum Act {
                /// Reports its own stash (ignored: a hand impl).
                Quiet,
                /// Reports the handles in the global `SINK`.
                ReportGlobal,
                /// Reports its stash twice.
                ReportTwice,
                /// Reports its stash through a borrow it drops at once, then (the next
                /// rogue to run) moves the stashed handles to `SINK`.
                ReportThenMoveOut,
                /// Upgrades its `Weak` (to its own node), moves that node's `kids` to
                /// `SINK` if the cell can be borrowed (it cannot: the collector holds
                /// it), and drops the upgraded handle again (counts unchanged).
                MoveOutOfTraced,
                /// Clones its stash into `SINK`, then drops one clone.
                Clone,
                /// Upgrades its `Weak` (a handle made while the target is counted) into
                /// `SINK`.
                Upgrade,
                /// Drops (empties) `SINK`.
                DropGlobal,
                /// Allocates and drops new `Gc`s.
                Create,
                /// Runs a collection.
                Collect,
                /// Panics.
                Panic,
            }

            pub struct Rogue {
                pub act: Act,
                pub stash: $cell<Vec<Gc<Node>>>,
                pub weak: $cell<Option<Weak<Node>>>,
            }

            #[derive(Trace)]
            pub struct Node {
                pub kids: $cell<Vec<Gc<Node>>>,
                pub rogue: Rogue,
                #[trace(skip)]
                pub tag: Tag,
            }

            /// Payload and destructor counter.
            pub struct Tag {
                pub payload: String,
                pub drops: Arc<AtomicUsize>,
            }

            impl Drop for Tag {
                fn drop(&mut self) {
                    self.drops.fetch_add(1, Ordering::SeqCst);
                }
            }

            fn edit<T, R>(cell: &$cell<T>, f: impl FnOnce(&mut T) -> R) -> R {
                f(&mut *lock_cell!($lock, cell))
            }

            impl Trace for Rogue {
                fn trace(&self, tracer: &mut Tracer) {
                    let act = if disarmed() { Act::Quiet } else { self.act };
                    match act {
                        Act::Quiet => tracer.visit(&self.stash),
                        Act::ReportGlobal => global(|sink| tracer.visit(&*sink)),
                        Act::ReportTwice => {
                            tracer.visit(&self.stash);
                            tracer.visit(&self.stash);
                        }
                        Act::ReportThenMoveOut => {
                            let stash = try_cell!($lock, self.stash);
                            if let Some(mut stash) = stash {
                                tracer.visit(&*stash);
                                // A guard dropped at once: the next rogue moves it out.
                                let moved: Vec<Gc<Node>> = stash.drain(..).collect();
                                drop(stash);
                                global(|sink| sink.extend(moved));
                            }
                        }
                        Act::MoveOutOfTraced => {
                            let weak = try_cell!($lock, self.weak).and_then(|w| w.clone());
                            if let Some(me) = weak.and_then(|w| w.upgrade()) {
                                if let Some(mut kids) = try_cell!($lock, me.kids) {
                                    let moved: Vec<Gc<Node>> = kids.drain(..).collect();
                                    drop(kids);
                                    global(|sink| sink.extend(moved));
                                }
                                drop(me);
                            }
                        }
                        Act::Clone => {
                            let clones: Vec<Gc<Node>> =
                                try_cell!($lock, self.stash).map_or(Vec::new(), |s| s.clone());
                            let mut more = clones.clone();
                            more.pop();
                            global(|sink| sink.extend(clones));
                            drop(more);
                        }
                        Act::Upgrade => {
                            let weak = try_cell!($lock, self.weak).and_then(|w| w.clone());
                            if let Some(strong) = weak.and_then(|w| w.upgrade()) {
                                global(|sink| sink.push(strong));
                            }
                        }
                        Act::DropGlobal => {
                            let taken = global(std::mem::take);
                            drop(taken);
                        }
                        Act::Create => {
                            let fresh = node("fresh", Act::Quiet).0;
                            edit(&fresh.kids, |k| k.push(fresh.clone()));
                            drop(fresh);
                        }
                        Act::Collect => collect(),
                        Act::Panic => panic!("expected panic: a rogue trace"),
                    }
                }
            }

            /// A node and its destructor counter.
            pub fn node(payload: &str, act: Act) -> (Gc<Node>, Arc<AtomicUsize>) {
                let drops = Arc::new(AtomicUsize::new(0));
                let gc = Gc::new(Node {
                    kids: $cell::new(Vec::new()),
                    rogue: Rogue {
                        act,
                        stash: $cell::new(Vec::new()),
                        weak: $cell::new(None),
                    },
                    tag: Tag {
                        payload: payload.to_string(),
                        drops: drops.clone(),
                    },
                });
                (gc, drops)
            }

            /// What each test checks afterwards about one object that must be alive.
            fn assert_alive(weak: &Weak<Node>, drops: &AtomicUsize, payload: &str) {
                assert_eq!(drops.load(Ordering::SeqCst), 0, "{payload} dropped early");
                let strong = weak.upgrade().expect("a reachable object was collected");
                assert_eq!(strong.tag.payload, payload);
            }

            /// Garbage cycles `a -> a, a -> victim` (a's rogue does `act`) and
            /// `b -> b, b -> victim`; `victim -> victim`, also in a's rogue stash when
            /// `stashed` and in `SINK` when `in_sink`. After `collect()`: whatever
            /// handle to the victim `SINK` holds then (the rogue may have moved one
            /// there) finds it alive and intact; a later collection with the rogue
            /// disarmed frees everything, each destructor once.
            fn run(act: Act, victim_stashed: bool, in_sink: bool) {
                run_with(act, victim_stashed, in_sink, true)
            }

            /// `run`; with `warm`, a collection that meets a hand impl runs first (the
            /// thread-local heap holds guards from then on; the first such collection
            /// on a thread decides nothing).
            fn run_with(act: Act, victim_stashed: bool, in_sink: bool, warm: bool) {
                let _serial = serial();
                if warm {
                    let (w, _) = node("warm-up", Act::Quiet);
                    edit(&w.kids, |k| k.push(w.clone()));
                    drop(w);
                    collect();
                }
                global(|s| s.clear());
                victims(|v| v.clear());
                disarm(false);
                let (victim, victim_drops) = node("victim", Act::Quiet);
                edit(&victim.kids, |k| k.push(victim.clone()));
                let weak_victim = Gc::downgrade(&victim);
                let (a, a_drops) = node("a", act);
                edit(&a.kids, |k| k.push(a.clone()));
                edit(&a.kids, |k| k.push(victim.clone()));
                let target = if act == Act::MoveOutOfTraced {
                    &a
                } else {
                    &victim
                };
                edit(&a.rogue.weak, |w| *w = Some(Gc::downgrade(target)));
                if victim_stashed {
                    edit(&a.rogue.stash, |k| k.push(victim.clone()));
                }
                victims(|v| v.push(a.clone()));
                if in_sink {
                    global(|s| s.push(victim.clone()));
                }
                // A second garbage cycle traced after `a`, so the rogue's later acts
                // happen between reports (its kids include the victim too).
                let (b, b_drops) = node("b", Act::Quiet);
                edit(&b.kids, |k| k.push(b.clone()));
                edit(&b.kids, |k| k.push(victim.clone()));
                let weak_a = Gc::downgrade(&a);
                let weak_b = Gc::downgrade(&b);
                drop((victim, b));
                victims(|v| v.clear());
                drop(a);
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(collect));
                assert_eq!(outcome.is_err(), act == Act::Panic);
                // Reachable from SINK: alive, whatever happened.
                if global(|s| !s.is_empty()) {
                    assert_alive(&weak_victim, &victim_drops, "victim");
                }
                assert!(victim_drops.load(Ordering::SeqCst) <= 1);
                // Nothing is dropped twice, and b (plain garbage) went unless the
                // collection was abandoned.
                assert!(a_drops.load(Ordering::SeqCst) <= 1);
                assert!(b_drops.load(Ordering::SeqCst) <= 1);
                if act != Act::Panic && warm {
                    assert!(weak_b.upgrade().is_none(), "plain garbage was kept");
                }
                // Values still reachable are intact, readable, and their counts right.
                if let Some(v) = weak_victim.upgrade() {
                    assert_eq!(v.tag.payload, "victim");
                    edit(&v.kids, |k| {
                        assert!(k.iter().all(|k| k.tag.payload == "victim"))
                    });
                }
                // Disarm: empty the globals, break the cycles, collect again: all gone.
                disarm(true);
                global(|s| s.clear());
                if let Some(a) = weak_a.upgrade() {
                    edit(&a.kids, |k| k.clear());
                    edit(&a.rogue.stash, |k| k.clear());
                }
                collect();
                collect();
                assert!(weak_a.upgrade().is_none());
                assert!(weak_b.upgrade().is_none());
                assert!(weak_victim.upgrade().is_none());
                assert_eq!(victim_drops.load(Ordering::SeqCst), 1);
                assert_eq!(a_drops.load(Ordering::SeqCst), 1);
                assert_eq!(b_drops.load(Ordering::SeqCst), 1);
            }

            #[test]
            fn quiet_hand_impl_only_leaks() {
                run(Act::Quiet, true, true);
            }

            #[test]
            fn reporting_a_globals_gc_frees_nothing_reachable() {
                run(Act::ReportGlobal, false, true);
            }

            #[test]
            fn reporting_a_field_twice_frees_nothing_reachable() {
                run(Act::ReportTwice, true, true);
            }

            #[test]
            fn moving_out_after_an_unheld_report_frees_nothing_reachable() {
                run(Act::ReportThenMoveOut, true, false);
            }

            #[test]
            fn moving_out_of_a_traced_cell_is_refused() {
                run(Act::MoveOutOfTraced, false, false);
            }

            /// On a fresh thread the first collection that meets a hand impl did not
            /// hold the guards: it must decide nothing, then the next one frees.
            #[test]
            fn first_collection_meeting_a_hand_impl_is_safe() {
                std::thread::spawn(|| run_with(Act::MoveOutOfTraced, false, false, false))
                    .join()
                    .unwrap();
            }

            #[test]
            fn cloning_in_trace_frees_nothing_reachable() {
                run(Act::Clone, true, false);
            }

            #[test]
            fn upgrading_in_trace_frees_nothing_reachable() {
                run(Act::Upgrade, false, false);
            }

            #[test]
            fn dropping_in_trace_frees_nothing_early() {
                run(Act::DropGlobal, false, true);
            }

            #[test]
            fn creating_gcs_in_trace_is_harmless() {
                run(Act::Create, false, true);
            }

            #[test]
            fn collecting_in_trace_is_harmless() {
                run(Act::Collect, false, true);
            }

            #[test]
            fn panicking_in_trace_abandons_the_collection() {
                crate::support::quiet_expected_panics();
                run(Act::Panic, false, true);
            }

            /// The last handle to a member dropped by a `trace` while the member is in
            /// the set: its value is dropped once, after the collection decided.
            #[test]
            fn last_handle_dropped_in_trace() {
                let _serial = serial();
                global(|s| s.clear());
                disarm(false);
                let (x, x_drops) = node("x", Act::Quiet);
                let weak_x = Gc::downgrade(&x);
                // x is a candidate (a clone dropped), then its last handle sits in SINK,
                // which a rogue traced in the same collection empties.
                drop(x.clone());
                global(|s| s.push(x));
                let (r, r_drops) = node("r", Act::DropGlobal);
                drop(r.clone());
                let weak_r = Gc::downgrade(&r);
                global(|s| s.push(r));
                collect();
                collect();
                assert!(weak_x.upgrade().is_none());
                assert!(weak_r.upgrade().is_none());
                assert_eq!(x_drops.load(Ordering::SeqCst), 1);
                assert_eq!(r_drops.load(Ordering::SeqCst), 1);
            }
        }
    };
}

/// Borrows a cell for writing: `borrow_mut` / `lock`.
macro_rules! lock_cell {
    (borrow, $cell:expr) => {
        $cell.borrow_mut()
    };
    (lock, $cell:expr) => {
        $cell.lock().unwrap_or_else(|e| e.into_inner())
    };
}

/// Tries to borrow a cell for writing without blocking: `Some(guard)` or `None`.
macro_rules! try_cell {
    (borrow, $cell:expr) => {
        $cell.try_borrow_mut().ok()
    };
    (lock, $cell:expr) => {
        $cell.try_lock().ok()
    };
}

misbehaving_tests!(unsync, memward_gc, RefCell, borrow, unsync_globals);
misbehaving_tests!(sync, memward_gc::sync, Mutex, lock, sync_globals);

mod unsync_globals {
    use super::unsync::Node;
    use memward_gc::Gc;
    use std::cell::RefCell;

    thread_local! {
        static SINK: RefCell<Vec<Gc<Node>>> = const { RefCell::new(Vec::new()) };
        static VICTIMS: RefCell<Vec<Gc<Node>>> = const { RefCell::new(Vec::new()) };
        static DISARMED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    pub fn disarm(on: bool) {
        DISARMED.with(|d| d.set(on))
    }

    pub fn disarmed() -> bool {
        DISARMED.with(|d| d.get())
    }

    pub fn global<R>(f: impl FnOnce(&mut Vec<Gc<Node>>) -> R) -> R {
        SINK.with(|s| f(&mut s.borrow_mut()))
    }

    pub fn victims<R>(f: impl FnOnce(&mut Vec<Gc<Node>>) -> R) -> R {
        VICTIMS.with(|s| f(&mut s.borrow_mut()))
    }

    pub fn serial() {}
}

mod sync_globals {
    use super::sync::Node;
    use memward_gc::sync::Gc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Mutex, MutexGuard};

    static SINK: Mutex<Vec<Gc<Node>>> = Mutex::new(Vec::new());
    static VICTIMS: Mutex<Vec<Gc<Node>>> = Mutex::new(Vec::new());
    /// These tests share the globals: one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());
    static DISARMED: AtomicBool = AtomicBool::new(false);

    pub fn disarm(on: bool) {
        DISARMED.store(on, Ordering::SeqCst)
    }

    pub fn disarmed() -> bool {
        DISARMED.load(Ordering::SeqCst)
    }

    pub fn global<R>(f: impl FnOnce(&mut Vec<Gc<Node>>) -> R) -> R {
        f(&mut SINK.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn victims<R>(f: impl FnOnce(&mut Vec<Gc<Node>>) -> R) -> R {
        f(&mut VICTIMS.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn serial() -> MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(|e| e.into_inner())
    }
}
