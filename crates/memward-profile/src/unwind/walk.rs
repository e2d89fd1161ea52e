//! A lean walk for callers that keep stacks by their frames' hash (memward-check's stack
//! depot) rather than in the profiler's trie. It keeps no per-thread history, and it reads
//! the rule table without the unwinder's lock, so threads walk at once: only a frame the
//! table cannot take (a return address seen for the first time, or one framehop must
//! unwind) goes through the caller's slow step, which holds the lock for that one step.
//!
//! The profiler's `capture` saves steps by reusing the frames two consecutive captures
//! share, then hands the trie the stack ids of the shared part; for a caller that hashes
//! the whole stack that bookkeeping costs more than it saves: a step from the table is a
//! slot load and one or two stack reads. What does pay for such a caller is skipping a
//! walk that repeats a recent one, with its hashing: [`Walker::walk_cached`] and the
//! `walk_cache` module.

use super::walk_cache::{WalkCache, Walked};
use super::{registers, Stacks, Track, BP_INITIAL, MAX_FRAMES, MAX_RAW};
use crate::rules::{NoLog, ReadLog, RuleReader, Step};

/// The step a walk cannot take from the rule table: `(ra, &mut sp, &mut bp, lo, hi)`,
/// as [`Stacks::step_slow`] takes it.
pub type SlowStep<'a> = dyn FnMut(u64, &mut u64, &mut u64, u64, u64) -> Option<u64> + 'a;

/// What a walk needs of the unwinder without holding it: a view of its rule table and
/// the segments of our own module (whose leading frames are the allocator's).
#[derive(Clone, Copy)]
pub struct Walker {
    pub(super) rules: RuleReader,
    pub(super) own: [(u64, u64); 8],
    pub(super) own_count: usize,
}

/// A reader of the stack words in `[lo, hi)`, aligned; anything else is an error.
fn bounded(lo: u64, hi: u64) -> impl FnMut(u64) -> Result<u64, ()> {
    move |addr: u64| {
        if addr >= lo && addr % 8 == 0 && addr.checked_add(8).is_some_and(|e| e <= hi) {
            // SAFETY: `addr` lies between a stack pointer of the walking thread (below
            // which nothing is read) and the top of that thread's stack, which is
            // mapped, and is aligned.
            Ok(unsafe { core::ptr::read_volatile(addr as *const u64) })
        } else {
            Err(())
        }
    }
}

impl Stacks {
    /// The view a [`Walker::walk`] uses. It stays valid while the unwinder lives; rules
    /// it learns later are seen by walks made with an older view too.
    pub fn walker(&self) -> Walker {
        Walker {
            rules: self.rules.reader(),
            own: self.own,
            own_count: self.own_count,
        }
    }

    /// The step a walk could not take from the rule table, for the frame that returns to
    /// `ra` with stack and frame pointers `sp` and `bp` (updated to the caller's): learns
    /// the frame's rule, or unwinds it with framehop. Stack memory is read only in
    /// `[lo, hi)`: the walk's own stack pointer and the top of its thread's stack.
    pub fn step_slow(
        &mut self,
        ra: u64,
        sp: &mut u64,
        bp: &mut u64,
        lo: u64,
        hi: u64,
    ) -> Option<u64> {
        let mut read = bounded(lo, hi);
        let mut track = Track {
            sp0: lo,
            chain: true,
            bp_from: BP_INITIAL,
        };
        self.step(ra, sp, bp, &mut read, &mut track)
    }
}

