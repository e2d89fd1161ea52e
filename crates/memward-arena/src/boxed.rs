//! `ArenaBox`: an owning pointer into an arena that runs `Drop`.
//!
//! Plain arena allocations are never dropped, which leaks whatever a value owns (a
//! `String`'s buffer, a file handle). `ArenaBox` owns its value like `Box` does and drops it
//! in place when the box goes; the arena memory itself comes back at `reset` or when the
//! arena goes. The box borrows the arena (`'a`), so it cannot outlive the memory, and
//! `reset` (which needs `&mut Arena`) cannot run while a box is alive.

use crate::typed::{self, RawBump};
use crate::Arena;
use allocator_api2::alloc::AllocError;
use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

/// A value in an [`Arena`] that is dropped when the box is.
///
/// ```
/// use memward_arena::{Arena, ArenaBox};
///
/// let arena = Arena::new();
/// let mut names = ArenaBox::new_in(Vec::new(), &arena);
/// names.push(String::from("heap buffer, freed when the box drops"));
/// assert_eq!(names.len(), 1);
/// drop(names); // the Vec and its String are dropped here
/// ```
pub struct ArenaBox<'a, T> {
    ptr: NonNull<T>,
    // Owns a `T` and borrows the arena for `'a`.
    marker: PhantomData<(T, &'a Arena)>,
}

impl<'a, T> ArenaBox<'a, T> {
    /// Moves `value` into `arena`; panics if the arena's limit or the global allocator
    /// refuses.
    ///
    /// ```
    /// let arena = memward_arena::Arena::new();
    /// let b = memward_arena::ArenaBox::new_in(String::from("x"), &arena);
    /// assert_eq!(&*b, "x");
    /// ```
    pub fn new_in(value: T, arena: &'a Arena) -> Self {
        let r = typed::alloc_with(arena, || value);
        ArenaBox {
            ptr: NonNull::from(r),
            marker: PhantomData,
        }
    }

    /// Moves `value` into `arena`, or gives it back inside the error's tuple if the
    /// arena's limit or the global allocator refuses.
    ///
    /// ```
    /// let mut arena = memward_arena::Arena::new();
    /// arena.set_limit(Some(0));
    /// let (err, value) = memward_arena::ArenaBox::try_new_in(7u32, &arena).unwrap_err();
    /// assert_eq!(value, 7);
    /// # let _ = err;
    /// ```
    pub fn try_new_in(value: T, arena: &'a Arena) -> Result<Self, (AllocError, T)> {
        match arena.raw_alloc(core::alloc::Layout::new::<T>()) {
            Some(p) => {
                let ptr = p.cast::<T>();
                // SAFETY: fresh space sized and aligned for `T`, reserved for this box.
                unsafe { ptr.as_ptr().write(value) };
                Ok(ArenaBox {
                    ptr,
                    marker: PhantomData,
                })
            }
            None => Err((AllocError, value)),
        }
    }

    /// Moves the value out of the arena.
    ///
    /// ```
    /// let arena = memward_arena::Arena::new();
    /// let b = memward_arena::ArenaBox::new_in(vec![1, 2], &arena);
    /// assert_eq!(memward_arena::ArenaBox::into_inner(b), vec![1, 2]);
    /// ```
    pub fn into_inner(this: Self) -> T {
        let this = ManuallyDrop::new(this);
        // SAFETY: the box owns an initialised `T`; `ManuallyDrop` keeps `Drop` from
        // dropping it again after it is read out.
        unsafe { this.ptr.as_ptr().read() }
    }

    /// Gives up ownership: the value stays in the arena and is never dropped.
    ///
    /// ```
    /// let arena = memward_arena::Arena::new();
    /// let r: &mut u32 = memward_arena::ArenaBox::leak(memward_arena::ArenaBox::new_in(3, &arena));
    /// *r += 1;
    /// assert_eq!(*r, 4);
    /// ```
    pub fn leak(this: Self) -> &'a mut T {
        let this = ManuallyDrop::new(this);
        // SAFETY: the value is initialised and lives as long as the arena borrow `'a`;
        // the box is forgotten, so this is the only reference.
        unsafe { &mut *this.ptr.as_ptr() }
    }
}

impl<T> Deref for ArenaBox<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the box owns an initialised `T` that lives while the arena is borrowed.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for ArenaBox<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only access.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T> Drop for ArenaBox<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the box owns an initialised `T` and is being dropped, so it is dropped
        // exactly once; the memory stays with the arena.
        unsafe { core::ptr::drop_in_place(self.ptr.as_ptr()) }
    }
}

impl<T: fmt::Debug> fmt::Debug for ArenaBox<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: fmt::Display> fmt::Display for ArenaBox<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

impl<T: PartialEq> PartialEq for ArenaBox<'_, T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

// SAFETY: an `ArenaBox` is a unique owner of a `T`; sending it sends the `T` (and shares
// nothing with the arena, whose `&Arena` the box only holds for the lifetime).
unsafe impl<T: Send> Send for ArenaBox<'_, T> {}
// SAFETY: `&ArenaBox<T>` only gives `&T`.
unsafe impl<T: Sync> Sync for ArenaBox<'_, T> {}
