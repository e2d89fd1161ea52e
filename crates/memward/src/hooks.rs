//! The hook point: how a profiler or checker sees every allocation and free without fast
//! mode paying for it.
//!
//! Hooks are three plain function pointers in one table, installed process-wide. Fast mode
//! (no table) adds nothing to the fast paths: a heap notices the table at its next slow path
//! and switches to *hooked mode*, in which its direct table points only at the empty page
//! (mimalloc's empty-heap trick), so every `malloc` takes the slow path, where the hook is
//! called. Each block handed out in hooked mode marks its page with `FLAG_HOOKED`, so the
//! free fast path's single test of the page flags fails and the free goes out of line,
//! where the hook is called. Frees from other threads are out of line already; they test
//! the table there.
//!
//! *Sampled mode* ([`install_sampled`]) reports only a Poisson sample by bytes: the engine
//! decides which allocations are sampled (`sampling.rs`), unsampled ones keep the fast
//! path, and only the frees (and resizes) of sampled blocks reach the hooks. Details and
//! the costs: `docs/engine-hooks.md`.

pub use crate::hook_table::Hooks;
use crate::page::FLAG_SAMPLED;
use crate::segment::Segment;
use crate::{hook_table, sampling, thread};

/// Installs `hooks` for every thread, replacing any installed before. The calling
/// thread's heap switches at once, other threads' heaps within a few of their slow paths
/// (new heaps start switched), so blocks allocated before may be reported only when
/// freed: hooks must ignore pointers they do not know.
pub fn install(hooks: &'static Hooks) {
    hook_table::set(Some(hooks), 0);
    switch_this_thread();
}

/// Installs `hooks` in sampled mode: allocations are sampled as by a Poisson process of
/// one point per `rate` bytes on average (an allocation of `size` bytes is reported with
/// probability `1 - exp(-size / rate)`, independently of the others), and only the frees
/// and resizes of reported blocks are reported. A resize reports `realloc` when the old
/// and the new block are both sampled, `free` of the old one when only it was, `alloc`
/// of the new one when only it is (the new block is sampled by its size, as an
/// allocation). Heaps switch as with [`install`]; first-class heaps are not sampled.
/// A `rate` of 0 is [`install`]. Replaces hooks installed before.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// static SAMPLED: AtomicUsize = AtomicUsize::new(0);
/// unsafe fn on_alloc(_p: *mut u8, _size: usize) {
///     SAMPLED.fetch_add(1, Ordering::Relaxed);
/// }
/// unsafe fn on_free(_p: *mut u8) {}
/// unsafe fn on_realloc(_old: *mut u8, _new: *mut u8, _size: usize) {}
/// static HOOKS: memward::hooks::Hooks =
///     memward::hooks::Hooks { alloc: on_alloc, free: on_free, realloc: on_realloc };
///
/// memward::hooks::install_sampled(&HOOKS, 4096);
/// assert_eq!(memward::hooks::sample_rate(), Some(4096));
/// // 1000 blocks of 1 MiB: each is sampled with probability 1 - exp(-256).
/// let blocks: Vec<*mut u8> = (0..1000).map(|_| memward::raw::malloc(1 << 20)).collect();
/// memward::hooks::remove();
/// assert_eq!(SAMPLED.load(Ordering::Relaxed), 1000);
/// // SAFETY: blocks of memward's malloc, freed once.
/// blocks.into_iter().for_each(|p| unsafe { memward::raw::free(p) });
/// ```
pub fn install_sampled(hooks: &'static Hooks, rate: u64) {
    hook_table::set(Some(hooks), rate);
    switch_this_thread();
}

/// The sample rate (bytes) when hooks are installed in sampled mode, else `None`.
///
/// ```
/// assert_eq!(memward::hooks::sample_rate(), None);
/// ```
pub fn sample_rate() -> Option<u64> {
    hook_table::sampled().then(hook_table::rate)
}

/// Removes the installed hooks; heaps return to fast mode as they noticed them.
///
/// ```
/// memward::hooks::remove();
/// assert!(!memward::hooks::installed());
/// ```
pub fn remove() {
    hook_table::set(None, 0);
    switch_this_thread();
}

/// Are hooks installed?
///
/// ```
/// assert!(!memward::hooks::installed());
/// ```
#[inline]
pub fn installed() -> bool {
    hook_table::current().is_some()
}

fn switch_this_thread() {
    let h = thread::current();
    if !thread::is_empty(h) {
        // SAFETY: the thread's own heap, not borrowed during this call.
        unsafe { (*h).local().follow_hooks() };
    }
}

/// Blocks sampled in sampled mode that are still live: their frees will be reported.
///
/// ```
/// assert_eq!(memward::hooks::sampled_blocks(), 0);
/// ```
pub fn sampled_blocks() -> usize {
    sampling::live_count()
}

/// Does the page holding `p` carry live sampled blocks (so that its frees leave the fast
/// path)? For tests of sampled mode.
///
/// # Safety
/// `p` is a live block of memward (or an aligned pointer into one).
#[doc(hidden)]
pub unsafe fn sampled_page(p: *const u8) -> bool {
    // SAFETY: a live block's page is readable.
    unsafe { (*(*Segment::of(p)).page_of(p)).flags() & FLAG_SAMPLED != 0 }
}

/// Makes the heaps that enter sampled mode from now on (the calling thread's at the next
/// [`install_sampled`]) draw their samples from `seed`, so that a test sees the same
/// samples for the same allocations on every run; 0 returns to seeds from each heap's
/// address and the time.
///
/// ```
/// memward::hooks::set_sampling_seed(42);
/// memward::hooks::set_sampling_seed(0);
/// ```
pub fn set_sampling_seed(seed: u64) {
    sampling::set_seed(seed);
}
