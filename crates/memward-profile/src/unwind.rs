//! Stack capture for programs built without frame pointers: `.eh_frame` CFI unwinding.
//! `framehop` reads the CFI (its `MustNotAllocateDuringUnwind` policy keeps that
//! allocation-free); the walk itself applies rules from a flat table keyed by return
//! address (`rules`), learned from framehop once per return address, so a frame seen
//! before costs a table slot and one or two reads instead of framehop's module search and
//! general rule.
//!
//! The unwinder starts with the modules of a scan and learns the rest as the walks meet
//! them: a frame the rule table cannot take first asks the loader which object holds its
//! address (`modules::object_at`, glibc's lock-free `_dl_find_object`). An object not
//! known yet is described from its headers in memory and added; a known one that is no
//! longer there (unloaded) is dropped before framehop could read its tables. So modules
//! that `dlopen` adds are unwound at once, and nothing inside an allocation hook takes
//! the loader's lock. Stack memory is read only between the capture's own stack pointer
//! and the top of the calling thread's stack, so a corrupt frame cannot make the
//! recorder fault.
//!
//! Consecutive allocations share most of their stacks, so each thread keeps its last
//! capture (return addresses, the stack slots they were read from, and how each frame
//! was reached), and a capture takes what it can from it at both ends:
//!
//! - **Inner frames.** A frame reached from the capture's own frame by stack-pointer
//!   rules only stands at a fixed distance from the capture's stack pointer. While the
//!   last capture's frames hold the same return address at the same distance, they are
//!   the same frames (the same return addresses mean the same rules): one read each
//!   instead of a step. This covers the allocator's own frames and the program's
//!   allocation wrappers.
//! - **Outer frames.** Once, from the outermost inwards, the capture finds how far the
//!   last capture's slots still hold their return addresses. When the walk reaches one of
//!   those frames (the same return address in the same slot), the rest, and its stack
//!   ids, is taken from the last capture. (A different chain with the same return
//!   addresses in the same slots would be read as the old one; the check makes that
//!   implausible, not impossible.)
//!
//! Frames of the allocator itself are dropped when it is a shared library (libmemward.so):
//! every leading frame inside the recorder's own module. A program that links memward
//! statically keeps them (they share the executable with the program); reports drop them
//! by name.

mod from_context;
mod walk;
mod walk_cache;
mod walk_pool;

pub use walk::Walker;
pub use walk_cache::{generation_in, WalkCache, Walked};
pub use walk_pool::{thread_cache, thread_pointer};

use crate::modules::{self, ModuleInfo};
use crate::rules::{self, RuleTable, Shape};
use crate::sys::{Region, ZeroValid};
use core::sync::atomic::{AtomicU64, Ordering};
use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{
    ExplicitModuleSectionInfo, FrameAddress, Module, MustNotAllocateDuringUnwind, Unwinder,
};

/// Deepest stack recorded (heaptrack records 64 as well).
pub const MAX_FRAMES: usize = 64;

/// framehop's rule cache is direct-mapped with 509 slots (address % 509); it is used when
/// a rule is learned and for frames the rule table cannot describe. A bank of caches
/// chosen by `address / 509` makes it direct-mapped over `509 * CACHE_BANKS` slots.
const CACHE_BANKS: usize = 32;

type Data = &'static [u8];

/// The unwinder, its cache, and what to skip.
pub struct Stacks {
    unwinder: UnwinderX86_64<Data, MustNotAllocateDuringUnwind>,
    caches: [CacheX86_64<MustNotAllocateDuringUnwind>; CACHE_BANKS],
    /// Segments of our own module, when it is a shared library: leading frames there are
    /// the allocator's.
    own: [(u64, u64); 8],
    own_count: usize,
    /// Learned rules per return address, in front of framehop.
    rules: RuleTable,
    /// The modules framehop knows (`Known`s; empty if it could not be mapped).
    known: Option<Region>,
    known_count: usize,
}

