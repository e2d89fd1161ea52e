//! The installed hook table (`hooks.rs` is the public side and says how hooks work): one
//! pointer, read on slow paths only.

use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

/// Functions called on every allocation and free while installed
/// ([`crate::hooks::install`]).
///
/// Each runs on the thread doing the operation, after an allocation succeeded and before
/// a free releases the block. A hook is never re-entered on its thread: memory it
/// allocates itself (through `malloc` or the global allocator) is served but not reported.
/// Hooks must not unwind.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// static ALLOCS: AtomicUsize = AtomicUsize::new(0);
/// unsafe fn on_alloc(_p: *mut u8, _size: usize) {
///     ALLOCS.fetch_add(1, Ordering::Relaxed);
/// }
/// unsafe fn on_free(_p: *mut u8) {}
/// unsafe fn on_realloc(_old: *mut u8, _new: *mut u8, _size: usize) {}
/// static HOOKS: memward::hooks::Hooks =
///     memward::hooks::Hooks { alloc: on_alloc, free: on_free, realloc: on_realloc };
///
/// memward::hooks::install(&HOOKS);
/// let p = memward::raw::malloc(40);
/// memward::hooks::remove();
/// assert_eq!(ALLOCS.load(Ordering::Relaxed), 1);
/// unsafe { memward::raw::free(p) };
/// ```
#[derive(Debug)]
pub struct Hooks {
    /// After `size` requested bytes were allocated at `p` (every allocating entry point,
    /// `realloc` of null included).
    pub alloc: unsafe fn(p: *mut u8, size: usize),
    /// Before the block at `p` (the pointer the program holds) is freed.
    pub free: unsafe fn(p: *mut u8),
    /// After a successful resize of `old` to `new` (possibly equal) with `size` requested
    /// bytes.
    pub realloc: unsafe fn(old: *mut u8, new: *mut u8, size: usize),
}

static HOOKS: AtomicPtr<Hooks> = AtomicPtr::new(ptr::null_mut());

/// Installs (`Some`) or removes (`None`) the table.
pub fn set(hooks: Option<&'static Hooks>) {
    let p = hooks.map_or(ptr::null_mut(), |h| ptr::from_ref(h).cast_mut());
    HOOKS.store(p, Ordering::Release);
}

/// Are hooks installed?
#[inline]
pub fn installed() -> bool {
    !HOOKS.load(Ordering::Relaxed).is_null()
}

/// The installed table, if any.
#[inline]
pub fn current() -> Option<&'static Hooks> {
    let p = HOOKS.load(Ordering::Acquire);
    // SAFETY: only `&'static Hooks` are ever stored.
    unsafe { p.as_ref() }
}
