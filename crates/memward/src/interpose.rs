//! The interposition point: an allocator put in front of the engine, for the checker
//! (`memward-check`, `MEMWARD_CHECK=1`), without fast mode paying for it.
//!
//! It rides on hooked mode (`hooks.rs`, `docs/engine-hooks.md`): while an interposer is
//! installed, every thread heap runs in hooked mode, so every allocation reaches a slow path
//! and every block handed out flags its page, whose frees then leave the fast path too. At
//! those points the engine hands the operation to the interposer instead of serving it.
//! The interposer takes its own memory from the engine: inside its functions the thread
//! is in an unchecked section, where the engine serves everything directly. First-class
//! heaps ([`crate::Heap`]) are never interposed.
//!
//! The C front end passes the kind of C++ allocations through [`alloc`] and [`free`], so
//! that a checker can match `new` with `delete` and `new[]` with `delete[]`.

pub use crate::hook_table::{Interposer, Kind};
use crate::free::through_interposer;
use crate::{alloc as engine, hook_table, raw, thread};

/// Installs `interposer` for every thread heap. Meant for process setup, before any block
/// exists: blocks the engine handed out before are given to the interposer when freed.
pub fn install(interposer: &'static Interposer) {
    hook_table::set_interposer(Some(interposer));
    switch_this_thread();
}

/// Removes the interposer; the blocks it handed out must not be freed afterwards.
///
/// ```
/// memward::interpose::remove();
/// assert!(!memward::interpose::installed());
/// ```
pub fn remove() {
    hook_table::set_interposer(None);
    switch_this_thread();
}

/// Is an interposer installed?
///
/// ```
/// assert!(!memward::interpose::installed());
/// ```
#[inline]
pub fn installed() -> bool {
    hook_table::interposer().is_some()
}

fn switch_this_thread() {
    let h = thread::current();
    if !thread::is_empty(h) {
        // SAFETY: the thread's own heap, not borrowed during this call.
        unsafe { (*h).local().follow_hooks() };
    }
}

/// Runs `f` with interposition suspended on the calling thread: what it allocates or
/// frees goes to the engine directly. For an interposer's work that does not start in one
/// of its functions (an `atexit` handler, a signal handler).
///
/// ```
/// let p = memward::interpose::unchecked(|| memward::raw::malloc(10));
/// // SAFETY: `p` came from memward's malloc and is freed once.
/// unsafe { memward::raw::free(p) };
/// ```
pub fn unchecked<R>(f: impl FnOnce() -> R) -> R {
    let me = crate::free::reporting_heap();
    if me.is_null() {
        return f();
    }
    // SAFETY: the calling thread's heap; heaps are never unmapped.
    let was_in = unsafe { (*me).enter_hook() };
    let r = f();
    // SAFETY: as above.
    unsafe { (*me).leave_hook(was_in) };
    r
}

/// Allocates `size` bytes aligned to `align` (a power of two) as `kind`: through the
/// interposer when one is installed (and the thread is not inside it), else as
/// [`raw::aligned_alloc`]. Null when out of memory.
///
/// ```
/// use memward::interpose::{alloc, free, Kind};
/// let p = alloc(24, 16, Kind::New);
/// assert!(!p.is_null());
/// // SAFETY: `p` is the live 24-byte block `alloc` gave as `Kind::New`.
/// unsafe { free(p, Kind::New, 24) };
/// ```
pub fn alloc(size: usize, align: usize, kind: Kind) -> *mut u8 {
    // A thread without a heap yet may be the process's first allocation: creating the
    // heap (in `through_interposer`) runs the setup that installs the interposer, which
    // must see this block's kind.
    if hook_table::installed() || thread::is_empty(thread::current()) {
        if let Some(p) = through_interposer(|i| {
            // SAFETY: the interposer's contract; align is a power of two by ours.
            unsafe { (i.alloc)(size, align, false, kind) }
        }) {
            return p;
        }
    }
    // As the global allocator decides: plain malloc gives 16 bytes to blocks above 8.
    if align <= 8 || (align <= engine::MIN_ALIGN && size > 8) {
        raw::malloc(size)
    } else {
        raw::aligned_alloc(align, size)
    }
}

/// Frees `p` (null is ignored), given back as `kind` with the size a sized `delete`
/// passed (else 0): through the interposer when it handed the block out.
///
/// # Safety
/// As for [`raw::free`]; with an interposer installed, any pointer (the interposer
/// reports bad ones).
pub unsafe fn free(p: *mut u8, kind: Kind, size: usize) {
    if p.is_null() {
        return;
    }
    if hook_table::installed() {
        if !raw::owns(p) {
            // SAFETY: p is not null. Not the engine's either way: never freed by it.
            unsafe { foreign_free(p, "operator delete") };
            return;
        }
        // SAFETY: p is in engine memory, so its segment and page headers are mapped.
        let page = unsafe { (*crate::segment::Segment::of(p)).page_of(p) };
        // SAFETY: page is a mapped page header.
        let interposed = unsafe { crate::free::interposed_page(page) };
        // SAFETY: the interposer's contract (any pointer of engine memory).
        if interposed && through_interposer(|i| unsafe { (i.free)(p, kind, size) }).is_some() {
            return;
        }
    }
    // SAFETY: forwarded precondition.
    unsafe { raw::free(p) }
}

/// Tells the interposer that `p`, given to `api`, is not memory of the engine. Returns
/// whether an interposer took it (it reports, and may end the process); `false` leaves
/// the front end to say what it says in fast mode.
///
/// # Safety
/// `p` is not null.
pub unsafe fn foreign_free(p: *mut u8, api: &'static str) -> bool {
    through_interposer(|i| {
        // SAFETY: the interposer's contract.
        unsafe { (i.foreign_free)(p, api) }
    })
    .is_some()
}
