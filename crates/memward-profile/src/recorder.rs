//! The recorder's life: configuration from the environment, the start, the hooks, the
//! flusher thread, `fork`, and the end at exit.
//!
//! One lock (`STATE`) serialises the events, so the file's order is the heap's order.
//! The recorder starts from an `.init_array` constructor (at library load, or before
//! `main` when memward is linked in), outside any allocation; if the hooks fire first
//! (an allocation in an earlier constructor), the first hooked allocation starts it, where
//! the engine already guarantees no re-entry. Other threads that allocate while it starts
//! are not recorded (they do not wait: one of them could hold the loader's lock the start
//! needs). A flusher thread wakes every 10 ms: it rescans the
//! modules if the loader's counters moved (outside `STATE`), then writes a time sample
//! and flushes, so a killed process leaves a file at most 10 ms behind.

use crate::lock::SpinLock;
use crate::modules::{ModuleInfo, Scan, MAX_MODULES};
use crate::sampler::{engine_samples, Rng, SampledSet};
use crate::stats;
use crate::sys::{self, Region, TextBuf, ZeroValid};
use crate::trie::Trie;
use crate::unwind::{self, Stacks, MAX_FRAMES};
use core::cell::Cell;
use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering};
use memward_profile_format::{Sink, SinkError, Writer};

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
static STATE: SpinLock<Option<State>> = SpinLock::new(None);
static SCAN: SpinLock<Option<Scan>> = SpinLock::new(None);

/// Flush interval of the flusher thread.
const TICK_MS: u64 = 10;
/// The writer's buffer.
const BUFFER_BYTES: usize = 1 << 20;

/// Writes with `write(2)`.
struct FdSink(i32);

impl Sink for FdSink {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        sys::write_all(self.0, bytes).map_err(|errno| SinkError { errno })
    }
}

#[derive(Clone, Copy)]
#[repr(C)]
struct Known {
    info: ModuleInfo,
    id: u32,
    alive: u32,
}

// SAFETY: ModuleInfo and integers.
unsafe impl ZeroValid for Known {}

struct State {
    writer: Writer<&'static mut [u8], FdSink>,
    trie: Trie,
    stacks: Stacks,
    /// A capture's frames and stack ids (kept here rather than zeroed on each event).
    frames: [u64; MAX_FRAMES],
    ids: [u32; MAX_FRAMES],
    known: Region,
    known_count: usize,
    next_module: u32,
    sampled: Option<SampledSet>,
    allocs: u64,
    frees: u64,
    start_mono: u64,
    file: TextBuf,
    finished: bool,
    failed: bool,
}

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
    /// The thread's name has been written to the current file.
    named: bool,
}

thread_local! {
    static THREAD: Cell<ThreadCache> = const {
        Cell::new(ThreadCache {
            gen: 0,
            tid: 0,
            stack_top: 0,
            countdown: 0,
            rng: Rng(0),
            internal: false,
            named: false,
        })
    };
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

/// The calling thread's cache, refreshed after a fork or on first use; `None` for the
/// recorder's own threads.
#[inline]
fn thread() -> Option<ThreadCache> {
    let mut t = THREAD.with(Cell::get);
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
        THREAD.with(|c| c.set(t));
    }
    Some(t)
}

fn save_thread(t: ThreadCache) {
    THREAD.with(|c| c.set(t));
}

/// Decides whether an allocation of `size` bytes is recorded: always without sampling or
/// when the engine sampled it already (`sampler.rs`).
#[inline]
fn sampled(t: &mut ThreadCache, size: usize) -> bool {
    let rate = SAMPLE_RATE.load(Ordering::Relaxed);
    if rate == 0 || engine_samples() {
        return true;
    }
    t.countdown -= size.max(1) as i64;
    if t.countdown > 0 {
        return false;
    }
    t.countdown = t.rng.interval(rate);
    true
}

/// Writes the thread's name once per file.
fn name_thread(s: &mut State, t: &mut ThreadCache) {
    if t.named {
        return;
    }
    t.named = true;
    let mut path = TextBuf::new();
    path.push(b"/proc/thread-self/comm");
    let mut name = [0u8; 64];
    let n = sys::read_file(path.as_cstr(), &mut name);
    let name = name[..n].strip_suffix(b"\n").unwrap_or(&name[..n]);
    s.writer.thread_name(t.tid, name);
}

