//! Scopes: free everything allocated since a point, keep what came before.
//!
//! A scope is a checkpoint (current chunk and bump pointer) plus an exclusive borrow of the
//! arena. The guard lends the arena out only as `&Arena` tied to the guard's own borrow,
//! so every reference allocated inside dies before the guard does, and dropping the guard
//! can move the bump pointer back safely. Values allocated before the scope cannot be
//! alive either (taking `&mut Arena` required their borrows to end), so the arena's
//! shared borrow rules do all the work; no runtime check is needed.

use crate::bump::Checkpoint;
use crate::Arena;
use core::ops::Deref;

/// A scope in an [`Arena`]: derefs to the arena, and frees everything allocated through it
/// when dropped. Made by [`Arena::scope_guard`].
///
/// ```
/// let mut arena = memward_arena::Arena::new();
/// arena.alloc(1u64);
/// let mut outer = arena.scope_guard();
/// outer.alloc(2u64);
/// {
///     let inner = outer.scope_guard();
///     inner.alloc_slice_copy(&[0u8; 10_000]);
/// }
/// drop(outer);
/// ```
pub struct ArenaScope<'a> {
    arena: &'a mut Arena,
    checkpoint: Checkpoint,
}

impl<'a> ArenaScope<'a> {
    pub(crate) fn new(arena: &'a mut Arena) -> Self {
        let checkpoint = arena.bump().checkpoint();
        ArenaScope { arena, checkpoint }
    }

    /// A nested scope: frees what is allocated through it when dropped, and this scope
    /// still frees the rest when it is dropped.
    ///
    /// ```
    /// let mut arena = memward_arena::Arena::new();
    /// let mut outer = arena.scope_guard();
    /// let a = outer.alloc(1u8) as *const u8;
    /// let b = {
    ///     let inner = outer.scope_guard();
    ///     inner.alloc(2u8) as *const u8
    /// };
    /// // The inner scope's byte is free again.
    /// assert_eq!(outer.alloc(3u8) as *const u8, b);
    /// # let _ = a;
    /// ```
    pub fn scope_guard(&mut self) -> ArenaScope<'_> {
        ArenaScope::new(self.arena)
    }
}

impl Deref for ArenaScope<'_> {
    type Target = Arena;

    fn deref(&self) -> &Arena {
        self.arena
    }
}

impl Drop for ArenaScope<'_> {
    fn drop(&mut self) {
        self.arena.bump_mut().restore(self.checkpoint);
    }
}
