//! Destructors of collected objects: each runs once, and none can reach freed memory.
use crate::support::live_bytes;
use memward_gc::{collect, Gc, Trace, Weak};
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    static DROPS: Cell<usize> = const { Cell::new(0) };
    static STASH: RefCell<Vec<Gc<Member>>> = const { RefCell::new(Vec::new()) };
}

fn drops() -> usize {
    DROPS.with(|d| d.get())
}

/// What a member's destructor does to its neighbour.
#[derive(Clone, Copy, PartialEq)]
enum OnDrop {
    Nothing,
    /// `Gc::try_deref` and `is_dead`, never panicking.
    Inspect,
    /// Plain deref: panics when the neighbour is already dead.
    Deref,
    /// Clones the neighbour's handle into a thread-local (resurrection attempt).
    Stash,
    /// Upgrades a weak handle to the neighbour.
    Upgrade,
    /// Runs a collection and allocates.
    Reenter,
}

#[derive(Trace)]
struct Member {
    next: RefCell<Option<Gc<Member>>>,
    weak_next: RefCell<Option<Weak<Member>>>,
    #[trace(skip)]
    payload: Vec<u64>,
    #[trace(skip)]
    on_drop: OnDrop,
    #[trace(skip)]
    seen_dead: Cell<bool>,
}

impl Drop for Member {
    fn drop(&mut self) {
        DROPS.with(|d| d.set(d.get() + 1));
        let next = self.next.borrow();
        let Some(next) = next.as_ref() else { return };
        match self.on_drop {
            OnDrop::Nothing => {}
            OnDrop::Inspect => match Gc::try_deref(next) {
                Some(n) => assert_eq!(n.payload.len(), 16), // alive: intact
                None => assert!(Gc::is_dead(next)),
            },
            OnDrop::Deref => assert_eq!(next.payload.len(), 16),
            OnDrop::Stash => STASH.with(|s| s.borrow_mut().push(next.clone())),
            OnDrop::Upgrade => {
                let weak = self.weak_next.borrow();
                assert!(weak.as_ref().unwrap().upgrade().is_none());
            }
            OnDrop::Reenter => {
                collect();
                let fresh = Gc::new(5u64);
                assert_eq!(*fresh, 5);
            }
        }
    }
}

/// A ring of `n` members, each pointing to the next; returns a weak handle to each.
fn ring(n: usize, on_drop: OnDrop) -> Vec<Weak<Member>> {
    let members: Vec<Gc<Member>> = (0..n)
        .map(|_| {
            Gc::new(Member {
                next: RefCell::new(None),
                weak_next: RefCell::new(None),
                payload: vec![7; 16],
                on_drop,
                seen_dead: Cell::new(false),
            })
        })
        .collect();
    for i in 0..n {
        let next = &members[(i + 1) % n];
        *members[i].next.borrow_mut() = Some(next.clone());
        *members[i].weak_next.borrow_mut() = Some(Gc::downgrade(next));
    }
    members.iter().map(Gc::downgrade).collect()
}

#[test]
fn each_destructor_runs_once() {
    for on_drop in [
        OnDrop::Nothing,
        OnDrop::Inspect,
        OnDrop::Upgrade,
        OnDrop::Reenter,
    ] {
        for n in [1, 2, 3, 50] {
            collect();
            let before_bytes = live_bytes();
            let before = drops();
            let weaks = ring(n, on_drop);
            assert_eq!(drops(), before);
            collect();
            assert_eq!(drops() - before, n);
            assert!(weaks.iter().all(|w| w.upgrade().is_none()));
            collect(); // and never again
            assert_eq!(drops() - before, n);
            drop(weaks);
            assert_eq!(live_bytes(), before_bytes);
        }
    }
}

#[test]
fn inspecting_destructors_see_dead_neighbours() {
    // In a ring every destructor but the first finds its neighbour dead or alive, never
    // freed; `Inspect` asserts the contents of live ones.
    let before = drops();
    let _ = ring(10, OnDrop::Inspect);
    collect();
    assert_eq!(drops() - before, 10);
}

#[test]
fn deref_of_a_dead_member_panics_and_nothing_is_freed_twice() {
    collect();
    let before = drops();
    let weaks = ring(4, OnDrop::Deref);
    let result = catch_unwind(AssertUnwindSafe(collect));
    let message = *result
        .unwrap_err()
        .downcast::<&str>()
        .unwrap_or_else(|e| Box::new(Box::leak(e.downcast::<String>().unwrap().into_boxed_str())));
    assert!(message.contains("already collected"), "{message}");
    // Members whose destructor never ran are leaked, not dropped twice; all are dead.
    let dropped = drops() - before;
    assert!((1..=4).contains(&dropped));
    assert!(weaks.iter().all(|w| w.upgrade().is_none()));
    // The heap still works.
    let more = ring(3, OnDrop::Nothing);
    collect();
    assert!(more.iter().all(|w| w.upgrade().is_none()));
    collect();
    assert_eq!(drops() - before, dropped + 3);
}

#[test]
fn stashed_handles_to_collected_members_are_dead_and_freed_later() {
    crate::support::quiet_expected_panics();
    collect();
    let before_bytes = live_bytes();
    let before = drops();
    let _ = ring(3, OnDrop::Stash);
    collect();
    assert_eq!(drops() - before, 3);
    STASH.with(|s| {
        let stash = s.borrow();
        assert_eq!(stash.len(), 3);
        for gc in stash.iter() {
            assert!(Gc::is_dead(gc));
            assert!(Gc::try_deref(gc).is_none());
            let clone = gc.clone(); // clones of dead handles are fine
            assert!(catch_unwind(AssertUnwindSafe(|| clone.payload.len())).is_err());
        }
    });
    // The memory stays until the stashed handles go, then comes back.
    assert!(live_bytes() > before_bytes);
    drop(STASH.with(|s| s.take()));
    collect();
    assert_eq!(drops() - before, 3);
    assert_eq!(live_bytes(), before_bytes);
}

#[test]
fn destructor_of_garbage_releases_live_objects() {
    #[derive(Trace)]
    struct Holder {
        me: RefCell<Option<Gc<Holder>>>,
        outside: Gc<String>,
    }
    let outside = Gc::new(String::from("still here"));
    let h = Gc::new(Holder {
        me: RefCell::new(None),
        outside: outside.clone(),
    });
    *h.me.borrow_mut() = Some(h.clone());
    drop(h);
    assert_eq!(Gc::strong_count(&outside), 2);
    collect();
    assert_eq!(Gc::strong_count(&outside), 1);
    assert_eq!(&*outside, "still here");
}

#[test]
fn values_reachable_from_outside_survive_while_garbage_around_them_dies() {
    collect();
    let before = drops();
    let weaks = ring(5, OnDrop::Inspect);
    // Keep one member: the whole ring stays reachable.
    let keep = weaks[2].upgrade().unwrap();
    collect();
    assert_eq!(drops(), before);
    assert_eq!(keep.payload.len(), 16);
    drop(keep);
    collect();
    assert_eq!(drops() - before, 5);
}