impl State {
    /// Records the stack of the current call and returns its id.
    fn stack(&mut self, t: &ThreadCache) -> u32 {
        let (frames, ids) = (&mut self.frames, &mut self.ids);
        let (n, known) = self.stacks.capture(frames, ids, t.stack_top);
        let outer = if known < n { ids[known] } else { 0 };
        let writer = &mut self.writer;
        let id = self.trie.intern_from(
            &frames[..known],
            outer,
            &mut ids[..known],
            |id, parent, addr| writer.stack_node(id, parent, addr),
        );
        match id {
            Some(id) => {
                self.stacks.remember(&ids[..n]);
                id
            }
            // The trie is full: the longest known part.
            None => outer,
        }
    }

    /// Called after each write: reports a failing file once and stops recording.
    fn check(&mut self) {
        if self.failed {
            return;
        }
        if let Some(e) = self.writer.error() {
            self.failed = true;
            PHASE.store(STOPPED, Ordering::Release);
            let mut msg = TextBuf::new();
            msg.push(b"memward profile: cannot write ")
                .push(self.file.as_bytes())
                .push(b": ")
                .push(sys::strerror(e.errno))
                .push(b" (errno ")
                .push_u64(e.errno as u64)
                .push(b"); recording stopped, the program continues\n");
            sys::print_error(msg.as_bytes());
        }
    }

    fn known(&mut self) -> &mut [Known] {
        let n = self.known_count;
        &mut self.known.slice_of::<Known>()[..n]
    }

    /// Brings the profile and the unwinder up to date with a scan.
    fn apply_scan(&mut self, scan: &[ModuleInfo]) {
        for m in scan {
            let key = m.key();
            if self
                .known()
                .iter()
                .any(|k| k.alive != 0 && k.info.key() == key)
            {
                continue;
            }
            let cap = self.known.len() / core::mem::size_of::<Known>();
            if self.known_count == cap {
                break;
            }
            self.next_module += 1;
            let id = self.next_module;
            let i = self.known_count;
            self.known.slice_of::<Known>()[i] = Known {
                info: *m,
                id,
                alive: 1,
            };
            self.known_count += 1;
            write_module(&mut self.writer, id, m);
            self.stacks.add(m);
        }
        for i in 0..self.known_count {
            let k = self.known.slice_of::<Known>()[i];
            if k.alive != 0 && !scan.iter().any(|m| m.key() == k.info.key()) {
                self.known.slice_of::<Known>()[i].alive = 0;
                self.stacks.remove(&k.info);
            }
        }
    }

    fn nanos(&self) -> u64 {
        sys::monotonic_nanos().saturating_sub(self.start_mono)
    }

    /// Header, modules and stack nodes: everything a new file needs before events.
    fn write_prologue(&mut self) {
        let mut exe = [0u8; 4096];
        let exe = sys::read_link(c"/proc/self/exe", &mut exe);
        let mut cmdline = Region::map(1 << 20);
        let args: &[u8] = match cmdline.as_mut() {
            Some(r) => {
                let buf = r.bytes_mut();
                let n = sys::read_file(c"/proc/self/cmdline", buf);
                &buf[..n]
            }
            None => &[],
        };
        let args = args.strip_suffix(&[0]).unwrap_or(args);
        let split = args.split(|b| *b == 0).filter(|_| !args.is_empty());
        self.writer.header(
            sys::getpid(),
            sys::getppid(),
            sys::realtime_nanos(),
            SAMPLE_RATE.load(Ordering::Relaxed),
            exe,
            split,
        );
    }
}

