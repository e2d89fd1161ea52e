//! The `Rc`-like interface and the std `Trace` impls.
use memward_gc::{collect, Gc, Trace, Weak};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, RwLock};

#[derive(Trace)]
struct Everything {
    a: Vec<Gc<u32>>,
    b: Option<Gc<u32>>,
    c: Result<Gc<u32>, String>,
    d: (Gc<u32>, u8),
    e: [Gc<u32>; 2],
    f: Box<Gc<u32>>,
    g: RefCell<Gc<u32>>,
    h: Mutex<Gc<u32>>,
    i: RwLock<Gc<u32>>,
    j: HashMap<u32, Gc<u32>>,
    k: BTreeMap<u32, Gc<u32>>,
    l: Cell<u64>,
    m: Weak<u32>,
    #[trace(skip)]
    n: std::fs::Metadata,
}

#[derive(Trace)]
enum Shape {
    Leaf,
    One(Gc<Shape>),
    Two { left: Gc<Shape>, right: Gc<Shape> },
}

#[derive(Trace)]
struct Generic<T> {
    inner: T,
}

#[test]
fn std_impls_report_every_gc() {
    // One shared target referenced 13 times from one object, then a cycle back: the
    // collector must find all 13 internal edges to free it.
    #[derive(Trace)]
    struct Holder {
        all: RefCell<Option<Everything>>,
        me: RefCell<Option<Gc<Holder>>>,
    }
    let t = Gc::new(7u32);
    let holder = Gc::new(Holder {
        all: RefCell::new(None),
        me: RefCell::new(None),
    });
    let everything = Everything {
        a: vec![t.clone()],
        b: Some(t.clone()),
        c: Ok(t.clone()),
        d: (t.clone(), 1),
        e: [t.clone(), t.clone()],
        f: Box::new(t.clone()),
        g: RefCell::new(t.clone()),
        h: Mutex::new(t.clone()),
        i: RwLock::new(t.clone()),
        j: HashMap::from([(1, t.clone())]),
        k: BTreeMap::from([(1, t.clone())]),
        l: Cell::new(0),
        m: Gc::downgrade(&t),
        n: std::fs::metadata(".").unwrap(),
    };
    assert_eq!(Gc::strong_count(&t), 13);
    *holder.all.borrow_mut() = Some(everything);
    *holder.me.borrow_mut() = Some(holder.clone());
    let weak_t = Gc::downgrade(&t);
    drop(t);
    let weak_holder = Gc::downgrade(&holder);
    drop(holder);
    collect();
    assert!(weak_holder.upgrade().is_none());
    assert!(weak_t.upgrade().is_none());
}

#[test]
fn enums_and_generics_derive() {
    let leaf = Gc::new(Shape::Leaf);
    let one = Gc::new(Shape::One(leaf.clone()));
    let two = Gc::new(Shape::Two {
        left: one.clone(),
        right: leaf.clone(),
    });
    assert_eq!(Gc::strong_count(&leaf), 3);
    drop(two);
    assert_eq!(Gc::strong_count(&leaf), 2);
    let g = Gc::new(Generic {
        inner: vec![leaf.clone()],
    });
    assert_eq!(Gc::strong_count(&leaf), 3);
    drop(g);
    assert_eq!(Gc::strong_count(&leaf), 2);
}

#[test]
fn a_borrowed_refcell_keeps_its_cycle_alive() {
    #[derive(Trace)]
    struct N(RefCell<Option<Gc<N>>>);
    let a = Gc::new(N(RefCell::new(None)));
    *a.0.borrow_mut() = Some(a.clone());
    let weak = Gc::downgrade(&a);
    let a2 = a.clone();
    drop(a);
    {
        // The cell is mutably borrowed (through our outside handle) during collection.
        let _guard = a2.0.borrow_mut();
        collect();
        assert!(weak.upgrade().is_some());
    }
    drop(a2);
    collect();
    assert!(weak.upgrade().is_none());
}

#[test]
fn new_cyclic_and_counts() {
    #[derive(Trace)]
    struct Parent {
        me: Weak<Parent>,
        children: RefCell<Vec<Gc<Child>>>,
    }
    #[derive(Trace)]
    struct Child {
        parent: Gc<Parent>,
    }
    let p = Gc::new_cyclic(|me| Parent {
        me: me.clone(),
        children: RefCell::new(Vec::new()),
    });
    for _ in 0..3 {
        let c = Gc::new(Child { parent: p.clone() });
        p.children.borrow_mut().push(c);
    }
    assert_eq!(Gc::strong_count(&p), 4);
    assert_eq!(Gc::weak_count(&p), 1);
    assert!(Gc::ptr_eq(&p.me.upgrade().unwrap(), &p));
    let w = Gc::downgrade(&p);
    drop(p);
    assert!(w.upgrade().is_some());
    collect();
    assert!(w.upgrade().is_none());
}

#[test]
fn new_cyclic_panicking_frees_its_box() {
    crate::support::quiet_expected_panics();
    let before = crate::support::live_bytes();
    let result = std::panic::catch_unwind(|| {
        Gc::<u64>::new_cyclic(|weak| {
            assert!(weak.upgrade().is_none());
            panic!("expected panic: no value");
        })
    });
    assert!(result.is_err());
    drop(result);
    assert_eq!(crate::support::live_bytes(), before);
}

#[test]
fn automatic_collection_bounds_memory() {
    // Allocate many self-cycles without calling collect(): pacing must reclaim them.
    #[derive(Trace)]
    struct N(RefCell<Option<Gc<N>>>, #[trace(skip)] [u64; 8]);
    collect();
    let before = crate::support::live_bytes();
    let mut peak = 0;
    for round in 0..200_000 {
        let a = Gc::new(N(RefCell::new(None), [0; 8]));
        *a.0.borrow_mut() = Some(a.clone());
        drop(a);
        if round % 1000 == 0 {
            peak = peak.max(crate::support::live_bytes() - before);
        }
    }
    // 200k leaked cycles would be ~20 MB; pacing keeps a few thresholds' worth.
    assert!(peak < 8 << 20, "peak {peak} bytes");
    collect();
    assert!(crate::support::live_bytes() - before < 64 << 10);
}

#[test]
fn get_mut_only_when_unique() {
    let mut a = Gc::new(String::from("a"));
    Gc::get_mut(&mut a).unwrap().push('b');
    assert_eq!(&*a, "ab");
    let w = Gc::downgrade(&a);
    assert!(Gc::get_mut(&mut a).is_none());
    drop(w);
    assert!(Gc::get_mut(&mut a).is_some());
    assert_eq!(format!("{a:?}"), "\"ab\"");
}
