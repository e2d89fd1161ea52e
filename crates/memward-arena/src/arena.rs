//! `Arena`: the single-threaded bump arena, its public face over [`Bump`].
//!
//! All state lives in `Bump` (bump pointer, chunk list, limit); this module adds the typed
//! allocation methods (shared with `SyncArena` through `typed`), the statistics and the
//! scopes. Allocation borrows the arena shared (`&self`) so many values can be alive at
//! once; anything that frees memory (`reset`, scopes, `set_limit`) takes `&mut self`, which
//! the borrow checker refuses while any allocated reference is alive: that is the whole
//! soundness argument for handing out `&mut T` from `&self`.

use crate::bump::Bump;
use crate::scope::ArenaScope;
use crate::typed::{self, RawBump};
use allocator_api2::alloc::AllocError;
use core::alloc::Layout;
use core::fmt;
use core::ptr::NonNull;

/// A bump arena: allocation is a pointer bump, everything is freed at once.
///
/// Values allocated with [`alloc`](Arena::alloc) and friends are never dropped (use
/// [`ArenaBox`](crate::ArenaBox) for values that need `Drop`). [`reset`](Arena::reset) and
/// [scopes](Arena::scope) free memory but keep every chunk, so a loop that fills and resets
/// an arena stops calling the global allocator after its first pass.
///
/// ```
/// use memward_arena::Arena;
///
/// let arena = Arena::new();
/// let x = arena.alloc(41u64);
/// *x += 1;
/// let name = arena.alloc_str("memward");
/// assert_eq!((*x, &*name), (42, "memward"));
/// ```
pub struct Arena {
    bump: Bump,
}

impl RawBump for Arena {
    #[inline(always)]
    fn raw_alloc(&self, layout: Layout) -> Option<NonNull<u8>> {
        self.bump.alloc_layout(layout)
    }
}

impl Default for Arena {
    fn default() -> Self {
        Arena::new()
    }
}

impl fmt::Debug for Arena {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Arena")
            .field("allocated_bytes", &self.allocated_bytes())
            .field("limit", &self.limit())
            .finish()
    }
}

// `&mut T` from `&self` is the point of an arena: each call returns fresh memory that no
// other reference can reach.
#[allow(clippy::mut_from_ref)]
impl Arena {
    /// An empty arena; it allocates nothing until the first allocation.
    ///
    /// ```
    /// let arena = memward_arena::Arena::new();
    /// assert_eq!(arena.allocated_bytes(), 0);
    /// ```
    pub const fn new() -> Self {
        Arena { bump: Bump::new() }
    }

    /// An arena whose first chunk holds at least `bytes` bytes of values.
    ///
    /// Panics if the global allocator refuses.
    ///
    /// ```
    /// let arena = memward_arena::Arena::with_capacity(4096);
    /// let before = arena.allocated_bytes();
    /// assert!(before >= 4096);
    /// arena.alloc_slice_copy(&[0u8; 4000]);
    /// assert_eq!(arena.allocated_bytes(), before);
    /// ```
    pub fn with_capacity(bytes: usize) -> Self {
        match Bump::with_capacity(bytes) {
            Some(bump) => Arena { bump },
            None => typed::out_of_memory(Layout::new::<u8>()),
        }
    }

    /// Moves `value` into the arena; panics if the arena's limit or the global allocator
    /// refuses (see [`try_alloc`](Arena::try_alloc)).
    ///
    /// ```
    /// let arena = memward_arena::Arena::new();
    /// let v = arena.alloc([1u32, 2, 3]);
    /// v[0] = 7;
    /// assert_eq!(*v, [7, 2, 3]);
    /// ```
    #[inline(always)]
    pub fn alloc<T>(&self, value: T) -> &mut T {
        typed::alloc_with(self, || value)
    }

