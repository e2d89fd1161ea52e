//! The hooks: what a thread does for each allocation, resize and free.
//!
//! Nothing on the common path takes a shared lock: the stack is walked with the rule
//! table (a frame seen for the first time is learned under the unwinder's lock), found
//! in the trie without a lock (a new node is added under the trie's lock), and the event
//! appended to the thread's own ring (`ring`). The thread's cache (id, stack bounds,
//! ring, sampling countdown) lives in a `Cell` in thread-local storage with no destructor,
//! so it stays usable while the C library runs other destructors at thread exit; the ring
//! goes back through a thread-specific-data destructor, which runs after Rust's and C++'s
//! thread-local destructors (whose frees are still recorded). An event after that (the C
//! library's own frees as the thread ends) claims a ring again.

use super::output::{self, make_room, UNWINDER};
use super::ring::{self, Ring, ALLOC, FREE, MAX_APPEND, NAME, NODE, REALLOC};
use super::{active, FORK_GEN, ON, PHASE, RING_KEY, SAMPLED, SAMPLE_RATE, SHARED};
use crate::sampler::{engine_samples, Rng};
use crate::stats;
use crate::sys::{self, TextBuf};
use crate::unwind::{self, WalkCache, Walked, MAX_FRAMES};
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::sync::atomic::Ordering;

#[derive(Clone, Copy)]
struct ThreadCache {
    gen: u32,
    tid: u32,
    stack_top: u64,
    /// Bytes until the next sample.
    countdown: i64,
    rng: Rng,
    /// The flusher (and other recorder threads): never recorded.
    internal: bool,
    /// The thread's name has been recorded since the last fork.
    named: bool,
    /// The thread's ring: its index plus one, 0 for none yet.
    ring: u32,
    /// The thread's walk cache (`unwind::thread_cache`), found once: each lookup is a
    /// call into the loader in a shared library.
    walks: *mut WalkCache,
}

/// What a thread keeps: its cache, and the capture's frames and stack ids (kept here
/// rather than zeroed on the stack for each event). A hook reaches it with one
/// thread-local access (in a shared library each costs a call into the loader).
struct Local {
    cache: UnsafeCell<ThreadCache>,
    frames: UnsafeCell<[u64; MAX_FRAMES]>,
    ids: UnsafeCell<[u32; MAX_FRAMES]>,
}

thread_local! {
    static LOCAL: Local = const {
        Local {
            cache: UnsafeCell::new(ThreadCache {
                gen: 0,
                tid: 0,
                stack_top: 0,
                countdown: 0,
                rng: Rng(0),
                internal: false,
                named: false,
                ring: 0,
                walks: core::ptr::null_mut(),
            }),
            frames: UnsafeCell::new([0; MAX_FRAMES]),
            ids: UnsafeCell::new([0; MAX_FRAMES]),
        }
    };
}

/// The calling thread's `Local`. Its address is taken in a closure small enough to
/// inline, and the hooks run outside it: with their bodies in the closure,
/// `LocalKey::with` became a call of its own, and the hooks 12M instructions dearer on
/// sqlite3 (20,000 rows) when a change elsewhere tipped the inliner.
#[inline(always)]
fn local() -> *const Local {
    LOCAL.with(|l| l as *const Local)
}

/// The calling thread's cache.
struct Thread;

impl Thread {
    fn with<R>(f: impl FnOnce(&mut ThreadCache) -> R) -> R {
        // SAFETY: the callers (below) run outside the hooks, which alone borrow the cache
        // otherwise, and do not call each other: this is the only borrow.
        LOCAL.with(|l| f(unsafe { &mut *l.cache.get() }))
    }
}

/// Marks the calling thread as the recorder's own (not recorded) or not; returns what it
/// was.
pub fn set_internal(internal: bool) -> bool {
    Thread::with(|t| core::mem::replace(&mut t.internal, internal))
}

/// The calling thread's ring index, if it has one (the forking thread's, in a child).
pub fn own_ring() -> Option<u32> {
    Thread::with(|t| t.ring.checked_sub(1))
}

/// The thread-specific data destructor: gives the exiting thread's ring back.
pub extern "C" fn release_ring(value: *mut c_void) {
    if let Some(r) = (value as usize)
        .checked_sub(1)
        .and_then(|i| ring::ring(i as u32))
    {
        r.release();
    }
    Thread::with(|t| t.ring = 0);
}

/// The calling thread's cache, refreshed after a fork or on first use; `None` for the
/// recorder's own threads.
#[inline]
// The cache is an `UnsafeCell` of the calling thread's own `Local`, and hooks are not
// re-entered: handing out the one `&mut` from the shared `&Local` is sound.
#[allow(clippy::mut_from_ref)]
fn thread(l: &Local) -> Option<&mut ThreadCache> {
    // SAFETY: hooks are not re-entered on a thread, and the cache's other users
    // (`Thread::with`) run outside them: this is the only borrow while the hook runs.
    let t = unsafe { &mut *l.cache.get() };
    if t.internal {
        return None;
    }
    let gen = FORK_GEN.load(Ordering::Relaxed);
    if t.gen != gen {
        let tid = sys::gettid();
        let first_time = t.gen == 0;
        t.gen = gen;
        t.tid = tid;
        t.named = false;
        if first_time {
            t.stack_top = unwind::stack_top(tid == sys::getpid());
            t.rng = Rng(u64::from(tid).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                ^ sys::monotonic_nanos()
                | 1);
            let rate = SAMPLE_RATE.load(Ordering::Relaxed);
            if rate > 0 {
                t.countdown = t.rng.interval(rate);
            }
        }
    }
    Some(t)
}

