//! The recorder's life: configuration from the environment, the start, the flusher
//! thread, `fork`, and the end at exit. The hooks are in `hooks`, the threads' event
//! rings and the global event order in `ring`, the file and the merge into it in
//! `output`.
//!
//! The recorder starts from an `.init_array` constructor (at library load, or before
//! `main` when memward is linked in), outside any allocation; if the hooks fire first
//! (an allocation in an earlier constructor), the first hooked allocation starts it, where
//! the engine already guarantees no re-entry. Other threads that allocate while it starts
//! are not recorded (they do not wait: one of them could hold the loader's lock the start
//! needs). With every allocation recorded, a flusher thread wakes every 10 ms: it
//! rescans the modules if the loader's counters moved, merges the rings into the file,
//! writes a time sample and flushes, so a killed process leaves a file at most 10 ms
//! behind. Sampled recording, meant to stay on, runs no thread of its own: a recording
//! thread runs the round when 10 ms have passed (`output::tick_if_due`). Either way no
//! allocation hook calls into the loader: modules loaded after the start are found by the
//! walks that meet them (`unwind`).
//!
//! `fork`: the prepare handler takes the output, the trie's lock, the unwinder and the
//! module scan (in the order every other path takes them: a round may wait for a thread
//! in the middle of an append, which may wait for the trie, never the other way); the
//! child drops every entry its rings hold (they are the parent's, which the parent
//! writes), opens `FILE.<pid>` with the modules and stack nodes so far, and starts its own
//! flusher.

mod hooks;
mod output;
mod ring;

pub use hooks::{on_alloc, on_free, on_realloc};

use crate::lock::SpinLock;
use crate::modules::Scan;
use crate::sampler::SampledSet;
use crate::sys::{self, Region, TextBuf};
use crate::trie::Trie;
use crate::unwind::{Stacks, Walker};
use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering};
use memward_profile_format::Writer;
use output::{FdSink, Output, OUTPUT, SCAN, UNWINDER};
use std::sync::OnceLock;

const OFF: u8 = 0;
const PENDING: u8 = 1;
const STARTING: u8 = 2;
const ON: u8 = 3;
const STOPPED: u8 = 4;

static PHASE: AtomicU8 = AtomicU8::new(OFF);
/// Bumped in a forked child, so threads re-read their cached ids.
static FORK_GEN: AtomicU32 = AtomicU32::new(1);
static SAMPLE_RATE: AtomicU64 = AtomicU64::new(0);
/// Where the bytes in use come from (set by the embedding), as a `fn() -> u64`.
static HEAP_BYTES: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// The base path from `MEMWARD_PROFILE`.
static PATH: SpinLock<TextBuf> = SpinLock::new(TextBuf::new());

/// What the hooks use without a lock: the walk's view of the unwinder, and the trie.
struct Shared {
    walker: Walker,
    trie: Trie,
}

static SHARED: OnceLock<Shared> = OnceLock::new();
/// Live sampled blocks (with `--sample-rate`), so only their frees are recorded.
static SAMPLED: SpinLock<Option<SampledSet>> = SpinLock::new(None);
/// The thread-specific data key whose destructor gives a thread's ring back.
static RING_KEY: AtomicU32 = AtomicU32::new(u32::MAX);

/// Flush interval of the flusher thread.
const TICK_MS: u64 = 10;
/// The writer's buffer.
const BUFFER_BYTES: usize = 1 << 20;

/// The sample rate `MEMWARD_PROFILE_SAMPLE_RATE` set (bytes; 0: every allocation).
///
/// ```
/// if std::env::var_os("MEMWARD_PROFILE_SAMPLE_RATE").is_none() {
///     assert_eq!(memward_profile::sample_rate(), 0);
/// }
/// ```
pub fn sample_rate() -> u64 {
    SAMPLE_RATE.load(Ordering::Relaxed)
}