impl Walker {
    /// Writes the caller's stack into `out`, innermost first (return addresses, our own
    /// leading frames dropped), and returns how many frames it wrote. `stack_top` is the
    /// end of the calling thread's stack. A frame the rule table does not describe is
    /// passed to `slow` as `(ra, &mut sp, &mut bp, lo, hi)`, which should lock the
    /// unwinder and call [`Stacks::step_slow`] with the same arguments.
    ///
    /// ```
    /// use memward_profile::shared::{Scan, Stacks, MAX_FRAMES};
    /// let mut scan = Scan::new().unwrap();
    /// scan.refresh();
    /// let mut stacks = Stacks::new();
    /// for m in scan.modules() {
    ///     stacks.add(m);
    /// }
    /// let walker = stacks.walker();
    /// let top = memward_profile::shared::stack_top(false);
    /// let mut out = [0u64; MAX_FRAMES];
    /// let n = walker.walk(&mut out, top, &mut |ra, sp, bp, lo, hi| {
    ///     stacks.step_slow(ra, sp, bp, lo, hi)
    /// });
    /// // This doc test's own function and the test harness's frames above it.
    /// assert!(n >= 2, "{n} frames");
    /// ```
    #[inline(never)]
    pub fn walk(
        &self,
        out: &mut [u64; MAX_FRAMES],
        stack_top: u64,
        slow: &mut SlowStep<'_>,
    ) -> usize {
        let (ip, sp0, bp0) = registers();
        self.walk_from(ip, sp0, bp0, &mut out[..], stack_top, slow, &mut NoLog)
    }

    /// [`walk`](Walker::walk) of at most `max_frames` frames (at most [`MAX_FRAMES`]),
    /// unless `cache` holds a walk made from the same registers that read the same stack
    /// words: then that walk's stack id, with no step taken. After [`Walked::Frames`], the
    /// caller finds the stack's id and hands it to [`WalkCache::remember`]. One caller
    /// passes one `max_frames` per `generation`: a kept walk is as deep as it was.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub fn walk_cached(
        &self,
        out: &mut [u64; MAX_FRAMES],
        max_frames: usize,
        stack_top: u64,
        slow: &mut SlowStep<'_>,
        cache: Option<&mut WalkCache>,
        generation: u64,
    ) -> Walked {
        let (ip, sp0, bp0) = registers();
        let out = &mut out[..max_frames.clamp(1, MAX_FRAMES)];
        let Some(cache) = cache else {
            return Walked::Frames(self.walk_from(ip, sp0, bp0, out, stack_top, slow, &mut NoLog));
        };
        if let Some(id) = cache.find(sp0, bp0, stack_top, generation) {
            return Walked::Known(id);
        }
        let mut log = cache.start(sp0, bp0, stack_top, generation);
        let n = self.walk_from(ip, sp0, bp0, out, stack_top, slow, &mut log);
        log.finish();
        Walked::Frames(n)
    }

    /// The walk from a function's own registers (`ip` inside it, past its prologue).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn walk_from(
        &self,
        ip: u64,
        sp0: u64,
        bp0: u64,
        out: &mut [u64],
        stack_top: u64,
        slow: &mut SlowStep<'_>,
        log: &mut impl ReadLog,
    ) -> usize {
        // Stack words are read in `[sp0, stack_top)`: at most `span` past `sp0`.
        let span = stack_top.saturating_sub(sp0).saturating_sub(8);
        // The function's own frame is unwound like a caller's: `ip` is past its
        // prologue, so the rule looked up at `ip + 1` is the one in force.
        let (mut ra, mut sp, mut bp) = (ip + 1, sp0, bp0);
        let mut n = 0;
        let mut skipping = self.own_count > 0;
        for _ in 0..MAX_RAW {
            let below = sp;
            let next = match self.rules.step_logged(ra, &mut sp, &mut bp, sp0, span, log) {
                Step::Next(next) => Some(next),
                Step::End => None,
                Step::Slow => {
                    log.slow_step();
                    // Copies, so that `sp` and `bp` stay in registers on the fast path.
                    let (mut s, mut b) = (sp, bp);
                    let next = slow(ra, &mut s, &mut b, sp0, stack_top);
                    (sp, bp) = (s, b);
                    next
                }
            };
            // Frames only move outwards; anything else is a corrupt or ended stack.
            match next {
                Some(next) if next != 0 && sp > below => ra = next,
                _ => break,
            }
            if skipping {
                if self.is_own(ra) {
                    continue;
                }
                skipping = false;
            }
            out[n] = ra;
            n += 1;
            if n == out.len() {
                break;
            }
        }
        n
    }

    fn is_own(&self, addr: u64) -> bool {
        self.own[..self.own_count]
            .iter()
            .any(|&(start, len)| addr >= start && addr - start < len)
    }
}
