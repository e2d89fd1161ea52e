#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

/// Leak detection at exit by reachability (LeakSanitizer's method).
pub mod leaks;

mod block;
mod checker;
mod depot;
mod exit;
mod fork;
mod guard;
mod options;
mod quarantine;
mod registry;
mod report;
mod signal;
mod stacks;
mod suppress;
mod threads;

pub use block::Kind;

/// The allocator the checker takes its memory from (memward's engine; tests may use
/// libc).
///
/// ```
/// use memward_check::Backing;
/// unsafe fn alloc(size: usize, align: usize) -> *mut u8 {
///     let mut p = core::ptr::null_mut();
///     // SAFETY: `p` is a valid out-pointer; align is a power of two >= 16.
///     if unsafe { libc::posix_memalign(&mut p, align, size) } != 0 {
///         return core::ptr::null_mut();
///     }
///     p.cast()
/// }
/// unsafe fn free(p: *mut u8) {
///     // SAFETY: `p` came from posix_memalign.
///     unsafe { libc::free(p.cast()) }
/// }
/// static LIBC: Backing = Backing {
///     alloc,
///     alloc_at: None,
///     free,
///     owns: |_| false,
///     readable_from: |_| usize::MAX,
///     unchecked: |f| f(),
/// };
/// ```
pub struct Backing {
    /// `size` bytes aligned to `align` (a power of two, >= 16), null when out of memory.
    pub alloc: unsafe fn(size: usize, align: usize) -> *mut u8,
    /// The placement of blocks with large alignments, if the backing has one (else they
    /// are cut from an `alloc` block aligned like them, as every other block).
    pub alloc_at: Option<AllocAt>,
    /// Frees a block `alloc` returned.
    pub free: unsafe fn(p: *mut u8),
    /// Is `p` in memory the backing manages and has mapped? (The leak scan skips such
    /// memory as roots: the checker's own tables live there too. An address the backing
    /// reserves but has not mapped must answer false: the OS may map the program's memory
    /// there, which the scan must read.)
    pub owns: fn(p: *const u8) -> bool,
    /// For `p` in the backing's memory: an address at or below `p` from which every byte
    /// up to `p` is mapped and readable (apart from pages the checker protects itself),
    /// such as the start of `p`'s page of blocks; `usize::MAX` when the backing cannot
    /// tell. The checker reads a block's header before the address the program passes,
    /// and asks the kernel whether it can (a system call) only when the header lies on an
    /// earlier OS page and below this address.
    pub readable_from: fn(p: *const u8) -> usize,
    /// Runs `f` with checking suspended on this thread: what `f` allocates or frees (also
    /// through the global allocator or C malloc) goes straight to the backing. For work
    /// that starts outside an entry point: the atexit leak check, the SIGSEGV handler.
    pub unchecked: fn(f: &mut dyn FnMut()),
}

/// A backing's placement of blocks whose alignment is large: the backing block starts one
/// OS page before an aligned address, which the checker hands out (the page holds the
/// header and the left red zone). The ordinary layout puts a whole alignment there
/// instead, which costs that much memory, and which some backings cannot resolve: the
/// engine finds a block from a pointer only in the block's first 4 MiB segment, so a free
/// of a pointer 4 MiB or more past the block's start would not reach the checker.
///
/// ```
/// use memward_check::AllocAt;
/// unsafe fn alloc_at(size: usize, align: usize, offset: usize) -> *mut u8 {
///     // A backing that cannot place blocks so would not offer `AllocAt`; this one
///     // gives up (null means out of memory).
///     let _ = (size, align, offset);
///     core::ptr::null_mut()
/// }
/// let at = AllocAt { min_align: 2 << 20, alloc: alloc_at };
/// assert!(at.min_align.is_power_of_two());
/// ```
pub struct AllocAt {
    /// The smallest alignment placed this way (a power of two above the page size).
    pub min_align: usize,
    /// `size` bytes at an address `p` such that `p + offset` is a multiple of `align` (a
    /// power of two of at least `min_align`), with `offset` the OS page size; null when
    /// out of memory. The block is freed with [`Backing::free`]`(p)`.
    pub alloc: unsafe fn(size: usize, align: usize, offset: usize) -> *mut u8,
}