/// A module the unwinder knows: its description, its address range, and whether a walk
/// found it (not yet handed out by [`Stacks::take_found`]).
#[derive(Clone, Copy)]
#[repr(C)]
struct Known {
    info: ModuleInfo,
    lo: u64,
    hi: u64,
    found: u64,
}

// SAFETY: integers and a `ZeroValid` struct only.
unsafe impl ZeroValid for Known {}

/// Counts changes to any unwinder's modules: a walk kept by a thread (`walk_cache`) holds
/// only while this is unchanged, since rules were learned with the modules of the time.
static MODULE_GENERATION: AtomicU64 = AtomicU64::new(0);

/// The count of module changes so far (see `walk_cache::generation_in`).
pub fn module_generation() -> u64 {
    MODULE_GENERATION.load(Ordering::Acquire)
}

/// A `'static` view of loaded memory.
///
/// # Safety
/// `[addr, addr + len)` must stay mapped and readable while the unwinder may use it (the
/// module stays loaded; a module is removed from the unwinder when a scan finds it gone).
unsafe fn memory(addr: u64, len: u64) -> Data {
    // SAFETY: per the contract.
    unsafe { core::slice::from_raw_parts(addr as *const u8, len as usize) }
}

impl Stacks {
    /// An unwinder without modules. Allocates its cache (once, from the global allocator).
    pub fn new() -> Stacks {
        Stacks {
            unwinder: UnwinderX86_64::new(),
            caches: core::array::from_fn(|_| CacheX86_64::new_in()),
            own: [(0, 0); 8],
            own_count: 0,
            rules: RuleTable::new(),
            known: Region::map(modules::MAX_MODULES * core::mem::size_of::<Known>()),
            known_count: 0,
        }
    }

    fn known(&mut self) -> &mut [Known] {
        let n = self.known_count;
        match self.known.as_mut() {
            Some(r) => &mut r.slice_of::<Known>()[..n],
            None => &mut [],
        }
    }

    /// Makes `m`'s unwind information known; false if it already was (the same bias and
    /// first segment) or the module list is full.
    pub fn add(&mut self, m: &ModuleInfo) -> bool {
        self.insert(m, false)
    }

    fn insert(&mut self, m: &ModuleInfo, found: bool) -> bool {
        let key = m.key();
        if self.known().iter().any(|k| k.info.key() == key) {
            return false;
        }
        let (lo, hi) = m.range();
        let n = self.known_count;
        // Without the list's mapping the module is still unwound, only not tracked (no
        // check for unloading, no duplicate test); with the list full it is left out.
        if let Some(r) = self.known.as_mut() {
            let Some(slot) = r.slice_of::<Known>().get_mut(n) else {
                return false;
            };
            *slot = Known {
                info: *m,
                lo,
                hi,
                found: u64::from(found),
            };
            self.known_count += 1;
        }
        let (hdr_addr, hdr_len) = m.eh_frame_hdr;
        let mut info = ExplicitModuleSectionInfo::<Data> {
            base_svma: 0,
            ..Default::default()
        };
        if hdr_addr != 0 {
            // SAFETY: PT_GNU_EH_FRAME lies in a loaded segment of a loaded module.
            let hdr = unsafe { memory(hdr_addr, hdr_len) };
            info.eh_frame_hdr_svma = Some(hdr_addr - m.bias..hdr_addr - m.bias + hdr_len);
            info.eh_frame_hdr = Some(hdr);
            if let Some(eh) = crate::modules::eh_frame_address(hdr, hdr_addr) {
                // .eh_frame runs to the end of the segment holding it at most.
                if let Some(seg) = m.segments().iter().find(|s| eh >= s.0 && eh < s.0 + s.1) {
                    let len = seg.0 + seg.1 - eh;
                    // SAFETY: within a loaded segment of a loaded module.
                    info.eh_frame = Some(unsafe { memory(eh, len) });
                    info.eh_frame_svma = Some(eh - m.bias..eh - m.bias + len);
                }
            }
        }
        if let Some(text) = m.segments().iter().find(|s| s.3 & libc::PF_X != 0) {
            info.text_svma = Some(text.0 - m.bias..text.0 - m.bias + text.1);
            // SAFETY: an executable PT_LOAD segment of a loaded module is mapped readable.
            info.text = Some(unsafe { memory(text.0, text.1) });
        }
        let name = String::from_utf8_lossy(m.path()).into_owned();
        self.unwinder
            .add_module(Module::new(name, lo..hi, m.bias, info));
        // Addresses in it may have been learned with the fallback rule.
        self.rules.clear();
        MODULE_GENERATION.fetch_add(1, Ordering::AcqRel);
        true
    }

