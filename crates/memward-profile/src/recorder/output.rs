//! The output: the profile file, its writer, and the rounds that merge the threads' rings
//! into it (see `ring`).
//!
//! One lock (`OUTPUT`) guards the writer. Its holder is whoever runs a round (the flusher
//! thread every 10 ms, or with sampling a recording thread at most every 10 ms; a thread
//! whose ring is full; the exit), or a `fork`, which holds it
//! across the fork so that the child starts from a writer no round was using. A round
//! merges the rings' entries below its bound in sequence order with a binary heap of ring
//! heads (in a mapping of its own), encodes them with the writer, and marks them written.
//! The flusher also rescans the modules when the loader's counters moved (holding only the
//! scan's own lock: `dl_iterate_phdr` takes the loader's lock), writes a time sample (heap in
//! use, RSS) and hands the writer's buffer to the file. A process that ends through `_exit`
//! or a signal leaves a file that reads up to the flusher's last tick: the events of the
//! last 10 ms at most are missing, whichever thread made them. Sampled recording runs no
//! flusher (a second thread alone slows a program whose mutexes glibc then makes atomic),
//! so its file reads up to the last round a recording thread ran: events since then are
//! missing, however long ago the program last recorded one.

use super::ring::{self, Ring, ALLOC, FREE, MAX_RINGS, NAME, NODE, REALLOC};
use super::{PHASE, SAMPLE_RATE, STOPPED};
use crate::lock::SpinLock;
use crate::modules::{ModuleInfo, Scan};
use crate::sys::{self, Region, TextBuf, ZeroValid};
use crate::unwind::Stacks;
use core::sync::atomic::{AtomicU64, Ordering};
use memward_profile_format::{Sink, SinkError, Writer};

/// Writes with `write(2)`.
pub struct FdSink(pub i32);

impl Sink for FdSink {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        sys::write_all(self.0, bytes).map_err(|errno| SinkError { errno })
    }
}

#[derive(Clone, Copy)]
#[repr(C)]
pub struct Known {
    pub info: ModuleInfo,
    pub id: u32,
    pub alive: u32,
}

// SAFETY: ModuleInfo and integers.
unsafe impl ZeroValid for Known {}

/// The file and everything written into it.
pub struct Output {
    pub writer: Writer<&'static mut [u8], FdSink>,
    pub known: Region,
    pub known_count: usize,
    pub next_module: u32,
    pub allocs: u64,
    pub frees: u64,
    pub start_mono: u64,
    pub file: TextBuf,
    pub finished: bool,
    pub failed: bool,
    /// A round's merge heap, (sequence number, ring index) pairs, then the span of
    /// entries to write per ring.
    merge: &'static mut [[u64; 2]],
}

pub static OUTPUT: SpinLock<Option<Output>> = SpinLock::new(None);
/// The unwinder's slow path and its module set (the walk itself needs no lock).
pub static UNWINDER: SpinLock<Option<Stacks>> = SpinLock::new(None);
pub static SCAN: SpinLock<Option<Scan>> = SpinLock::new(None);

impl Output {
    pub fn new(writer: Writer<&'static mut [u8], FdSink>, file: TextBuf) -> Option<Output> {
        Some(Output {
            writer,
            known: Region::map((crate::modules::MAX_MODULES * 2) * core::mem::size_of::<Known>())?,
            known_count: 0,
            next_module: 0,
            allocs: 0,
            frees: 0,
            start_mono: sys::monotonic_nanos(),
            file,
            finished: false,
            failed: false,
            merge: merge_space()?,
        })
    }

