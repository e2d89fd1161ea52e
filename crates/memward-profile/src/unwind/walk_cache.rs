//! A thread's recent walks, kept so that a walk that would repeat one is not taken.
//!
//! A table walk is a function of the registers it starts from and of the stack words it
//! reads: the return address of each frame, and the saved frame pointers it loads (the
//! rules themselves only change when a module is loaded or unloaded). Each walk logs the
//! words it read; a later walk from the same stack pointer, whose logged words all still
//! hold the values logged, would take the same steps and find the same frames, so it
//! returns the stack id remembered for them instead. Checking costs one read and compare
//! per frame, against a rule lookup and one or two reads per frame for the walk, and no
//! hashing of the frames to find their id.
//!
//! Only what a walk depended on is compared: the frame pointer it started from only if
//! a step used it before any was loaded, and a loaded frame pointer only if a later step
//! used it (code built without frame pointers keeps unrelated values in `rbp`, which
//! would otherwise make every walk look new). A walk that took a step outside the table
//! (framehop, or a rule learned on the way) is not kept: its reads were not logged.
//!
//! Unlike the profiler's capture history, nothing is reused from a walk that differs:
//! callers that find a stack by hashing its frames (memward-check's depot) gain most from
//! skipping both the walk and the hash, and a hit needs no bookkeeping.

/// Kept walks are found by their stack pointer: `SETS` sets of `WAYS` walks each. A
/// program calls the allocator from many depths, and from many paths at each depth:
/// `git log -p` under the checker took 2,288M instructions with 8 sets, 2,250M with 16,
/// 2,152M with 32 and 2,103M with 64 (`memward run` 1,357M).
const SETS: usize = 32;
const WAYS: usize = 4;

/// Words logged per walk; a walk reading more is not kept (sqlite3's walks through the
/// checker read 20 to 40).
const LOG_WORDS: usize = 40;

/// One kept walk. Values are stored inverted (`!value`): a saved frame pointer of code
/// built without frame pointers may hold anything, a heap address too, and a leak scan
/// must never find one here.
#[derive(Clone, Copy)]
struct Entry {
    /// The stack id of the walk's frames; 0: the entry is empty.
    id: u32,
    len: u8,
    uses_bp0: bool,
    generation: u64,
    sp0: u64,
    /// How far above `sp0` the walk could read (the same for every walk from `sp0` on
    /// one thread; compared so that a word is never read outside the bounds).
    span: u64,
    /// `!bp0`, when a step used it.
    bp0: u64,
    /// Each word read, in the walk's order: its offset from `sp0` and its value inverted.
    offsets: [u32; LOG_WORDS],
    values: [u64; LOG_WORDS],
}

const EMPTY: Entry = Entry {
    id: 0,
    len: 0,
    uses_bp0: false,
    generation: 0,
    sp0: 0,
    span: 0,
    bp0: 0,
    offsets: [0; LOG_WORDS],
    values: [0; LOG_WORDS],
};

/// A thread's recent walks (about 66 KiB: one per thread, used by that thread only; see
/// [`thread_cache`](super::walk_pool::thread_cache)).
pub struct WalkCache {
    sets: [[Entry; WAYS]; SETS],
    /// Per set, the way the next walk logged there replaces.
    victims: [u8; SETS],
    /// Where the walk being logged goes (set, way), once it has its id.
    logging: (usize, usize),
    /// Whether that entry holds a complete log waiting for its id.
    pending: bool,
}

fn set_of(sp0: u64) -> usize {
    ((sp0 >> 4).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SETS.trailing_zeros())) as usize
}

impl WalkCache {
    /// An empty cache (usable in a `const` thread-local initialiser).
    pub const fn new() -> WalkCache {
        WalkCache {
            sets: [[EMPTY; WAYS]; SETS],
            victims: [0; SETS],
            logging: (0, 0),
            pending: false,
        }
    }