/// Reads the `MEMWARD_CHECK*` variables; true if checking is on (then the engine routes
/// to the entry points below). Called once, during the process setup of the first
/// allocation, before any block exists. Registers the checker's own atexit, fork and
/// signal handlers. A suppressions file that cannot be read or parsed ends the process
/// with a message and status 1.
///
/// ```
/// # use memward_check::Backing;
/// # static B: Backing = Backing { alloc: |_, _| core::ptr::null_mut(), alloc_at: None, free: |_| {},
/// #     owns: |_| false, readable_from: |_| usize::MAX, unchecked: |f| f() };
/// // Without MEMWARD_CHECK=1 in the environment, checking stays off.
/// if std::env::var_os("MEMWARD_CHECK").is_none() {
///     assert!(!memward_check::configure_from_env(&B));
/// }
/// ```
pub fn configure_from_env(backing: &'static Backing) -> bool {
    if std::env::var("MEMWARD_CHECK").as_deref() != Ok("1") {
        return false;
    }
    let opts = match options::parse(|k| std::env::var(k).ok(), |w| report::warn(&w)) {
        Ok(o) => o,
        Err(e) => {
            report::warn(&e);
            // SAFETY: _exit has no preconditions.
            unsafe { libc::_exit(1) }
        }
    };
    if !stacks::init() {
        report::warn("cannot map memory for the stack depot; checking is off");
        return false;
    }
    let guards = opts.guard != options::GuardMode::None;
    if !checker::install(backing, opts) {
        // Configured before: checking is on.
        return true;
    }
    guard::init();
    stacks::set_depth(checker::options().depth);
    if guards {
        signal::install();
    }
    exit::register();
    fork::register();
    true
}

/// Allocates `size` bytes aligned to `align` (a power of two; values below 16 mean 16),
/// zeroed if `zeroed`, filled with `0xbe` otherwise; null when out of memory (the engine
/// sets `ENOMEM`).
///
/// ```no_run
/// // The engine calls it (after configure_from_env returned true):
/// // SAFETY: checking is configured; called outside re-entry.
/// let p = unsafe { memward_check::alloc(13, 16, false, memward_check::Kind::Malloc) };
/// ```
///
/// # Safety
/// Checking is configured (`configure_from_env` returned true), and the caller runs it
/// outside re-entry: while it runs, allocations on this thread go to the backing.
pub unsafe fn alloc(size: usize, align: usize, zeroed: bool, kind: Kind) -> *mut u8 {
    let align = align.max(16);
    if !align.is_power_of_two() {
        return core::ptr::null_mut();
    }
    let (stack, thread, guard) = stacks::capture_alloc();
    // SAFETY: per the contract; align is a power of two >= 16.
    unsafe { checker::alloc(size, align, zeroed, kind, stack, thread, guard) }
}

/// Frees `p` (non-null), which the program allocated with `kind`'s function; `size` is
/// the size a sized `delete` passed, else 0. Reports double, invalid and mismatched frees
/// and red-zone damage.
///
/// ```no_run
/// // SAFETY: checking is configured; called outside re-entry; `p` is live.
/// let p = unsafe { memward_check::alloc(13, 16, false, memward_check::Kind::New) };
/// unsafe { memward_check::free(p, memward_check::Kind::New, 13) };
/// ```
///
/// # Safety
/// As [`alloc`]; `p` is not null.
pub unsafe fn free(p: *mut u8, kind: Kind, size: usize) {
    let (stack, thread) = stacks::capture();
    checker::free(p as usize, kind, size, stack, thread, "free");
}

/// Resizes the block at `p` (non-null) to `size` (> 0) bytes aligned to `align`: always a
/// new block (the old one goes to quarantine). Null when out of memory, the old block
/// untouched. `realloc` of a freed or invalid pointer is reported.
///
/// ```no_run
/// // SAFETY: checking is configured; called outside re-entry; `p` is live.
/// let p = unsafe { memward_check::alloc(13, 16, false, memward_check::Kind::Malloc) };
/// let q = unsafe { memward_check::realloc(p, 100, 16) };
/// ```
///
/// # Safety
/// As [`alloc`]; `p` is not null and `size` is not 0.
pub unsafe fn realloc(p: *mut u8, size: usize, align: usize) -> *mut u8 {
    let align = align.max(16);
    if !align.is_power_of_two() {
        return core::ptr::null_mut();
    }
    let (stack, thread, guard) = stacks::capture_alloc();
    // SAFETY: per the contract; align is a power of two >= 16.
    unsafe { checker::realloc(p as usize, size, align, stack, thread, guard) }
}

/// `malloc_usable_size`: the requested size of the live block at `p` (so a program that
/// uses its usable size stays out of the red zone). Reports a pointer that is not a live
/// block's start, and returns 0 for it.
///
/// ```no_run
/// // SAFETY: checking is configured; called outside re-entry.
/// let p = unsafe { memward_check::alloc(13, 16, false, memward_check::Kind::Malloc) };
/// assert_eq!(unsafe { memward_check::usable_size(p) }, 13);
/// ```
///
/// # Safety
/// As [`alloc`].
pub unsafe fn usable_size(p: *const u8) -> usize {
    checker::usable_size(p as usize)
}

/// `p` (non-null) is not memory of the backing: a stack or global address, never
/// allocated. `api` is "free", "realloc", "operator delete", ... Reports an invalid free
/// unless suppressed.
///
/// ```no_run
/// let x = 0u64;
/// // SAFETY: checking is configured; called outside re-entry.
/// unsafe { memward_check::foreign_free(&x as *const u64 as *mut u8, "free") };
/// ```
///
/// # Safety
/// As [`alloc`].
pub unsafe fn foreign_free(p: *mut u8, api: &'static str) {
    checker::foreign_free(p as usize, api);
}