    /// Forgets `m` (it was unloaded); nothing if it was not known.
    pub fn remove(&mut self, m: &ModuleInfo) {
        let key = m.key();
        if let Some(i) = self.known().iter().position(|k| k.info.key() == key) {
            self.remove_at(i);
        }
    }

    fn remove_at(&mut self, i: usize) {
        let k = self.known()[i];
        let last = self.known_count - 1;
        let known = self.known();
        known[i] = known[last];
        self.known_count = last;
        self.unwinder.remove_module(k.lo);
        self.rules.clear();
        MODULE_GENERATION.fetch_add(1, Ordering::AcqRel);
    }

    /// Hands each module a walk found (rather than [`add`](Stacks::add) was given) to `f`,
    /// once: the profiler writes them into its file.
    pub fn take_found(&mut self, mut f: impl FnMut(&ModuleInfo)) {
        for k in self.known() {
            if k.found != 0 {
                k.found = 0;
                f(&k.info);
            }
        }
    }

    /// Before a frame returning to `ra` is learned or unwound by framehop: makes the
    /// unwinder's modules agree with the loader's at that address. A known module that
    /// is no longer loaded there is dropped (framehop would read its unmapped tables), and
    /// an object loaded there since is added. Takes no lock (`modules::object_at`).
    #[cold]
    fn check_module(&mut self, ra: u64) {
        if self.known.is_none() {
            // No list to compare with: the modules stay those of the scans.
            return;
        }
        let pc = ra.wrapping_sub(1);
        let held = self.known().iter().position(|k| pc >= k.lo && pc < k.hi);
        let loaded = modules::object_at(pc);
        if let (Some(i), Some((start, bias))) = (held, loaded) {
            // `start` is the object's first page, or where its segments are not contiguous
            // that of the segment holding `pc`.
            let k = &self.known()[i];
            if k.info.bias == bias && start >= k.lo & !4095 && start < k.hi {
                return;
            }
        }
        if held.is_none() && loaded.is_none() {
            return;
        }
        if let Some(i) = held {
            self.remove_at(i);
        }
        let Some(m) = loaded.and_then(|_| modules::module_at(pc)) else {
            return;
        };
        // Whatever else overlaps it was unloaded too.
        let (lo, hi) = m.range();
        while let Some(i) = self.known().iter().position(|k| k.lo < hi && lo < k.hi) {
            self.remove_at(i);
        }
        self.insert(&m, true);
    }

    /// The unwinder's own mappings (start, end): its module list and rule table. They hold
    /// no program data (a leak scan need not read them as roots).
    pub fn own_mappings(&self) -> impl Iterator<Item = (usize, usize)> {
        self.known
            .as_ref()
            .map(Region::range)
            .into_iter()
            .chain(self.rules.mapping())
    }

    /// Drops leading frames inside `m` from now on.
    pub fn skip_frames_in(&mut self, m: &ModuleInfo) {
        for s in m.segments().iter().take(self.own.len()) {
            self.own[self.own_count] = (s.0, s.1);
            self.own_count += 1;
        }
    }

    /// [`Walker::capture`] with this unwinder's own slow step (for a caller that holds
    /// the unwinder anyway).
    pub fn capture(
        &mut self,
        out: &mut [u64; MAX_FRAMES],
        ids: &mut [u32; MAX_FRAMES],
        stack_top: u64,
    ) -> (usize, usize) {
        let walker = self.walker();
        walker.capture(out, ids, stack_top, &mut |ra, sp, bp, lo, hi| {
            self.step_slow(ra, sp, bp, lo, hi)
        })
    }
}