/// Whether the calling thread is the recorder's own (read without borrowing the cache).
#[inline]
fn internal(l: &Local) -> bool {
    // SAFETY: a read of a plain field; no `&mut` to the cache is alive between hooks.
    unsafe { (*l.cache.get()).internal }
}

/// Decides whether an allocation of `size` bytes is recorded: always without sampling or
/// when the engine sampled it already (`sampler.rs`).
#[inline]
fn sampled(t: &mut ThreadCache, size: usize) -> bool {
    if !sampling() {
        return true;
    }
    let rate = SAMPLE_RATE.load(Ordering::Relaxed);
    t.countdown -= size.max(1) as i64;
    if t.countdown > 0 {
        return false;
    }
    t.countdown = t.rng.interval(rate);
    true
}

/// The thread's ring, claimed on first use (and registered for release at exit).
#[inline]
fn ring_of(t: &mut ThreadCache) -> Option<&'static Ring> {
    if let Some(r) = t.ring.checked_sub(1).and_then(ring::ring) {
        return Some(r);
    }
    claim_ring(t)
}

#[cold]
fn claim_ring(t: &mut ThreadCache) -> Option<&'static Ring> {
    let Some(i) = ring::claim(t.tid) else {
        ring::lose();
        return None;
    };
    t.ring = i + 1;
    let key = RING_KEY.load(Ordering::Acquire);
    if key != u32::MAX {
        // SAFETY: a key made by pthread_key_create; the value is an integer, never
        // dereferenced (the destructor decodes it).
        unsafe { libc::pthread_setspecific(key, (i as usize + 1) as *const c_void) };
    }
    ring::ring(i)
}

/// The thread's name from `/proc/thread-self/comm` (at most 15 bytes), packed in two
/// words, and its length.
#[cold]
fn read_name() -> (u64, u64, u64) {
    let mut path = TextBuf::new();
    path.push(b"/proc/thread-self/comm");
    let mut name = [0u8; 64];
    let n = sys::read_file(path.as_cstr(), &mut name);
    let n = name[..n].strip_suffix(b"\n").map_or(n, <[u8]>::len).min(16);
    let mut words = [0u8; 16];
    words[..n].copy_from_slice(&name[..n]);
    let lo = u64::from_le_bytes(words[..8].try_into().unwrap_or_default());
    let hi = u64::from_le_bytes(words[8..].try_into().unwrap_or_default());
    (lo, hi, n as u64)
}

/// Appends one event of `kind` with words `(a, b, c)` to the thread's ring, with the
/// caller's stack in the last word when `with_stack`.
#[inline(always)]
fn record(l: &Local, t: &mut ThreadCache, kind: u64, a: u64, b: u64, c: u64, with_stack: bool) {
    let Some(shared) = SHARED.get() else { return };
    let Some(r) = ring_of(t) else { return };
    if t.walks.is_null() {
        t.walks = unwind::thread_cache();
    }
    // SAFETY: the thread's own scratch arrays and kept walks (the library's one walk
    // cache per thread, `unwind::thread_cache`, while the thread owns it: `mine`); hooks
    // are not re-entered on a thread, so nothing else borrows them.
    let (frames, ids, mut walks) = unsafe {
        (
            &mut *l.frames.get(),
            &mut *l.ids.get(),
            WalkCache::mine(t.walks),
        )
    };
    let mut slow = |ra, sp: &mut u64, bp: &mut u64, lo, hi| {
        UNWINDER
            .lock()
            .as_mut()
            .and_then(|u| u.step_slow(ra, sp, bp, lo, hi))
    };
    // A stack seen recently is known by its words (see `unwind::walk_cache`): its node id
    // without a capture or a trie lookup. Otherwise the capture (which reuses what it
    // shares with the thread's previous captures) and the trie find the id, and it is
    // kept for next time.
    let mut cached = None;
    let (n, known) = if with_stack {
        let generation = unwind::generation_in(2, unwind::module_generation());
        match shared.walker.walk_cached(
            frames,
            MAX_FRAMES,
            t.stack_top,
            &mut slow,
            walks.as_deref_mut(),
            generation,
        ) {
            Walked::Known(id) => {
                cached = Some(id);
                (0, 0)
            }
            Walked::Frames(_) => shared.walker.capture(frames, ids, t.stack_top, &mut slow),
        }
    } else {
        (0, 0)
    };
    let name = (!t.named).then(read_name);
    if !r.has_room(MAX_APPEND) && !make_room(r, MAX_APPEND) {
        return;
    }
    let mut append = r.begin();
    if let Some((lo, hi, len)) = name {
        append.push(NAME, lo, hi, len, u64::from(t.tid));
        t.named = true;
    }
    let mut stack = 0;
    if let Some(id) = cached {
        stack = id;
    } else if with_stack {
        let outer = if known < n { ids[known] } else { 0 };
        let id = shared.trie.intern_from(
            &frames[..known],
            outer,
            &mut ids[..known],
            |id, parent, address| {
                append.push(NODE, u64::from(id), u64::from(parent), address, 0);
            },
        );
        stack = match id {
            Some(id) => {
                shared.walker.remember(&ids[..n]);
                if let Some(w) = walks {
                    w.remember(id);
                }
                id
            }
            // The trie is full: the longest known part.
            None => outer,
        };
    }
    append.push(kind, a, b, c, u64::from(t.tid) | u64::from(stack) << 32);
    drop(append);
    if SAMPLE_RATE.load(Ordering::Relaxed) > 0 {
        // No flusher thread (see `start_flusher`): rounds come from here.
        output::tick_if_due();
    }
}