    /// Called after writing: reports a failing file once and stops recording.
    pub fn check(&mut self) {
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
    pub fn apply_scan(&mut self, scan: &[ModuleInfo], stacks: &mut Stacks) {
        for m in scan {
            self.note_module(m);
            stacks.add(m);
        }
        for i in 0..self.known_count {
            let k = self.known.slice_of::<Known>()[i];
            if k.alive != 0 && !scan.iter().any(|m| m.key() == k.info.key()) {
                self.known.slice_of::<Known>()[i].alive = 0;
                stacks.remove(&k.info);
            }
        }
        self.take_found(stacks);
    }

    /// Writes the modules the unwinder's walks found since the last call (`Stacks::
    /// check_module`: loaded after the last scan) into the profile.
    fn take_found(&mut self, stacks: &mut Stacks) {
        stacks.take_found(|m| self.note_module(m));
    }

    /// Writes `m` into the profile, unless it is there already.
    fn note_module(&mut self, m: &ModuleInfo) {
        let key = m.key();
        if self
            .known()
            .iter()
            .any(|k| k.alive != 0 && k.info.key() == key)
        {
            return;
        }
        let cap = self.known.len() / core::mem::size_of::<Known>();
        if self.known_count == cap {
            return;
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
    }

    /// Every live module again (a forked child's new file).
    pub fn rewrite_modules(&mut self) {
        for i in 0..self.known_count {
            let k = self.known.slice_of::<Known>()[i];
            if k.alive != 0 {
                write_module(&mut self.writer, k.id, &k.info);
            }
        }
    }

    pub fn nanos(&self) -> u64 {
        sys::monotonic_nanos().saturating_sub(self.start_mono)
    }

    /// Header: everything a new file needs before modules and events.
    pub fn write_prologue(&mut self) {
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

    /// A round: writes every ring entry numbered below the counter's value now, in
    /// number order. `give_up` bounds the wait for an owner in the middle of an append
    /// (the last round at exit); such a ring's entries are then left out.
    pub fn round(&mut self, give_up: Option<u32>) {
        if self.finished || self.failed {
            return;
        }
        let bound = ring::bound();
        // Modules the walks found, before any stack node that names them: those nodes
        // were numbered after the module was found, so below `bound` only if found before.
        if let Some(u) = UNWINDER.lock().as_mut() {
            self.take_found(u);
        }
        // The heap of ring heads below the bound, (seq, ring index), smallest first; and
        // per ring the span still to write.
        let (heap, spans) = self.merge.split_at_mut(MAX_RINGS);
        let mut len = 0;
        for (i, r) in ring::rings().enumerate() {
            let Some((tail, head)) = r.published(give_up) else {
                continue;
            };
            if tail < head && r.entry(tail).seq() < bound {
                spans[i] = [tail, head];
                heap[len] = [r.entry(tail).seq(), i as u64];
                len += 1;
                sift_up(&mut heap[..len], len - 1);
            }
        }
        while len > 0 {
            let i = heap[0][1] as usize;
            let Some(r) = ring::ring(i as u32) else { break };
            // Entries of one ring while they stay ahead of every other ring's head: most
            // rounds have one busy ring, whose entries are then copied straight through.
            let limit = match len {
                1 => bound,
                2 => heap[1][0],
                _ => heap[1][0].min(heap[2][0]),
            };
            let [mut at, end] = spans[i];
            loop {
                let e = r.entry(at);
                encode(&mut self.writer, &mut self.allocs, &mut self.frees, &e);
                at += 1;
                if at == end || r.entry(at).seq() >= limit {
                    break;
                }
            }
            r.consumed(at);
            spans[i][0] = at;
            match (at < end).then(|| r.entry(at).seq()).filter(|s| *s < bound) {
                Some(seq) => {
                    heap[0][0] = seq;
                    sift_down(&mut heap[..len], 0);
                }
                None => {
                    len -= 1;
                    heap[0] = heap[len];
                    sift_down(&mut heap[..len], 0);
                }
            }
        }
        self.check();
    }
}

fn encode(
    w: &mut Writer<&'static mut [u8], FdSink>,
    allocs: &mut u64,
    frees: &mut u64,
    e: &ring::Entry,
) {
    {
        let (tid, stack) = (e.d as u32, (e.d >> 32) as u32);
        match e.kind() {
            ALLOC => {
                w.alloc(tid, e.a, e.b, stack);
                *allocs += 1;
            }
            FREE => {
                w.free(tid, e.a);
                *frees += 1;
            }
            REALLOC => {
                w.realloc(tid, e.a, e.b, e.c, stack);
                *allocs += 1;
                *frees += 1;
            }
            NODE => w.stack_node(e.a as u32, e.b as u32, e.c),
            NAME => {
                let mut name = [0u8; 16];
                name[..8].copy_from_slice(&e.a.to_le_bytes());
                name[8..].copy_from_slice(&e.b.to_le_bytes());
                w.thread_name(tid, &name[..(e.c as usize).min(16)]);
            }
            _ => {}
        }
    }
}

fn merge_space() -> Option<&'static mut [[u64; 2]]> {
    let bytes = Region::map(2 * MAX_RINGS * 16)?.leak();
    // SAFETY: page-aligned, exactly 2 * MAX_RINGS pairs of words, zero is a valid pair, and
    // the mapping lives for the process (a forked child keeps the output).
    Some(unsafe { core::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast(), 2 * MAX_RINGS) })
}

fn sift_up(h: &mut [[u64; 2]], mut i: usize) {
    while i > 0 {
        let p = (i - 1) / 2;
        if h[p][0] <= h[i][0] {
            break;
        }
        h.swap(p, i);
        i = p;
    }
}

fn sift_down(h: &mut [[u64; 2]], mut i: usize) {
    loop {
        let (l, r) = (2 * i + 1, 2 * i + 2);
        let mut m = i;
        if l < h.len() && h[l][0] < h[m][0] {
            m = l;
        }
        if r < h.len() && h[r][0] < h[m][0] {
            m = r;
        }
        if m == i {
            return;
        }
        h.swap(m, i);
        i = m;
    }
}

pub fn write_module(w: &mut Writer<&'static mut [u8], FdSink>, id: u32, m: &ModuleInfo) {
    w.module(
        id,
        m.path(),
        m.build_id(),
        m.bias,
        m.segments().iter().copied(),
    );
}

/// Makes room in `r` for `n` entries: runs a round if the output is free, else waits for
/// someone else's round. False if recording stopped meanwhile.
#[cold]
pub fn make_room(r: &Ring, n: u64) -> bool {
    let mut spins = 0u32;
    loop {
        if r.has_room(n) {
            return true;
        }
        if PHASE.load(Ordering::Acquire) != super::ON {
            return false;
        }
        if let Some(mut out) = OUTPUT.try_lock() {
            match out.as_mut() {
                Some(o) if !o.finished && !o.failed => o.round(None),
                _ => return false,
            }
            continue;
        }
        spins += 1;
        if spins < 64 {
            core::hint::spin_loop();
        } else {
            // SAFETY: sched_yield has no preconditions.
            unsafe { libc::sched_yield() };
        }
    }
}

fn rss_bytes() -> u64 {
    let mut buf = [0u8; 128];
    let n = sys::read_file(c"/proc/self/statm", &mut buf);
    let pages = buf[..n]
        .split(|b| *b == b' ')
        .nth(1)
        .and_then(super::parse_u64)
        .unwrap_or(0);
    pages * sys::page_size()
}

/// A flush: modules (if changed), a round, a time sample, the buffer. With `last`, also
/// the end marker, after which nothing more is recorded. Takes the loader's lock (the
/// scan): the flusher thread and the exit call it, never a hook.
pub fn tick(last: bool) {
    let mut scan = SCAN.lock();
    let changed = scan.as_mut().is_some_and(Scan::refresh);
    let rss = rss_bytes();
    let heap = super::heap_bytes();
    let mut out = OUTPUT.lock();
    let Some(o) = out.as_mut() else { return };
    if o.finished || o.failed {
        return;
    }
    if changed {
        if let (Some(scan), Some(stacks)) = (scan.as_mut(), UNWINDER.lock().as_mut()) {
            o.apply_scan(scan.modules(), stacks);
        }
    }
    drop(scan);
    o.flush_round(last, heap, rss);
}

/// When the next hook-driven round is due (monotonic nanoseconds).
static NEXT_ROUND: AtomicU64 = AtomicU64::new(0);

/// A round from a hook, when no flusher thread runs (sampled recording): at most one per
/// `TICK_MS`, skipped if another thread holds the output. Modules come from the walks
/// (`Stacks::check_module`), not a scan, so the loader's lock is never taken here.
pub fn tick_if_due() {
    let now = sys::monotonic_nanos();
    if now < NEXT_ROUND.load(Ordering::Relaxed) {
        return;
    }
    NEXT_ROUND.store(now + super::TICK_MS * 1_000_000, Ordering::Relaxed);
    let rss = rss_bytes();
    let heap = super::heap_bytes();
    let Some(mut out) = OUTPUT.try_lock() else {
        return;
    };
    if let Some(o) = out.as_mut() {
        if !o.finished && !o.failed {
            o.flush_round(false, heap, rss);
        }
    }
}

impl Output {
    /// A round, a time sample, the buffer to the file; with `last`, the end marker and
    /// the file closed.
    fn flush_round(&mut self, last: bool, heap: u64, rss: u64) {
        let o = self;
        // At exit another thread may be stopped for good in the middle of an append (the
        // process is ending around it): wait a little, then leave its ring out.
        o.round(last.then_some(100_000));
        let now = o.nanos();
        o.writer.time(now, heap, rss);
        if last {
            o.writer.end(now, o.allocs, o.frees);
            o.finished = true;
            if ring::lost() > 0 {
                let mut msg = TextBuf::new();
                msg.push(b"memward profile: ")
                    .push_u64(ring::lost())
                    .push(b" events not recorded (more than 16384 threads recording at once)\n");
                sys::print_error(msg.as_bytes());
            }
        }
        o.writer.flush();
        o.check();
        if last {
            sys::close(o.writer.sink().0);
        }
    }
}