impl Walker {
    /// Writes the caller's stack into `out`, innermost first (return addresses, our own
    /// leading frames dropped), and returns how many frames it wrote. `stack_top` is the
    /// end of the calling thread's stack.
    ///
    /// Where the outer frames were reused from the thread's last capture, their stack
    /// ids (as given to [`Walker::remember`] then) come along: the return value is
    /// `(n, known)`, and `ids[i]` is the id of the stack `out[i..n]` for `known <= i < n`.
    ///
    /// The walk reads the rule table without a lock; a frame it cannot take from there
    /// goes to `slow`, as in [`Walker::walk`].
    #[inline(never)]
    pub fn capture(
        &self,
        out: &mut [u64; MAX_FRAMES],
        ids: &mut [u32; MAX_FRAMES],
        stack_top: u64,
        slow: &mut walk::SlowStep<'_>,
    ) -> (usize, usize) {
        let (ip, sp, bp) = registers();
        let mut read = |addr: u64| -> Result<u64, ()> {
            if addr >= sp && addr % 8 == 0 && addr.checked_add(8).is_some_and(|e| e <= stack_top) {
                // SAFETY: `addr` lies between this function's stack pointer and the top
                // of this thread's stack, which is mapped, and is aligned.
                Ok(unsafe { core::ptr::read_volatile(addr as *const u64) })
            } else {
                Err(())
            }
        };
        let (own, own_count) = (self.own, self.own_count);
        let is_own = |addr: u64| {
            own[..own_count]
                .iter()
                .any(|&(start, len)| addr >= start && addr - start < len)
        };
        // SAFETY: the thread's own capture records; `capture` is not re-entered on a
        // thread (hooks are not) and nothing else borrows them.
        let captures = CAPTURES.with(|p| unsafe { &mut *p.get() });
        // The capture to compare with: the latest one made from the same stack pointer
        // (the same call depth into the allocator, likely the same path), else the
        // latest one.
        let cur_i = captures.next;
        let mut prev_i = captures.last;
        let mut best = 0;
        for (i, c) in captures.bufs.iter().enumerate() {
            if i != cur_i && c.len > 0 && c.sp0 == sp && c.stamp > best {
                (prev_i, best) = (i, c.stamp);
            }
        }
        let (prev, cur) = if prev_i < cur_i {
            let (lo, hi) = captures.bufs.split_at_mut(cur_i);
            (&lo[prev_i], &mut hi[0])
        } else {
            let (lo, hi) = captures.bufs.split_at_mut(prev_i);
            (&hi[0], &mut lo[cur_i])
        };
        // The previous capture's frames from `unchanged` outwards still hold the return
        // addresses they held (found once, from the outermost inwards, stopping at the
        // first difference or at the current stack pointer).
        let mut unchanged = prev.len;
        while unchanged > 0
            && prev.slots[unchanged - 1] >= sp
            && read(prev.slots[unchanged - 1]) == Ok(prev.ras[unchanged - 1])
        {
            unchanged -= 1;
        }
        // This function's own frame is unwound like a caller's: `ip` is past its
        // prologue, so the rule looked up at `ip` (return address `ip + 1`) is the one
        // in force.
        let sp0 = sp;
        let (mut sp, mut bp) = (sp, bp);
        cur.chain = 0;
        let mut track = Track {
            sp0,
            chain: true,
            bp_from: BP_INITIAL,
        };
        // Inner frames are taken from the previous capture while they are the same: each
        // of its leading frames that stands at a fixed distance from the capture's stack
        // pointer (every step up to it used a stack-pointer rule) is checked with one read
        // at that distance, and a match means the same rules, so the same next frame.
        let mut prefix = true;
        let mut ra = ip + 1;
        // Raw frames: each return address and the stack slot it was read from.
        let mut raw = 0;
        let mut j = 0;
        // (current raw index, previous raw index) where reused frames start.
        let mut reused = None;
        while raw < MAX_RAW {
            if prefix && raw < prev.chain && read(sp0 + prev.rel[raw]) == Ok(prev.ras[raw]) {
                ra = prev.ras[raw];
                sp = sp0 + prev.rel[raw] + 8;
                track.bp_from = prev.bp_from[raw];
            } else {
                if prefix {
                    prefix = false;
                    if track.bp_from != BP_INITIAL {
                        match read(sp0 + track.bp_from) {
                            Ok(v) => bp = v,
                            Err(()) => break,
                        }
                    }
                }
                match self.step(ra, &mut sp, &mut bp, &mut read, &mut track, slow, stack_top) {
                    Some(next) if next != 0 => ra = next,
                    _ => break,
                }
            }
            // After a step, the stack pointer is the caller's: the return address sat
            // just below it. Slots only grow outwards (the checks below rely on it).
            let slot = sp.wrapping_sub(8);
            if raw > 0 && slot <= cur.slots[raw - 1] {
                break;
            }
            cur.ras[raw] = ra;
            cur.slots[raw] = slot;
            cur.rel[raw] = slot - sp0;
            cur.bp_from[raw] = track.bp_from;
            raw += 1;
            if track.chain {
                cur.chain = raw;
            }
            // The previous capture's frames further out are reused when this frame is
            // one of them (same return address in the same slot) and every slot further
            // out still holds the return address it held then.
            while j < prev.len && prev.slots[j] < slot {
                j += 1;
            }
            if j < prev.len && prev.slots[j] == slot && prev.ras[j] == ra && j + 1 >= unchanged {
                let more = (prev.len - j - 1).min(MAX_RAW - raw);
                reused = Some((raw, j + 1));
                cur.ras[raw..raw + more].copy_from_slice(&prev.ras[j + 1..j + 1 + more]);
                cur.slots[raw..raw + more].copy_from_slice(&prev.slots[j + 1..j + 1 + more]);
                raw += more;
                break;
            }
        }
        if let Some((now, _)) = reused {
            cur.chain = cur.chain.min(now);
        }
        // The allocator's own frames: the same as last time when the frames taken from
        // the previous capture cover them and the frame after them.
        let same_inner = prev.chain.min(cur.chain);
        let skip = if own_count == 0 {
            0
        } else if prev.skip < same_inner && cur.ras[..=prev.skip] == prev.ras[..=prev.skip] {
            prev.skip
        } else {
            cur.ras[..raw].iter().take_while(|ra| is_own(**ra)).count()
        };
        let truncated = raw - skip > MAX_FRAMES || raw == MAX_RAW;
        let n = (raw - skip).min(MAX_FRAMES);
        out[..n].copy_from_slice(&cur.ras[skip..skip + n]);
        // Ids of a stack suffix carry over only when neither capture was cut: a cut
        // counts from the innermost frame, so the same outer frames would be a different
        // stack.
        // Raw frame `r >= now` is the previous capture's frame `r - now + old`; ids exist
        // for its recorded frames (from its own `skip` on).
        let mut known = n;
        if let Some((now, old)) = reused {
            if prev.ids_valid && !prev.truncated && !truncated {
                let first = now.max(skip);
                let from = first - now + old;
                if from >= prev.skip {
                    known = first - skip;
                    ids[known..n].copy_from_slice(&prev.ids[from..from + (n - known)]);
                }
            }
        }
        cur.len = raw;
        cur.skip = skip;
        cur.truncated = truncated;
        cur.ids_valid = false;
        cur.sp0 = sp0;
        let same = reused == Some((1, 1)) && prev.sp0 == sp0 && prev.len == raw;
        captures.clock += 1;
        if same {
            // The same stack as `prev`: keep the history as it is (the buffer just
            // written is reused next time) and mark `prev` as the latest.
            captures.bufs[prev_i].stamp = captures.clock;
            captures.last = prev_i;
        } else {
            captures.bufs[cur_i].stamp = captures.clock;
            captures.last = cur_i;
            // The next capture overwrites the least recently used one.
            let mut oldest = u64::MAX;
            for (i, c) in captures.bufs.iter().enumerate() {
                if i != cur_i && c.stamp < oldest {
                    (captures.next, oldest) = (i, c.stamp);
                }
            }
        }
        (n, known)
    }