    /// Moves `value` into the arena, or returns [`AllocError`] if the limit or the global
    /// allocator refuses.
    ///
    /// ```
    /// let mut arena = memward_arena::Arena::new();
    /// arena.set_limit(Some(0));
    /// assert!(arena.try_alloc(1u8).is_err());
    /// ```
    #[inline(always)]
    pub fn try_alloc<T>(&self, value: T) -> Result<&mut T, AllocError> {
        typed::try_alloc_with(self, || value)
    }

    /// Allocates space and writes `f()` straight into it, which lets the compiler build a
    /// large value in place instead of on the stack.
    ///
    /// ```
    /// let arena = memward_arena::Arena::new();
    /// let big = arena.alloc_with(|| [0u8; 1 << 16]);
    /// assert_eq!(big.len(), 65536);
    /// ```
    #[inline(always)]
    pub fn alloc_with<T, F: FnOnce() -> T>(&self, f: F) -> &mut T {
        typed::alloc_with(self, f)
    }

    /// [`alloc_with`](Arena::alloc_with) that returns [`AllocError`] instead of panicking.
    ///
    /// ```
    /// let arena = memward_arena::Arena::new();
    /// assert_eq!(*arena.try_alloc_with(|| 5).unwrap(), 5);
    /// ```
    #[inline(always)]
    pub fn try_alloc_with<T, F: FnOnce() -> T>(&self, f: F) -> Result<&mut T, AllocError> {
        typed::try_alloc_with(self, f)
    }

    /// Copies a string into the arena.
    ///
    /// ```
    /// let arena = memward_arena::Arena::new();
    /// let s = arena.alloc_str("hello");
    /// s.make_ascii_uppercase();
    /// assert_eq!(s, "HELLO");
    /// ```
    pub fn alloc_str(&self, s: &str) -> &mut str {
        typed::alloc_str(self, s)
    }

    /// Copies a slice of `Copy` values into the arena.
    ///
    /// ```
    /// let arena = memward_arena::Arena::new();
    /// let s = arena.alloc_slice_copy(&[1, 2, 3]);
    /// s.reverse();
    /// assert_eq!(s, &[3, 2, 1]);
    /// ```
    pub fn alloc_slice_copy<T: Copy>(&self, src: &[T]) -> &mut [T] {
        typed::alloc_slice_copy(self, src)
    }

    /// [`alloc_slice_copy`](Arena::alloc_slice_copy) that returns [`AllocError`] instead
    /// of panicking.
    ///
    /// ```
    /// let mut arena = memward_arena::Arena::new();
    /// arena.set_limit(Some(64));
    /// assert!(arena.try_alloc_slice_copy(&[0u8; 1000]).is_err());
    /// ```
    pub fn try_alloc_slice_copy<T: Copy>(&self, src: &[T]) -> Result<&mut [T], AllocError> {
        typed::try_alloc_slice_copy(self, src)
    }

    /// Collects an iterator of known length into a slice in the arena. Panics if the
    /// iterator yields fewer items than its `len()` promised (extra items are ignored).
    ///
    /// ```
    /// let arena = memward_arena::Arena::new();
    /// let squares = arena.alloc_slice_fill_iter((1..5).map(|i| i * i));
    /// assert_eq!(squares, &[1, 4, 9, 16]);
    /// ```
    pub fn alloc_slice_fill_iter<T, I>(&self, iter: I) -> &mut [T]
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: ExactSizeIterator,
    {
        typed::alloc_slice_fill_iter(self, iter)
    }

    /// Reserves raw space for `layout`: aligned, uninitialised, valid while the arena is
    /// borrowed. Returns [`AllocError`] if the limit or the global allocator refuses.
    ///
    /// ```
    /// use core::alloc::Layout;
    /// let arena = memward_arena::Arena::new();
    /// let p = arena.try_alloc_layout(Layout::from_size_align(24, 64).unwrap()).unwrap();
    /// assert_eq!(p.as_ptr() as usize % 64, 0);
    /// ```
    #[inline(always)]
    pub fn try_alloc_layout(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        self.bump.alloc_layout(layout).ok_or(AllocError)
    }