/// Whether the hooks sample (the set of live sampled blocks exists). When the engine
/// samples instead, it reports only sampled allocations, only their frees, and a resize
/// only when both blocks are sampled, so every event it reports is recorded.
#[inline]
fn sampling() -> bool {
    SAMPLE_RATE.load(Ordering::Relaxed) > 0 && !engine_samples()
}

/// The allocation hook: `size` bytes at `p`.
///
/// ```
/// // Not recording (no MEMWARD_PROFILE): the hooks return at once.
/// let mut block = [0u8; 16];
/// // SAFETY: the hooks never dereference the pointers.
/// unsafe {
///     memward_profile::on_alloc(block.as_mut_ptr(), 16);
///     memward_profile::on_realloc(block.as_mut_ptr(), block.as_mut_ptr(), 8);
///     memward_profile::on_free(block.as_mut_ptr());
/// }
/// ```
///
/// # Safety
/// Called by the allocator after an allocation, never re-entered on a thread (the
/// recorder's per-thread state is not re-entrant). `p` is not dereferenced.
pub unsafe fn on_alloc(p: *mut u8, size: usize) {
    // SAFETY: the thread's own `Local`, alive as long as the thread; the hooks are not
    // re-entered on a thread, so nothing else borrows its cells meanwhile.
    let l = unsafe { &*local() };
    if stats::on() && !internal(l) {
        stats::alloc(p as u64, size as u64);
    }
    if !active() {
        return;
    }
    let Some(t) = thread(l) else { return };
    if !sampled(t, size) {
        return;
    }
    record(l, t, ALLOC, p as u64, size as u64, 0, true);
    if sampling() {
        if let Some(set) = SAMPLED.lock().as_mut() {
            set.insert(p as u64);
        }
    }
}

/// The free hook: the block at `p` is about to be freed.
///
/// See [`on_alloc`] for an example.
///
/// # Safety
/// Called by the allocator before a free, never re-entered on a thread. `p` is not
/// dereferenced.
pub unsafe fn on_free(p: *mut u8) {
    // SAFETY: the thread's own `Local`, alive as long as the thread; the hooks are not
    // re-entered on a thread, so nothing else borrows its cells meanwhile.
    let l = unsafe { &*local() };
    if stats::on() && !internal(l) {
        stats::free(p as u64);
    }
    if PHASE.load(Ordering::Acquire) != ON {
        return;
    }
    let Some(t) = thread(l) else { return };
    if sampling()
        && !SAMPLED
            .lock()
            .as_mut()
            .is_some_and(|set| set.remove(p as u64))
    {
        return;
    }
    record(l, t, FREE, p as u64, 0, 0, false);
}

/// The resize hook: `old` became `new` with `size` bytes.
///
/// See [`on_alloc`] for an example.
///
/// # Safety
/// Called by the allocator after a successful resize, never re-entered on a thread.
/// The pointers are not dereferenced.
pub unsafe fn on_realloc(old: *mut u8, new: *mut u8, size: usize) {
    // SAFETY: the thread's own `Local`, alive as long as the thread; the hooks are not
    // re-entered on a thread, so nothing else borrows its cells meanwhile.
    let l = unsafe { &*local() };
    if stats::on() && !internal(l) {
        stats::realloc(old as u64, new as u64, size as u64);
    }
    if !active() {
        return;
    }
    let Some(t) = thread(l) else { return };
    let (old, new, size) = (old as u64, new as u64, size as u64);
    if !sampling() {
        record(l, t, REALLOC, old, new, size, true);
        return;
    }
    let take_new = sampled(t, size as usize);
    let had_old = SAMPLED.lock().as_mut().is_some_and(|set| set.remove(old));
    match (had_old, take_new) {
        (true, true) => record(l, t, REALLOC, old, new, size, true),
        (true, false) => record(l, t, FREE, old, 0, 0, false),
        (false, true) => record(l, t, ALLOC, new, size, 0, true),
        (false, false) => {}
    }
    if take_new {
        if let Some(set) = SAMPLED.lock().as_mut() {
            set.insert(new);
        }
    }
}