    /// One step outwards with the rule table, or with `slow` for a frame it does not
    /// describe (see `Stacks::step`).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        ra: u64,
        sp: &mut u64,
        bp: &mut u64,
        read: &mut impl FnMut(u64) -> Result<u64, ()>,
        track: &mut Track,
        slow: &mut walk::SlowStep<'_>,
        stack_top: u64,
    ) -> Option<u64> {
        match self.rules.get(ra) {
            Shape::End => None,
            Shape::Cfa {
                from_bp,
                cfa_offset,
                bp_from_cfa,
            } => track.apply(from_bp, cfa_offset, bp_from_cfa, sp, bp, read),
            Shape::General | Shape::Unknown => {
                // Learned (or unwound by framehop) under the caller's lock; the frames
                // after it are not counted as a fixed distance from the stack pointer.
                track.chain = false;
                slow(ra, sp, bp, track.sp0, stack_top)
            }
        }
    }

    /// Records the stack ids of the last capture's frames (`ids[i]`: the id of the stack
    /// made of the frames from `i` outwards), for the next capture on this thread.
    pub fn remember(&self, ids: &[u32]) {
        // SAFETY: as in `capture`: this thread's records, not borrowed elsewhere.
        let captures = CAPTURES.with(|p| unsafe { &mut *p.get() });
        let prev = &mut captures.bufs[captures.last];
        let skip = prev.skip;
        if skip + ids.len() <= MAX_RAW {
            prev.ids[skip..skip + ids.len()].copy_from_slice(ids);
            prev.ids_valid = true;
        }
    }
}

