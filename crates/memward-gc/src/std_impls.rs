//! `Trace` for the standard library's types.
//!
//! Leaves (numbers, `String`, `PathBuf`...) report nothing. Owning containers trace each
//! element once. Interior mutability goes through `try_borrow` / `try_lock` / `try_read`:
//! when the contents are in use right now the value is reported opaque (so kept alive),
//! and the guard is handed to [`Tracer::hold`] so that the thread-safe collector can keep
//! the contents still until it has decided. `Cell<T: Copy>` reports nothing: a `Copy`
//! type cannot own a `Gc`. Shared owners (`Rc`, `Arc`) get no impl on purpose: two
//! objects sharing one `Rc<Gc<_>>` would both report the same `Gc`.
use crate::trace::{Trace, Tracer};
use core::cell::{Cell, RefCell};
use core::marker::PhantomData;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, LinkedList, VecDeque};
use std::sync::{Mutex, RwLock, TryLockError};

macro_rules! leaf {
    ($($t:ty),* $(,)?) => {$(
        // SAFETY: the type owns no Gc; reporting nothing is exact.
        unsafe impl Trace for $t {
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

// SAFETY: a static reference owns nothing.
unsafe impl<T: ?Sized + 'static> Trace for &'static T {
    fn trace(&self, _: &mut Tracer) {}
}

// SAFETY: PhantomData owns nothing.
unsafe impl<T: ?Sized> Trace for PhantomData<T> {
    fn trace(&self, _: &mut Tracer) {}
}

// SAFETY: a Copy type cannot own a Gc (Gc is not Copy), so there is nothing to report.
unsafe impl<T: Copy> Trace for Cell<T> {
    fn trace(&self, _: &mut Tracer) {}
}

// SAFETY: the Box owns its contents; they are traced once.
unsafe impl<T: ?Sized + Trace> Trace for Box<T> {
    fn trace(&self, tracer: &mut Tracer) {
        (**self).trace(tracer)
    }
}

// SAFETY: Option owns its contents; traced once when present.
unsafe impl<T: Trace> Trace for Option<T> {
    fn trace(&self, tracer: &mut Tracer) {
        if let Some(value) = self {
            value.trace(tracer)
        }
    }
}

// SAFETY: Result owns its one live variant; traced once.
unsafe impl<T: Trace, E: Trace> Trace for Result<T, E> {
    fn trace(&self, tracer: &mut Tracer) {
        match self {
            Ok(value) => value.trace(tracer),
            Err(error) => error.trace(tracer),
        }
    }
}

// SAFETY: a slice owns its elements; each traced once.
unsafe impl<T: Trace> Trace for [T] {
    fn trace(&self, tracer: &mut Tracer) {
        for item in self {
            item.trace(tracer)
        }
    }
}

// SAFETY: an array owns its elements; each traced once.
unsafe impl<T: Trace, const N: usize> Trace for [T; N] {
    fn trace(&self, tracer: &mut Tracer) {
        self.as_slice().trace(tracer)
    }
}

macro_rules! sequence {
    ($($c:ident),*) => {$(
        // SAFETY: the collection owns its elements; iteration visits each once.
        unsafe impl<T: Trace> Trace for $c<T> {
            fn trace(&self, tracer: &mut Tracer) {
                for item in self {
                    item.trace(tracer)
                }
            }
        }
    )*};
}
sequence!(Vec, VecDeque, LinkedList, BTreeSet, BinaryHeap);

// SAFETY: the set owns its elements; iteration visits each once.
unsafe impl<T: Trace, S> Trace for HashSet<T, S> {
    fn trace(&self, tracer: &mut Tracer) {
        for item in self {
            item.trace(tracer)
        }
    }
}

// SAFETY: the map owns its keys and values; iteration visits each entry once.
unsafe impl<K: Trace, V: Trace, S> Trace for HashMap<K, V, S> {
    fn trace(&self, tracer: &mut Tracer) {
        for (key, value) in self {
            key.trace(tracer);
            value.trace(tracer);
        }
    }
}

// SAFETY: the map owns its keys and values; iteration visits each entry once.
unsafe impl<K: Trace, V: Trace> Trace for BTreeMap<K, V> {
    fn trace(&self, tracer: &mut Tracer) {
        for (key, value) in self {
            key.trace(tracer);
            value.trace(tracer);
        }
    }
}

macro_rules! tuple {
    ($($name:ident)+) => {
        // SAFETY: a tuple owns its fields; each traced once.
        unsafe impl<$($name: Trace),+> Trace for ($($name,)+) {
            #[allow(non_snake_case)]
            fn trace(&self, tracer: &mut Tracer) {
                let ($($name,)+) = self;
                $($name.trace(tracer);)+
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

// SAFETY: the contents are traced once through a shared borrow, which is then held (or
// dropped) by the tracer; a failed borrow means a `&mut` is live, so the value is in use
// and reported opaque. The RefCell is part of the traced value (Tracer::hold's contract).
unsafe impl<T: ?Sized + Trace> Trace for RefCell<T> {
    fn trace(&self, tracer: &mut Tracer) {
        match self.try_borrow() {
            Ok(contents) => {
                contents.trace(tracer);
                // SAFETY: the RefCell is part of the value being traced, which the
                // collector keeps alive while the guard is held.
                unsafe { tracer.hold(contents) }
            }
            Err(_) => tracer.mark_opaque(),
        }
    }
}

// SAFETY: as for RefCell, with try_lock; a poisoned lock still guards valid contents.
unsafe impl<T: ?Sized + Trace> Trace for Mutex<T> {
    fn trace(&self, tracer: &mut Tracer) {
        let guard = match self.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return tracer.mark_opaque(),
        };
        guard.trace(tracer);
        // SAFETY: the Mutex is part of the value being traced, which the collector keeps
        // alive while the guard is held.
        unsafe { tracer.hold(guard) }
    }
}

// SAFETY: as for Mutex, with a read guard (no writer can move contents while it is held).
unsafe impl<T: ?Sized + Trace> Trace for RwLock<T> {
    fn trace(&self, tracer: &mut Tracer) {
        let guard = match self.try_read() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return tracer.mark_opaque(),
        };
        guard.trace(tracer);
        // SAFETY: the RwLock is part of the value being traced, which the collector keeps
        // alive while the guard is held.
        unsafe { tracer.hold(guard) }
    }
}