/// Reads `MEMWARD_PROFILE` (and `MEMWARD_PROFILE_SAMPLE_RATE`); returns whether profiling
/// is requested. Does not allocate; the recorder starts at load or at the first event.
///
/// ```
/// // This doc test runs without MEMWARD_PROFILE: nothing to record.
/// if std::env::var_os("MEMWARD_PROFILE").is_none() {
///     assert!(!memward_profile::configure_from_env());
/// }
/// ```
pub fn configure_from_env() -> bool {
    // SAFETY: getenv only reads the environment.
    let value = unsafe { libc::getenv(c"MEMWARD_PROFILE".as_ptr()) };
    if value.is_null() {
        return false;
    }
    // SAFETY: getenv returned a NUL-terminated string.
    let path = unsafe { core::ffi::CStr::from_ptr(value) }.to_bytes();
    if path.is_empty() {
        return false;
    }
    // SAFETY: as above.
    let rate = unsafe { libc::getenv(c"MEMWARD_PROFILE_SAMPLE_RATE".as_ptr()) };
    if !rate.is_null() {
        // SAFETY: NUL-terminated.
        let text = unsafe { core::ffi::CStr::from_ptr(rate) }.to_bytes();
        SAMPLE_RATE.store(parse_u64(text).unwrap_or(0), Ordering::Relaxed);
    }
    {
        let mut p = PATH.lock();
        *p = TextBuf::new();
        p.push(path);
    }
    core::hint::black_box((&AT_EXIT, &AT_LOAD));
    let _ = PHASE.compare_exchange(OFF, PENDING, Ordering::AcqRel, Ordering::Acquire);
    true
}