impl Stacks {
    /// One step outwards from the frame that returns to `ra`, whose stack and frame
    /// pointers are `sp` and `bp` (updated to the caller's): the caller's return address,
    /// or `None` where the stack ends or cannot be read.
    #[inline(always)]
    fn step(
        &mut self,
        ra: u64,
        sp: &mut u64,
        bp: &mut u64,
        read: &mut impl FnMut(u64) -> Result<u64, ()>,
        track: &mut Track,
    ) -> Option<u64> {
        let mut shape = self.rules.get(ra);
        if matches!(shape, Shape::Unknown | Shape::General) {
            self.check_module(ra);
        }
        if shape == Shape::Unknown {
            shape = self.learn(ra, *sp, *bp, read);
            self.rules.set(ra, shape);
        }
        match shape {
            Shape::End => None,
            Shape::Cfa {
                from_bp,
                cfa_offset,
                bp_from_cfa,
            } => track.apply(from_bp, cfa_offset, bp_from_cfa, sp, bp, read),
            Shape::General | Shape::Unknown => {
                track.chain = false;
                self.framehop_step(ra, sp, bp, read)
            }
        }
    }

    /// A step with framehop (its cache bank chosen by address).
    fn framehop_step(
        &mut self,
        ra: u64,
        sp: &mut u64,
        bp: &mut u64,
        read: &mut impl FnMut(u64) -> Result<u64, ()>,
    ) -> Option<u64> {
        let frame = FrameAddress::from_return_address(ra)?;
        let bank = (frame.address_for_lookup() / 509) as usize % CACHE_BANKS;
        let mut regs = UnwindRegsX86_64::new(ra, *sp, *bp);
        let next = self
            .unwinder
            .unwind_frame(frame, &mut regs, &mut self.caches[bank], read)
            .ok()
            .flatten()?;
        (*sp, *bp) = (regs.sp(), regs.bp());
        Some(next)
    }