    /// Frees everything allocated and keeps every chunk (not only the largest), so the
    /// next pass reuses them without calling the global allocator.
    ///
    /// ```
    /// let mut arena = memward_arena::Arena::new();
    /// for round in 0..3 {
    ///     for i in 0..1000u64 {
    ///         arena.alloc(i);
    ///     }
    ///     let held = arena.allocated_bytes();
    ///     arena.reset();
    ///     assert_eq!(arena.allocated_bytes(), held); // chunks kept, not freed
    /// }
    /// ```
    pub fn reset(&mut self) {
        self.bump.reset();
    }

    pub(crate) fn bump_mut(&mut self) -> &mut Bump {
        &mut self.bump
    }

    pub(crate) fn bump(&self) -> &Bump {
        &self.bump
    }

    /// Bytes of the chunks the arena holds (headers included): what it took from the
    /// global allocator and has not given back.
    ///
    /// ```
    /// let arena = memward_arena::Arena::new();
    /// arena.alloc(1u8);
    /// assert!(arena.allocated_bytes() > 0);
    /// ```
    pub fn allocated_bytes(&self) -> usize {
        self.bump.allocated_bytes()
    }

    /// The cap set by [`set_limit`](Arena::set_limit), if any.
    ///
    /// ```
    /// let mut arena = memward_arena::Arena::new();
    /// arena.set_limit(Some(1 << 20));
    /// assert_eq!(arena.limit(), Some(1 << 20));
    /// ```
    pub fn limit(&self) -> Option<usize> {
        self.bump.limit()
    }

    /// Caps [`allocated_bytes`](Arena::allocated_bytes) exactly: the arena never holds more
    /// than `limit` bytes of chunks. An allocation that would need more fails with
    /// [`AllocError`] from the `try_` methods (and panics from the others); a chunk that
    /// would cross the limit is shrunk to what the request needs. If the arena already
    /// holds more, unused chunks (after the current one) are freed until it fits, when
    /// they can make it fit; chunks in use are kept and the arena grows no further.
    /// `None` removes the cap.
    ///
    /// ```
    /// let mut arena = memward_arena::Arena::new();
    /// arena.set_limit(Some(4096));
    /// let mut n = 0;
    /// while arena.try_alloc([0u8; 100]).is_ok() {
    ///     n += 1;
    /// }
    /// assert!(n >= 30 && arena.allocated_bytes() <= 4096);
    /// ```
    pub fn set_limit(&mut self, limit: Option<usize>) {
        self.bump.set_limit(limit);
    }

    /// Runs `f` with the arena and then frees everything `f` allocated, keeping what was
    /// allocated before. References made inside cannot escape `f`.
    ///
    /// ```
    /// let mut arena = memward_arena::Arena::new();
    /// let kept = arena.alloc(1u32) as *const u32;
    /// let held = arena.allocated_bytes();
    /// let sum = arena.scope(|a| {
    ///     let tmp = a.alloc_slice_fill_iter(0..1000u32);
    ///     tmp.iter().sum::<u32>()
    /// });
    /// assert_eq!(sum, 499500);
    /// // The next allocation reuses the scope's space.
    /// let after = arena.alloc(2u32) as *const u32;
    /// assert_eq!(after as usize, kept as usize + 4);
    /// # let _ = held;
    /// ```
    pub fn scope<R>(&mut self, f: impl FnOnce(&Arena) -> R) -> R {
        let guard = self.scope_guard();
        f(&guard)
    }

    /// A guard that derefs to the arena and, when dropped, frees everything allocated
    /// through it. Guards nest with [`ArenaScope::scope_guard`].
    ///
    /// ```
    /// let mut arena = memward_arena::Arena::new();
    /// {
    ///     let scope = arena.scope_guard();
    ///     scope.alloc_str("temporary");
    /// } // freed here
    /// ```
    pub fn scope_guard(&mut self) -> ArenaScope<'_> {
        ArenaScope::new(self)
    }
}