    /// The id of a kept walk that a walk from `(sp0, bp0)` would repeat. Stack words are
    /// read only at addresses a walk from `sp0` on this thread read before, which lie in
    /// `[sp0, stack_top)`.
    #[inline(always)]
    pub(super) fn find(
        &mut self,
        sp0: u64,
        bp0: u64,
        stack_top: u64,
        generation: u64,
    ) -> Option<u32> {
        self.pending = false;
        let span = stack_top.saturating_sub(sp0).saturating_sub(8);
        'ways: for e in &self.sets[set_of(sp0)] {
            if e.id == 0
                || e.sp0 != sp0
                || e.span != span
                || e.generation != generation
                || (e.uses_bp0 && e.bp0 != !bp0)
            {
                continue;
            }
            let len = usize::from(e.len);
            let read = |offset: u32| {
                let at = (sp0 + u64::from(offset)) as *const u64;
                // SAFETY: logged by a walk from this `sp0` and `span`, which reads only aligned
                // words within `span` of `sp0`: this thread's live stack, mapped and readable.
                unsafe { core::ptr::read_volatile(at) }
            };
            // Two paths into the allocator from one depth part at the first words read
            // (the innermost return addresses): those with an early way out; the rest,
            // almost always equal on a hit, with one test at the end.
            let early = len.min(2);
            for (&offset, &value) in e.offsets[..early].iter().zip(&e.values[..early]) {
                if read(offset) != !value {
                    continue 'ways;
                }
            }
            // A word equal to its logged value, stored inverted, xors to all ones.
            let mut same = !0;
            for (&offset, &value) in e.offsets[early..len].iter().zip(&e.values[early..len]) {
                same &= read(offset) ^ value;
            }
            if same == !0 {
                return Some(e.id);
            }
        }
        None
    }

    /// Starts logging a walk from `(sp0, bp0)` into the entry its set replaces next.
    #[inline(always)]
    pub(super) fn start(
        &mut self,
        sp0: u64,
        bp0: u64,
        stack_top: u64,
        generation: u64,
    ) -> Logger<'_> {
        let set = set_of(sp0);
        let way = usize::from(self.victims[set]);
        self.logging = (set, way);
        let e = &mut self.sets[set][way];
        e.id = 0;
        e.len = 0;
        e.uses_bp0 = false;
        e.generation = generation;
        e.sp0 = sp0;
        e.span = stack_top.saturating_sub(sp0).saturating_sub(8);
        e.bp0 = 0;
        Logger {
            pending: &mut self.pending,
            entry: e,
            bp0,
            loaded_bp: None,
            any_loaded: false,
            complete: true,
        }
    }

    /// Keeps the walk just logged (after [`Walked::Frames`](Walked::Frames)) as the walk
    /// of stack `id` (not 0). Does nothing if the walk could not be logged whole.
    pub fn remember(&mut self, id: u32) {
        if !self.pending || id == 0 {
            return;
        }
        self.pending = false;
        let (set, way) = self.logging;
        self.sets[set][way].id = id;
        self.victims[set] = ((way + 1) % WAYS) as u8;
    }
}

/// Where a thread's cache lives: one for the whole library (see `walk_pool`), so the
/// checker and the profiler share it rather than keep one each. Their stack ids differ, so
/// each passes its own `space` in the generation ([`generation_in`]).
///
/// A generation of kept walks as one user of the shared cache counts it, in its own
/// `space` (0 to 3): kept walks of another space never match.
pub const fn generation_in(space: u64, generation: u64) -> u64 {
    generation & (u64::MAX >> 2) | space << 62
}

impl Default for WalkCache {
    fn default() -> Self {
        WalkCache::new()
    }
}

/// What [`Walker::walk_cached`](super::Walker::walk_cached) found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Walked {
    /// The stack of a kept walk, by the id given to [`WalkCache::remember`].
    Known(u32),
    /// A new walk: this many frames were written.
    Frames(usize),
}

/// The log of one walk, written into a cache entry.
pub(super) struct Logger<'a> {
    entry: &'a mut Entry,
    pending: &'a mut bool,
    /// The walk's starting frame pointer (stored if a step uses it).
    bp0: u64,
    /// The last frame pointer loaded (address, value): logged once a step uses it.
    loaded_bp: Option<(u64, u64)>,
    any_loaded: bool,
    complete: bool,
}

impl Logger<'_> {
    #[inline(always)]
    fn push(&mut self, addr: u64, value: u64) {
        let i = usize::from(self.entry.len);
        let Ok(offset) = u32::try_from(addr.wrapping_sub(self.entry.sp0)) else {
            self.complete = false;
            return;
        };
        if i == LOG_WORDS {
            self.complete = false;
            return;
        }
        self.entry.offsets[i] = offset;
        self.entry.values[i] = !value;
        self.entry.len += 1;
    }

    /// Ends the log: the entry waits for its id if the walk was logged whole.
    #[inline(always)]
    pub(super) fn finish(self) {
        *self.pending = self.complete;
    }
}

impl crate::rules::ReadLog for Logger<'_> {
    #[inline(always)]
    fn return_address(&mut self, addr: u64, value: u64) {
        self.push(addr, value);
    }

    #[inline(always)]
    fn bp_loaded(&mut self, addr: u64, value: u64) {
        // A value loaded and never used is never compared (nor kept).
        self.any_loaded = true;
        self.loaded_bp = Some((addr, value));
    }

    #[inline(always)]
    fn bp_used(&mut self) {
        if self.any_loaded {
            // Logged on its first use; later uses of the same value need nothing more.
            if let Some((addr, value)) = self.loaded_bp.take() {
                self.push(addr, value);
            }
        } else {
            self.entry.uses_bp0 = true;
            self.entry.bp0 = !self.bp0;
        }
    }

    fn slow_step(&mut self) {
        self.complete = false;
    }
}
