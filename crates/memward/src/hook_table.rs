//! The installed hook table and interposer (`hooks.rs` and `interpose.rs` are the public
//! sides and say how each works): two pointers and one byte saying whether either is set,
//! read on slow paths only.

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

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

/// How a block was asked for, so that a checker can match it with how it is given back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// The C functions (`malloc`, `calloc`, `realloc`, the aligned forms) and Rust's
    /// global allocator.
    Malloc = 0,
    /// C++ `operator new` / `operator delete`.
    New = 1,
    /// C++ `operator new[]` / `operator delete[]`.
    NewArray = 2,
}

/// An allocator put in front of the engine while installed ([`crate::interpose::install`]):
/// it serves every allocation, free, resize and size query of the program's thread heaps,
/// taking its own memory from the engine.
///
/// Each function runs with interposition suspended on its thread, so what it allocates or
/// frees itself (through the engine, C `malloc` or the global allocator) is served by the
/// engine directly. Functions must not unwind.
#[derive(Debug)]
pub struct Interposer {
    /// `size` bytes aligned to `align` (a power of two); `zeroed` asks for zero bytes. Null
    /// when out of memory.
    pub alloc: unsafe fn(size: usize, align: usize, zeroed: bool, kind: Kind) -> *mut u8,
    /// Frees `p` (not null), given back as `kind`; `size` is the size a sized `delete`
    /// passed, else 0.
    pub free: unsafe fn(p: *mut u8, kind: Kind, size: usize),
    /// Resizes `p` (not null) to `size` (not 0) bytes aligned to `align`; null on failure,
    /// `p` then still valid.
    pub realloc: unsafe fn(p: *mut u8, size: usize, align: usize) -> *mut u8,
    /// Bytes usable at `p` (C `malloc_usable_size`).
    pub usable_size: unsafe fn(p: *const u8) -> usize,
    /// `p` (not null) was given to `api` ("free", "realloc", ...) but is not memory of
    /// the engine: a stack or global address, or never allocated.
    pub foreign_free: unsafe fn(p: *mut u8, api: &'static str),
}

static HOOKS: AtomicPtr<Hooks> = AtomicPtr::new(ptr::null_mut());
static INTERPOSER: AtomicPtr<Interposer> = AtomicPtr::new(ptr::null_mut());

/// Bit of [`ACTIVE`]: hooks are installed.
const HOOKS_SET: u8 = 1;
/// Bit of [`ACTIVE`]: an interposer is installed.
const INTERPOSER_SET: u8 = 2;
/// Either is installed: the one byte heaps test to switch to hooked mode.
static ACTIVE: AtomicU8 = AtomicU8::new(0);

fn mark(bit: u8, on: bool) {
    if on {
        ACTIVE.fetch_or(bit, Ordering::Release);
    } else {
        ACTIVE.fetch_and(!bit, Ordering::Release);
    }
}

/// Installs (`Some`) or removes (`None`) the table.
pub fn set(hooks: Option<&'static Hooks>) {
    let p = hooks.map_or(ptr::null_mut(), |h| ptr::from_ref(h).cast_mut());
    HOOKS.store(p, Ordering::Release);
    mark(HOOKS_SET, hooks.is_some());
}

/// Installs (`Some`) or removes (`None`) the interposer.
pub fn set_interposer(interposer: Option<&'static Interposer>) {
    let p = interposer.map_or(ptr::null_mut(), |i| ptr::from_ref(i).cast_mut());
    INTERPOSER.store(p, Ordering::Release);
    mark(INTERPOSER_SET, interposer.is_some());
}

/// Are hooks or an interposer installed (so heaps run in hooked mode)?
#[inline]
pub fn installed() -> bool {
    ACTIVE.load(Ordering::Relaxed) != 0
}

/// The installed interposer, if any.
#[inline]
pub fn interposer() -> Option<&'static Interposer> {
    let p = INTERPOSER.load(Ordering::Acquire);
    // SAFETY: only `&'static Interposer`s are ever stored.
    unsafe { p.as_ref() }
}

/// The installed table, if any.
#[inline]
pub fn current() -> Option<&'static Hooks> {
    let p = HOOKS.load(Ordering::Acquire);
    // SAFETY: only `&'static Hooks` are ever stored.
    unsafe { p.as_ref() }
}