    /// Learns the shape of the frame returning to `ra` (see the `rules` module): from two
    /// probes with made-up registers, checked against framehop's real step from `(sp,
    /// bp)`. Anything that disagrees is `General`.
    #[cold]
    fn learn(
        &mut self,
        ra: u64,
        sp: u64,
        bp: u64,
        read: &mut impl FnMut(u64) -> Result<u64, ()>,
    ) -> Shape {
        let mut shapes = [Shape::General; 2];
        for (shape, &(sp0, bp0)) in shapes.iter_mut().zip(rules::PROBES.iter()) {
            let (mut s, mut b) = (sp0, bp0);
            let mut marking = rules::marking_read;
            let frame = FrameAddress::from_return_address(ra);
            let bank = frame.map_or(0, |f| (f.address_for_lookup() / 509) as usize % CACHE_BANKS);
            let mut regs = UnwindRegsX86_64::new(ra, s, b);
            let unwound = match frame.map(|f| {
                self.unwinder
                    .unwind_frame(f, &mut regs, &mut self.caches[bank], &mut marking)
            }) {
                Some(Ok(r)) => r,
                _ => return Shape::General,
            };
            (s, b) = (regs.sp(), regs.bp());
            *shape = rules::shape_from_probe(sp0, bp0, unwound, s, b);
        }
        if shapes[0] != shapes[1] {
            return Shape::General;
        }
        let (mut s, mut b) = (sp, bp);
        let theirs = self
            .framehop_step(ra, &mut s, &mut b, read)
            .map(|r| (r, s, b));
        let agrees = match shapes[0] {
            Shape::Cfa {
                from_bp,
                cfa_offset,
                bp_from_cfa,
            } => rules::apply(from_bp, cfa_offset, bp_from_cfa, sp, bp, read) == theirs,
            Shape::End => theirs.is_none(),
            _ => true,
        };
        if agrees {
            shapes[0]
        } else {
            Shape::General
        }
    }

    /// Records the stack ids of the last capture's frames, for the next capture on this
    /// thread (see [`Walker::remember`]).
    pub fn remember(&mut self, ids: &[u32]) {
        self.walker().remember(ids);
    }
}

/// Most raw frames kept per capture: the recorded ones plus the allocator's own.
const MAX_RAW: usize = MAX_FRAMES + 32;

/// What the walk knows about how the current frame was reached.
struct Track {
    /// The capture's stack pointer.
    sp0: u64,
    /// Every step so far used a stack-pointer rule: the frame stands at a fixed distance
    /// from `sp0`.
    chain: bool,
    /// Where the frame pointer was last loaded from (distance from `sp0`), or
    /// `BP_INITIAL` if it is still the capture's own.
    bp_from: u64,
}

const BP_INITIAL: u64 = u64::MAX;

impl Track {
    /// One step with a `Cfa` shape (`rules::apply`), noting how the caller's frame was
    /// reached: the caller's return address, or `None` where the stack cannot be read.
    #[inline(always)]
    fn apply(
        &mut self,
        from_bp: bool,
        cfa_offset: u32,
        bp_from_cfa: Option<i32>,
        sp: &mut u64,
        bp: &mut u64,
        read: &mut impl FnMut(u64) -> Result<u64, ()>,
    ) -> Option<u64> {
        let (next, new_sp, new_bp) =
            rules::apply(from_bp, cfa_offset, bp_from_cfa, *sp, *bp, read)?;
        (*sp, *bp) = (new_sp, new_bp);
        if from_bp {
            self.chain = false;
        } else if let Some(o) = bp_from_cfa {
            self.bp_from = new_sp
                .wrapping_add_signed(i64::from(o))
                .wrapping_sub(self.sp0);
        }
        Some(next)
    }
}

/// One capture, kept for reusing the frames the next one shares with it.
struct Capture {
    len: usize,
    ras: [u64; MAX_RAW],
    slots: [u64; MAX_RAW],
    /// Per frame: its slot's distance from the capture's stack pointer, and where the
    /// frame pointer came from (see `Track`); meaningful for the first `chain` frames.
    rel: [u64; MAX_RAW],
    bp_from: [u64; MAX_RAW],
    /// Leading frames reached by stack-pointer rules only.
    chain: usize,
    /// The capturing function's stack pointer.
    sp0: u64,
    /// When it was last the latest capture (`Captures::clock`; 0: never).
    stamp: u64,
    /// Stack ids per raw frame (from `skip` on), valid after `Stacks::remember`.
    ids: [u32; MAX_RAW],
    skip: usize,
    truncated: bool,
    ids_valid: bool,
}