fn write_module(w: &mut Writer<&'static mut [u8], FdSink>, id: u32, m: &ModuleInfo) {
    w.module(
        id,
        m.path(),
        m.build_id(),
        m.bias,
        m.segments().iter().copied(),
    );
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
        let (Some(buffer), Some(trie), Some(known), Some(mut scan)) = (
            Region::map(BUFFER_BYTES),
            Trie::new(),
            Region::map((MAX_MODULES * 2) * core::mem::size_of::<Known>()),
            Scan::new(),
        ) else {
            sys::close(fd);
            sys::print_error(b"memward profile: out of memory at start; not profiling\n");
            return false;
        };
        let sampled = if SAMPLE_RATE.load(Ordering::Relaxed) > 0 {
            SampledSet::new()
        } else {
            None
        };
        let mut s = State {
            writer: Writer::new(buffer.leak(), FdSink(fd)),
            trie,
            stacks: Stacks::new(),
            frames: [0; MAX_FRAMES],
            ids: [0; MAX_FRAMES],
            known,
            known_count: 0,
            next_module: 0,
            sampled,
            allocs: 0,
            frees: 0,
            start_mono: sys::monotonic_nanos(),
            file,
            finished: false,
            failed: false,
        };
        s.write_prologue();
        scan.refresh();
        s.apply_scan(scan.modules());
        // A process that ends through _exit before the first tick still leaves a valid
        // (empty) profile.
        s.writer.flush();
        s.check();
        // Frames inside our own module are the allocator's, unless that module is the
        // executable itself (memward linked statically).
        let here = start as fn() as usize as u64;
        let mods = scan.modules();
        if let Some(i) = mods.iter().position(|m| m.contains(here)) {
            if i != 0 {
                s.stacks.skip_frames_in(&mods[i]);
            }
        }
        *SCAN.lock() = Some(scan);
        *STATE.lock() = Some(s);
        true
    })();
    if !outcome {
        PHASE.store(STOPPED, Ordering::Release);
        return;
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

fn start_flusher() {
    // pthread_create allocates (the new thread's TLS block): not the program's doing.
    let before = THREAD.with(Cell::get);
    THREAD.with(|c| {
        let mut t = before;
        t.internal = true;
        c.set(t);
    });
    spawn_flusher();
    THREAD.with(|c| {
        let mut t = c.get();
        t.internal = before.internal;
        c.set(t);
    });
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
    THREAD.with(|c| {
        let mut t = c.get();
        t.internal = true;
        c.set(t);
    });
    while PHASE.load(Ordering::Acquire) == ON {
        sys::sleep_ms(TICK_MS);
        tick(false);
    }
    core::ptr::null_mut()
}

fn rss_bytes() -> u64 {
    let mut buf = [0u8; 128];
    let n = sys::read_file(c"/proc/self/statm", &mut buf);
    let pages = buf[..n]
        .split(|b| *b == b' ')
        .nth(1)
        .and_then(parse_u64)
        .unwrap_or(0);
    pages * sys::page_size()
}

/// A flush: modules (if changed), a time sample, the buffer. With `last`, also the end
/// marker, after which nothing more is recorded.
fn tick(last: bool) {
    let mut scan = SCAN.lock();
    let changed = scan.as_mut().is_some_and(Scan::refresh);
    let rss = rss_bytes();
    let heap = heap_bytes();
    let mut st = STATE.lock();
    let Some(s) = st.as_mut() else { return };
    if s.finished || s.failed {
        return;
    }
    if changed {
        if let Some(scan) = scan.as_mut() {
            s.apply_scan(scan.modules());
        }
    }
    let now = s.nanos();
    s.writer.time(now, heap, rss);
    if last {
        s.writer.end(now, s.allocs, s.frees);
        s.finished = true;
    }
    s.writer.flush();
    s.check();
    if last {
        sys::close(s.writer.sink().0);
    }
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
        tick(true);
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
    STATE.lock_forever();
}

extern "C" fn after_fork_parent() {
    // SAFETY: before_fork took both locks on this thread; no guard exists.
    unsafe {
        STATE.force_unlock();
        SCAN.force_unlock();
    }
}

extern "C" fn after_fork_child() {
    FORK_GEN.fetch_add(1, Ordering::Relaxed);
    // SAFETY: before_fork took both locks on this thread (the child's only thread); no
    // guard exists until they are released below.
    let restarted = unsafe { restart_in_child(STATE.get_locked()) };
    // SAFETY: as above.
    unsafe {
        STATE.force_unlock();
        SCAN.force_unlock();
    }
    if restarted {
        start_flusher();
    }
}

/// Gives a forked child its own file, `FILE.<pid>`, with the parent's modules and stack
/// nodes; returns whether the child records.
fn restart_in_child(st: &mut Option<State>) -> bool {
    let Some(s) = st.as_mut() else { return false };
    if s.finished || s.failed || PHASE.load(Ordering::Acquire) != ON {
        return false;
    }
    let mut file = TextBuf::new();
    let fd = match open_file(true, &mut file) {
        Ok(fd) => fd,
        Err(_) => {
            PHASE.store(STOPPED, Ordering::Release);
            s.finished = true;
            return false;
        }
    };
    let old = s.writer.restart(FdSink(fd));
    sys::close(old.0);
    s.file = file;
    s.allocs = 0;
    s.frees = 0;
    s.start_mono = sys::monotonic_nanos();
    s.write_prologue();
    for i in 0..s.known_count {
        let k = s.known.slice_of::<Known>()[i];
        if k.alive != 0 {
            write_module(&mut s.writer, k.id, &k.info);
        }
    }
    let writer = &mut s.writer;
    s.trie
        .for_each(|id, parent, addr| writer.stack_node(id, parent, addr));
    if let Some(set) = s.sampled.as_mut() {
        // Blocks sampled before the fork are live in the child too, but its file has no
        // record of them: forget them, so their frees are not written.
        if let Some(fresh) = SampledSet::new() {
            *set = fresh;
        }
    }
    s.writer.flush();
    s.check();
    !s.failed
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
/// recorder's state is not re-entrant). `p` is not dereferenced.
pub unsafe fn on_alloc(p: *mut u8, size: usize) {
    if stats::on() && !THREAD.with(Cell::get).internal {
        stats::alloc(p as u64, size as u64);
    }
    if !active() {
        return;
    }
    let Some(mut t) = thread() else { return };
    if !sampled(&mut t, size) {
        save_thread(t);
        return;
    }
    let mut st = STATE.lock();
    if let Some(s) = st.as_mut().filter(|s| !s.finished && !s.failed) {
        name_thread(s, &mut t);
        let stack = s.stack(&t);
        s.writer.alloc(t.tid, p as u64, size as u64, stack);
        s.allocs += 1;
        if let Some(set) = s.sampled.as_mut().filter(|_| !engine_samples()) {
            set.insert(p as u64);
        }
        s.check();
    }
    drop(st);
    save_thread(t);
}

/// The free hook: the block at `p` is about to be freed.
///
/// See [`on_alloc`] for an example.
///
/// # Safety
/// Called by the allocator before a free, never re-entered on a thread. `p` is not
/// dereferenced.
pub unsafe fn on_free(p: *mut u8) {
    if stats::on() && !THREAD.with(Cell::get).internal {
        stats::free(p as u64);
    }
    if PHASE.load(Ordering::Acquire) != ON {
        return;
    }
    let Some(mut t) = thread() else { return };
    let mut st = STATE.lock();
    if let Some(s) = st.as_mut().filter(|s| !s.finished && !s.failed) {
        // The engine reports only frees of sampled blocks when it samples.
        let hook_sampled = s.sampled.as_mut().filter(|_| !engine_samples());
        if hook_sampled.is_none_or(|set| set.remove(p as u64)) {
            name_thread(s, &mut t);
            s.writer.free(t.tid, p as u64);
            s.frees += 1;
            s.check();
        }
    }
    drop(st);
    save_thread(t);
}

/// The resize hook: `old` became `new` with `size` bytes.
///
/// See [`on_alloc`] for an example.
///
/// # Safety
/// Called by the allocator after a successful resize, never re-entered on a thread.
/// The pointers are not dereferenced.
pub unsafe fn on_realloc(old: *mut u8, new: *mut u8, size: usize) {
    if stats::on() && !THREAD.with(Cell::get).internal {
        stats::realloc(old as u64, new as u64, size as u64);
    }
    if !active() {
        return;
    }
    let Some(mut t) = thread() else { return };
    let take_new = sampled(&mut t, size);
    let mut st = STATE.lock();
    if let Some(s) = st.as_mut().filter(|s| !s.finished && !s.failed) {
        name_thread(s, &mut t);
        // The engine reports a resize only when the old and new block are both sampled.
        match s.sampled.as_mut().filter(|_| !engine_samples()) {
            None => {
                let stack = s.stack(&t);
                s.writer
                    .realloc(t.tid, old as u64, new as u64, size as u64, stack);
                s.allocs += 1;
                s.frees += 1;
            }
            Some(set) => {
                let had_old = set.remove(old as u64);
                if take_new {
                    set.insert(new as u64);
                }
                match (had_old, take_new) {
                    (true, true) => {
                        let stack = s.stack(&t);
                        s.writer
                            .realloc(t.tid, old as u64, new as u64, size as u64, stack);
                        s.allocs += 1;
                        s.frees += 1;
                    }
                    (true, false) => {
                        s.writer.free(t.tid, old as u64);
                        s.frees += 1;
                    }
                    (false, true) => {
                        let stack = s.stack(&t);
                        s.writer.alloc(t.tid, new as u64, size as u64, stack);
                        s.allocs += 1;
                    }
                    (false, false) => {}
                }
            }
        }
        s.check();
    }
    drop(st);
    save_thread(t);
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