fn parse_u64(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 19 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(text.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Sets where time samples take the allocator's bytes in use from.
///
/// ```
/// memward_profile::set_heap_bytes_source(|| 0);
/// ```
pub fn set_heap_bytes_source(f: fn() -> u64) {
    HEAP_BYTES.store(f as *mut (), Ordering::Release);
}

fn heap_bytes() -> u64 {
    let p = HEAP_BYTES.load(Ordering::Acquire);
    if p.is_null() {
        return 0;
    }
    // SAFETY: only `fn() -> u64` values are stored.
    let f: fn() -> u64 = unsafe { core::mem::transmute::<*mut (), fn() -> u64>(p) };
    f()
}

/// Whether events should be recorded now; starts the recorder on the first call.
#[inline]
fn active() -> bool {
    match PHASE.load(Ordering::Acquire) {
        ON => true,
        PENDING => {
            if PHASE
                .compare_exchange(PENDING, STARTING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                start();
            }
            PHASE.load(Ordering::Acquire) == ON
        }
        _ => false,
    }
}

/// Opens the profile: `FILE` if this process creates it first, else `FILE.<pid>`.
fn open_file(fork_child: bool, path: &mut TextBuf) -> Result<i32, i32> {
    *path = TextBuf::new();
    path.push(PATH.lock().as_bytes());
    if !fork_child {
        match sys::create(path.as_cstr(), true) {
            Err(libc::EEXIST) => {}
            other => return other,
        }
    }
    path.push(b".").push_u64(u64::from(sys::getpid()));
    sys::create(path.as_cstr(), false)
}

/// Starts the recorder (on the first event; PHASE is STARTING).
#[cold]
fn start() {
    let outcome = (|| {
        let mut file = TextBuf::new();
        let fd = match open_file(false, &mut file) {
            Ok(fd) => fd,
            Err(e) => {
                let mut msg = TextBuf::new();
                msg.push(b"memward profile: cannot create ")
                    .push(file.as_bytes())
                    .push(b": ")
                    .push(sys::strerror(e))
                    .push(b"; not profiling\n");
                sys::print_error(msg.as_bytes());
                return false;
            }
        };
        let (Some(buffer), Some(trie), Some(mut scan)) =
            (Region::map(BUFFER_BYTES), Trie::new(), Scan::new())
        else {
            sys::close(fd);
            sys::print_error(b"memward profile: out of memory at start; not profiling\n");
            return false;
        };
        let Some(mut out) = Output::new(Writer::new(buffer.leak(), FdSink(fd)), file) else {
            sys::close(fd);
            sys::print_error(b"memward profile: out of memory at start; not profiling\n");
            return false;
        };
        if SAMPLE_RATE.load(Ordering::Relaxed) > 0 {
            *SAMPLED.lock() = SampledSet::new();
        }
        let mut stacks = Stacks::new();
        out.write_prologue();
        scan.refresh();
        out.apply_scan(scan.modules(), &mut stacks);
        // A process that ends through _exit before the first tick still leaves a valid
        // (empty) profile.
        out.writer.flush();
        out.check();
        // Frames inside our own module are the allocator's, unless that module is the
        // executable itself (memward linked statically).
        let here = start as fn() as usize as u64;
        let mods = scan.modules();
        if let Some(i) = mods.iter().position(|m| m.contains(here)) {
            if i != 0 {
                stacks.skip_frames_in(&mods[i]);
            }
        }
        let walker = stacks.walker();
        if SHARED.set(Shared { walker, trie }).is_err() {
            return false;
        }
        *SCAN.lock() = Some(scan);
        *UNWINDER.lock() = Some(stacks);
        *OUTPUT.lock() = Some(out);
        true
    })();
    if !outcome {
        PHASE.store(STOPPED, Ordering::Release);
        return;
    }
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `release_ring` is an `extern "C" fn(*mut c_void)`; the key is stored for
    // the hooks' `pthread_setspecific`.
    if unsafe { libc::pthread_key_create(&mut key, Some(hooks::release_ring)) } == 0 {
        RING_KEY.store(key, Ordering::Release);
    }
    // SAFETY: the handlers are `extern "C" fn()` that take and release our locks.
    unsafe {
        libc::pthread_atfork(
            Some(before_fork),
            Some(after_fork_parent),
            Some(after_fork_child),
        )
    };
    PHASE.store(ON, Ordering::Release);
    start_flusher();
}

/// Starts the flusher thread, for full recording only: with sampling the recording
/// threads run the rounds (`output::tick_if_due`), since a second thread alone costs a
/// program that locks glibc mutexes around its allocations several percent (glibc's
/// locks take their atomic path once a process has two threads).
fn start_flusher() {
    if SAMPLE_RATE.load(Ordering::Relaxed) > 0 {
        return;
    }
    // pthread_create allocates (the new thread's TLS block): not the program's doing.
    let was = hooks::set_internal(true);
    spawn_flusher();
    hooks::set_internal(was);
}

fn spawn_flusher() {
    // SAFETY: a detached thread running `flusher`, which takes no argument; the attr is
    // initialised and destroyed here.
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        libc::pthread_attr_setstacksize(&mut attr, 256 * 1024);
        let mut thread: libc::pthread_t = 0;
        libc::pthread_create(&mut thread, &attr, flusher, core::ptr::null_mut());
        libc::pthread_attr_destroy(&mut attr);
    }
}

extern "C" fn flusher(_: *mut c_void) -> *mut c_void {
    hooks::set_internal(true);
    while PHASE.load(Ordering::Acquire) == ON {
        sys::sleep_ms(TICK_MS);
        output::tick(false);
    }
    core::ptr::null_mut()
}

/// Writes the end of the profile (the recorder calls it at exit; a program may call it
/// earlier to stop recording). Does nothing if the recorder is not running.
///
/// ```
/// memward_profile::finish();
/// ```
pub fn finish() {
    if PHASE
        .compare_exchange(ON, STOPPED, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        output::tick(true);
    }
}

extern "C" fn at_exit() {
    finish();
}

/// At load (libmemward.so) or program start (memward linked in): starts recording at once
/// when `MEMWARD_PROFILE` is set, so the first process creates `FILE` even if it forks or
/// execs before allocating. The hooks themselves are installed by the engine at its first
/// allocation; allocations the start makes are not recorded (the phase is STARTING).
extern "C" fn at_load() {
    if configure_from_env()
        && PHASE
            .compare_exchange(PENDING, STARTING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    {
        start();
    }
}

/// Runs `at_load` from the loader, before `main`.
#[used]
#[link_section = ".init_array"]
static AT_LOAD: extern "C" fn() = at_load;

/// Runs at exit, after `atexit` handlers, in executables and shared libraries alike.
#[used]
#[link_section = ".fini_array"]
static AT_EXIT: extern "C" fn() = at_exit;

extern "C" fn before_fork() {
    SCAN.lock_forever();
    OUTPUT.lock_forever();
    if let Some(s) = SHARED.get() {
        s.trie.hold();
    }
    UNWINDER.lock_forever();
    SAMPLED.lock_forever();
}

/// Releases what `before_fork` took.
///
/// # Safety
/// `before_fork` took the locks on this thread and no guard of them exists.
unsafe fn release_fork_locks() {
    // SAFETY: per the contract.
    unsafe {
        SAMPLED.force_unlock();
        UNWINDER.force_unlock();
        if let Some(s) = SHARED.get() {
            s.trie.release();
        }
        OUTPUT.force_unlock();
        SCAN.force_unlock();
    }
}

extern "C" fn after_fork_parent() {
    // SAFETY: before_fork took the locks on this thread; no guard exists.
    unsafe { release_fork_locks() };
}

extern "C" fn after_fork_child() {
    FORK_GEN.fetch_add(1, Ordering::Relaxed);
    let me = hooks::own_ring();
    for (i, r) in ring::rings().enumerate() {
        r.reset_in_child(Some(i as u32) == me);
    }
    // SAFETY: before_fork holds SAMPLED on this thread (the child's only one); no guard
    // exists.
    if let Some(set) = unsafe { SAMPLED.get_locked() }.as_mut() {
        // Blocks sampled before the fork are live in the child too, but its file has no
        // record of them: forget them, so their frees are not written.
        if let Some(fresh) = SampledSet::new() {
            *set = fresh;
        }
    }
    // SAFETY: before_fork took the locks on this thread (the child's only thread); no
    // guard exists, and they are released right after.
    let restarted = restart_in_child(unsafe { OUTPUT.get_locked() });
    // SAFETY: as above.
    unsafe { release_fork_locks() };
    if restarted {
        start_flusher();
    }
}

/// Gives a forked child its own file, `FILE.<pid>`, with the parent's modules and stack
/// nodes; returns whether the child records. The trie's lock is held (by `before_fork`),
/// so its nodes are read through `for_each_held`.
fn restart_in_child(out: &mut Option<Output>) -> bool {
    let Some(o) = out.as_mut() else { return false };
    if o.finished || o.failed || PHASE.load(Ordering::Acquire) != ON {
        return false;
    }
    let mut file = TextBuf::new();
    let fd = match open_file(true, &mut file) {
        Ok(fd) => fd,
        Err(_) => {
            PHASE.store(STOPPED, Ordering::Release);
            o.finished = true;
            return false;
        }
    };
    let old = o.writer.restart(FdSink(fd));
    sys::close(old.0);
    o.file = file;
    o.allocs = 0;
    o.frees = 0;
    o.start_mono = sys::monotonic_nanos();
    o.write_prologue();
    o.rewrite_modules();
    if let Some(s) = SHARED.get() {
        let writer = &mut o.writer;
        // SAFETY: before_fork holds the trie's lock on this thread (the child's only one).
        unsafe {
            s.trie
                .for_each_held(|id, parent, addr| writer.stack_node(id, parent, addr))
        };
    }
    o.writer.flush();
    o.check();
    !o.failed
}

#[cfg(test)]
mod tests {
    use super::parse_u64;

    #[test]
    fn parses_rates() {
        assert_eq!(parse_u64(b"524288"), Some(524_288));
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"1k"), None);
    }
}
