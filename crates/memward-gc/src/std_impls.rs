//! `Trace` for the standard library's types.
//!
//! Every impl here is *structural* (`STRUCTURAL` proved with `unsafe`, see [`Trace`]): it
//! visits exactly what the value owns, in place, each part once, through
//! [`Tracer::visit`], and runs no other code. Leaves (numbers, `String`, `PathBuf`...)
//! report nothing. Owning containers visit each element once. Interior mutability goes
//! through `try_borrow` / `try_lock` / `try_read`: when the contents are in use right now
//! the value is reported opaque (so kept alive), and the guard is handed to the tracer
//! to hold, so that the contents stay still until the collector has decided. `Cell<T: Copy>` reports nothing: a `Copy`
//! type cannot own a `Gc`. Shared owners (`Rc`, `Arc`) get no impl on purpose: two
//! objects sharing one `Rc<Gc<_>>` would both report the same `Gc`.
use crate::trace::{Structural, Trace, Tracer};
use core::cell::{Cell, RefCell};
use core::marker::PhantomData;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, LinkedList, VecDeque};
use std::sync::{Mutex, RwLock, TryLockError};

/// `const STRUCTURAL` for an impl of this module.
macro_rules! structural {
    () => {
        // SAFETY: every impl in this module visits each owned part once, in place, and
        // does nothing else (checked by reading each one; see the module docs).
        const STRUCTURAL: Structural = unsafe { Structural::assert_structural() };
    };
}

macro_rules! leaf {
    ($($t:ty),* $(,)?) => {$(
        // the type owns no Gc; reporting nothing is exact.
        impl Trace for $t {
            structural!();
            #[inline]
            fn trace(&self, _: &mut Tracer) {}
        }
    )*};
}

leaf!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    str,
    String,
    std::path::Path,
    std::path::PathBuf,
    std::ffi::OsStr,
    std::ffi::OsString,
    std::time::Duration,
    std::time::Instant,
    std::time::SystemTime,
    core::num::NonZeroU32,
    core::num::NonZeroU64,
    core::num::NonZeroUsize,
    std::sync::atomic::AtomicBool,
    std::sync::atomic::AtomicUsize,
    std::sync::atomic::AtomicU64,
    std::sync::atomic::AtomicI64,
    std::sync::atomic::AtomicU32,
    std::sync::atomic::AtomicI32,
);

// a static reference owns nothing.
impl<T: ?Sized + 'static> Trace for &'static T {
    structural!();
    fn trace(&self, _: &mut Tracer) {}
}

// PhantomData owns nothing.
impl<T: ?Sized> Trace for PhantomData<T> {
    structural!();
    fn trace(&self, _: &mut Tracer) {}
}

// a Copy type cannot own a Gc (Gc is not Copy), so there is nothing to report.
impl<T: Copy> Trace for Cell<T> {
    structural!();
    fn trace(&self, _: &mut Tracer) {}
}

// the Box owns its contents; they are traced once.
impl<T: ?Sized + Trace> Trace for Box<T> {
    structural!();
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        tracer.visit(&**self)
    }
}

// Option owns its contents; traced once when present.
impl<T: Trace> Trace for Option<T> {
    structural!();
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        if let Some(value) = self {
            tracer.visit(value)
        }
    }
}

// Result owns its one live variant; traced once.
impl<T: Trace, E: Trace> Trace for Result<T, E> {
    structural!();
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        match self {
            Ok(value) => tracer.visit(value),
            Err(error) => tracer.visit(error),
        }
    }
}

// a slice owns its elements; each traced once.
impl<T: Trace> Trace for [T] {
    structural!();
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        for item in self {
            tracer.visit(item)
        }
    }
}

// an array owns its elements; each traced once.
impl<T: Trace, const N: usize> Trace for [T; N] {
    structural!();
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        tracer.visit(self.as_slice())
    }
}

macro_rules! sequence {
    ($($c:ident),*) => {$(
        // the collection owns its elements; iteration visits each once.
        impl<T: Trace> Trace for $c<T> {
            structural!();
            #[inline]
            fn trace(&self, tracer: &mut Tracer) {
                for item in self {
                    tracer.visit(item)
                }
            }
        }
    )*};
}
sequence!(Vec, VecDeque, LinkedList, BTreeSet, BinaryHeap);

// the set owns its elements; iteration visits each once.
impl<T: Trace, S> Trace for HashSet<T, S> {
    structural!();
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        for item in self {
            tracer.visit(item)
        }
    }
}

// the map owns its keys and values; iteration visits each entry once.
impl<K: Trace, V: Trace, S> Trace for HashMap<K, V, S> {
    structural!();
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        for (key, value) in self {
            tracer.visit(key);
            tracer.visit(value);
        }
    }
}

// the map owns its keys and values; iteration visits each entry once.
impl<K: Trace, V: Trace> Trace for BTreeMap<K, V> {
    structural!();
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        for (key, value) in self {
            tracer.visit(key);
            tracer.visit(value);
        }
    }
}

macro_rules! tuple {
    ($($name:ident)+) => {
        // a tuple owns its fields; each traced once.
        impl<$($name: Trace),+> Trace for ($($name,)+) {
            structural!();
            #[allow(non_snake_case)]
            fn trace(&self, tracer: &mut Tracer) {
                let ($($name,)+) = self;
                $(tracer.visit($name);)+
            }
        }
    };
}
tuple!(A);
tuple!(A B);
tuple!(A B C);
tuple!(A B C D);
tuple!(A B C D E);
tuple!(A B C D E F);
tuple!(A B C D E F G);
tuple!(A B C D E F G H);
tuple!(A B C D E F G H I);
tuple!(A B C D E F G H I J);
tuple!(A B C D E F G H I J K);
tuple!(A B C D E F G H I J K L);

// the contents are traced once through a shared borrow, which is then held (or
// dropped) by the tracer; a failed borrow means a `&mut` is live, so the value is in use
// and reported opaque. The RefCell is part of the traced value (Tracer::hold's contract).
impl<T: ?Sized + Trace> Trace for RefCell<T> {
    structural!();
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        match self.try_borrow() {
            Ok(contents) => {
                tracer.visit(&*contents);
                // SAFETY: when trusted, the RefCell is part of the value being traced
                // (structural path), which the collector keeps alive while it holds.
                unsafe { tracer.hold_ref(contents) }
            }
            Err(_) => tracer.mark_opaque(),
        }
    }
}

// as for RefCell, with try_lock; a poisoned lock still guards valid contents.
impl<T: ?Sized + Trace> Trace for Mutex<T> {
    structural!();
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        let guard = match self.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return tracer.mark_opaque(),
        };
        tracer.visit(&*guard);
        // SAFETY: when trusted, the Mutex is part of the value being traced (structural
        // path), which the collector keeps alive while the guard is held.
        unsafe { tracer.hold(guard) }
    }
}

// as for Mutex, with a read guard (no writer can move contents while it is held).
impl<T: ?Sized + Trace> Trace for RwLock<T> {
    structural!();
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        let guard = match self.try_read() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return tracer.mark_opaque(),
        };
        tracer.visit(&*guard);
        // SAFETY: when trusted, the RwLock is part of the value being traced (structural
        // path), which the collector keeps alive while the guard is held.
        unsafe { tracer.hold(guard) }
    }
}
