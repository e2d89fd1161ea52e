//! The installed hook table and interposer (`hooks.rs` and `interpose.rs` are the public
//! sides and say how each works): two pointers and one byte saying whether either is set,
//! read on slow paths only.

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, Ordering};

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
/// // SAFETY: `p` came from memward's malloc and is freed once.
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
/// Bit of [`ACTIVE`]: the hooks are installed in sampled mode ([`RATE`] is not zero).
const SAMPLED_SET: u8 = 4;
/// Bit of [`ACTIVE`], never cleared: sampled mode was on, so blocks of pages flagged
/// `FLAG_SAMPLED` may be live, whose frees (from other threads too) must be looked at.
const SAMPLED_EVER: u8 = 8;
/// What heaps test at their tick to choose their mode, and frees from other threads to
/// know whether to look at a block's page.
static ACTIVE: AtomicU8 = AtomicU8::new(0);
/// Mean bytes between samples in sampled mode.
static RATE: AtomicU64 = AtomicU64::new(0);

/// A heap's mode: fast (no hooks), hooked (every allocation on the slow path, every block
/// reported) or sampled (`sampling.rs`).
pub const MODE_FAST: u8 = 0;
/// See [`MODE_FAST`].
pub const MODE_HOOKED: u8 = 1;
/// See [`MODE_FAST`].
pub const MODE_SAMPLED: u8 = 2;

fn mark(bit: u8, on: bool) {
    if on {
        ACTIVE.fetch_or(bit, Ordering::Release);
    } else {
        ACTIVE.fetch_and(!bit, Ordering::Release);
    }
}

/// Installs (`Some`) or removes (`None`) the table; `rate` (bytes, 0 for every
/// allocation) selects sampled mode.
pub fn set(hooks: Option<&'static Hooks>, rate: u64) {
    let p = hooks.map_or(ptr::null_mut(), |h| ptr::from_ref(h).cast_mut());
    let sampled = hooks.is_some() && rate > 0;
    if sampled {
        RATE.store(rate, Ordering::Relaxed);
        mark(SAMPLED_EVER, true);
    }
    HOOKS.store(p, Ordering::Release);
    mark(SAMPLED_SET, sampled);
    mark(HOOKS_SET, hooks.is_some());
}

/// Installs (`Some`) or removes (`None`) the interposer.
pub fn set_interposer(interposer: Option<&'static Interposer>) {
    let p = interposer.map_or(ptr::null_mut(), |i| ptr::from_ref(i).cast_mut());
    INTERPOSER.store(p, Ordering::Release);
    mark(INTERPOSER_SET, interposer.is_some());
}

/// Are hooks or an interposer installed (in either mode)?
#[inline]
pub fn installed() -> bool {
    ACTIVE.load(Ordering::Relaxed) & (HOOKS_SET | INTERPOSER_SET) != 0
}

/// The bits heaps test at their tick: zero while no hooks nor interposer are installed
/// (nor ever were in sampled mode), so that a heap in fast mode stays as it is.
#[inline]
pub fn active() -> u8 {
    ACTIVE.load(Ordering::Relaxed)
}

/// Must frees from other threads look at the block's page (hooks or an interposer are
/// installed, or sampled blocks may be live)?
#[inline]
pub fn watching_frees() -> bool {
    ACTIVE.load(Ordering::Relaxed) != 0
}

/// Are the hooks in sampled mode (and no interposer installed)?
#[inline]
pub fn sampled() -> bool {
    ACTIVE.load(Ordering::Relaxed) & (HOOKS_SET | INTERPOSER_SET | SAMPLED_SET)
        == HOOKS_SET | SAMPLED_SET
}

/// The sample rate of sampled mode (bytes; 0 when never set).
#[inline]
pub fn rate() -> u64 {
    RATE.load(Ordering::Relaxed)
}

/// The mode a heap should be in: an interposer or plain hooks need hooked mode, sampled
/// hooks sampled mode, except for first-class heaps, which are never sampled (dropping
/// one releases its blocks without frees, which would leave stale sampled entries).
#[inline]
pub fn wanted_mode(first_class: bool) -> u8 {
    let a = ACTIVE.load(Ordering::Relaxed);
    if a & (HOOKS_SET | INTERPOSER_SET) == 0 {
        MODE_FAST
    } else if a & (INTERPOSER_SET | SAMPLED_SET) != SAMPLED_SET {
        MODE_HOOKED
    } else if first_class {
        MODE_FAST
    } else {
        MODE_SAMPLED
    }
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