/// Captures a thread keeps: the programs's hot allocation paths alternate, and a capture
/// compared with the latest one from the same call depth shares more with it. (Eight
/// before the recorder asked the walk cache first, which answers most repeats; each
/// capture is 3.5 KiB of static thread-local storage, which every thread's stack pays.)
const HISTORY: usize = 3;

/// A thread's recent captures and the buffer the next one is written into (buffers
/// change roles, so a capture is never copied as a whole).
struct Captures {
    bufs: [Capture; HISTORY + 1],
    /// Which of `bufs` holds the latest capture (`Stacks::remember` completes it).
    last: usize,
    /// Which of `bufs` the next capture is written into.
    next: usize,
    /// Counts captures, for `Capture::stamp`.
    clock: u64,
}

const EMPTY_CAPTURE: Capture = Capture {
    len: 0,
    ras: [0; MAX_RAW],
    slots: [0; MAX_RAW],
    rel: [0; MAX_RAW],
    bp_from: [0; MAX_RAW],
    chain: 0,
    sp0: 0,
    stamp: 0,
    ids: [0; MAX_RAW],
    skip: 0,
    truncated: false,
    ids_valid: false,
};

thread_local! {
    static CAPTURES: core::cell::UnsafeCell<Captures> = const {
        core::cell::UnsafeCell::new(Captures {
            bufs: [EMPTY_CAPTURE; HISTORY + 1],
            last: 0,
            next: 1,
            clock: 0,
        })
    };
}

/// The instruction pointer, stack pointer and frame pointer at this point.
#[inline(always)]
fn registers() -> (u64, u64, u64) {
    let (ip, sp, bp): (u64, u64, u64);
    // `rbp` is read first: where the compiler does not keep a frame pointer it may give
    // `rbp` to one of the outputs, and writing `sp` or `ip` first would then lose it (an
    // unoptimised build gave `sp` `rbp`, and every walk started from a wrong `bp`).
    // SAFETY: reads three registers into outputs; touches no memory and no flags.
    unsafe {
        core::arch::asm!(
            "mov {bp}, rbp",
            "mov {sp}, rsp",
            "lea {ip}, [rip]",
            ip = out(reg) ip,
            sp = out(reg) sp,
            bp = out(reg) bp,
            options(nomem, nostack, preserves_flags),
        );
    }
    (ip, sp, bp)
}

extern "C" {
    /// The top of the main thread's stack at process start (exported by glibc's loader).
    static __libc_stack_end: *mut core::ffi::c_void;
}

/// The calling thread's stack block `[start, end)` as glibc describes it, for a thread
/// other than the main one (whose stack glibc sizes from `/proc/self/maps`, allocating):
/// its thread descriptor and static TLS lie at the top, the guard page just below
/// `start`. `None` if unknown.
pub fn thread_stack() -> Option<(u64, u64)> {
    // glibc reads the bounds from the thread descriptor (its small allocation is served,
    // not recorded: hooks are not re-entered).
    // SAFETY: `attr` is initialised by pthread_getattr_np before use and destroyed
    // after; the out-pointers are valid locals.
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = core::ptr::null_mut();
        let mut size: usize = 0;
        let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        ok.then(|| (addr as u64, addr as u64 + size as u64))
    }
}

/// The highest address of the calling thread's stack (exclusive); 0 if unknown.
pub fn stack_top(is_main_thread: bool) -> u64 {
    if is_main_thread {
        // SAFETY: a plain read of a pointer-sized variable the loader set at start.
        let end = unsafe { __libc_stack_end } as u64;
        // The page holding it is part of the stack mapping.
        return (end + 4095) & !4095;
    }
    thread_stack().map_or(0, |(_, top)| top)
}
