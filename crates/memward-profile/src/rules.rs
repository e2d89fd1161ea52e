//! A flat, direct-mapped table of unwind rules keyed by return address, in front of
//! framehop.
//!
//! framehop answers "how do I unwind the frame that returns to `ra`?" with a rule cache,
//! but each step still finds the module (a search), hashes into one of its caches and
//! executes a general rule through several layers of calls: about a hundred instructions
//! for a frame seen before. Every frame on x86-64 that CFI describes without expressions
//! unwinds in one of a few shapes: the caller's stack pointer (the CFA) is the stack or
//! the frame pointer plus a constant, the return address sits just below it, and the
//! caller's frame pointer is either unchanged or stored at a constant offset from the CFA.
//! This table stores that shape per return address and applies it in a dozen
//! instructions. It has 4,096 slots of 16 bytes: 64 KiB stay in the processor's caches
//! better than a larger table (the slot load was the walk's hottest instruction with
//! 16,384), and hold the few thousand return addresses of a program's allocation paths.
//! The slots form 1,024 sets of four, a cache line each, searched in order: with one slot
//! per address, two of a program's few hundred hot return addresses almost surely shared
//! one, and a stack holding both (or two stacks taken in turn) evicted one with the other
//! on every walk, sending every step of it to framehop; which ones collided changed with
//! the address layout, so a program's checking or profiling cost changed from run to run
//! by a fifth. Five hot addresses in one set is rare (about 2% of layouts for 300).
//!
//! The shape is learned from framehop without reading its private rule: the frame is
//! unwound with made-up registers (a stack pointer and a frame pointer far apart) and a
//! memory reader that returns, for each address, the address itself with a marker bit.
//! Where the new stack pointer lands and which addresses the return address and the frame
//! pointer came from then spell out the rule. It is learned twice, with two different
//! sets of made-up registers, and checked once against framehop's real unwind of the
//! frame; a frame whose unwinding does not fit the shapes (a signal frame, CFI
//! expressions) is marked "ask framehop" and keeps taking the general path.
//!
//! A module added or removed clears the table (it is rare: the start and `dlopen`), since
//! an address outside every known module was unwound with framehop's fallback rule.

use crate::sys::Region;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Slots in the table (a power of two), in sets of `WAYS` (one cache line).
const SLOTS: usize = 1 << 12;
const WAYS: usize = 4;
const SETS: usize = SLOTS / WAYS;

/// How a learned frame is unwound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Nothing learned for this return address yet.
    Unknown,
    /// The stack ends here (framehop's end-of-stack rule).
    End,
    /// The unwind does not fit the shapes below: unwind with framehop.
    General,
    /// `cfa = base + cfa_offset` (`base`: the stack pointer, or the frame pointer if
    /// `from_bp`), return address at `cfa - 8`, frame pointer unchanged or (with
    /// `bp_from_cfa`) loaded from `cfa + bp_offset`.
    Cfa {
        from_bp: bool,
        cfa_offset: u32,
        bp_from_cfa: Option<i32>,
    },
}

/// One slot: two words written by one thread at a time (the owner of the unwinder) and
/// read by any thread without a lock. `shape` packs the rule (`cfa_offset` in bits 0-31,
/// `bp_offset` in 32-47, `kind` in 48-55); `key` is the return address xor a mix of
/// `shape`, so a reader that catches a slot half rewritten sees a key that does not
/// match and takes the slow path (a false match needs two different slots' words to
/// collide on all 64 bits).
#[repr(C)]
struct Slot {
    key: AtomicU64,
    shape: AtomicU64,
}

const END: u8 = 1;
const GENERAL: u8 = 2;
const FROM_SP: u8 = 3;
const FROM_BP: u8 = 4;
const LOADS_BP: u8 = 8;

#[inline]
fn mix(shape: u64) -> u64 {
    shape.wrapping_mul(0xff51_afd7_ed55_8ccd)
}

/// The rule table. Reading ([`RuleTable::get`]) needs only a shared reference, so walks
/// on many threads can use it at once; [`RuleTable::set`] and [`RuleTable::clear`] are
/// for the one thread that owns the unwinder at the time (the caller's lock).
pub struct RuleTable {
    slots: Option<&'static [Slot]>,
    /// Something was stored since the last clear.
    dirty: AtomicBool,
    /// Picks the way replaced in a full set (round robin over the table).
    victim: AtomicUsize,
}

/// The first slot of the set `ra` belongs to.
#[inline]
fn set_of(ra: u64) -> usize {
    (((ra.wrapping_mul(0x9e37_79b9_7f4a_7c15)) >> (64 - 10)) as usize & (SETS - 1)) * WAYS
}

/// The shape word stored for `ra` in `slots`, if any.
#[inline(always)]
fn lookup(slots: &[Slot], ra: u64) -> Option<u64> {
    let first = set_of(ra);
    slots[first..first + WAYS].iter().find_map(|slot| {
        let shape = slot.shape.load(Ordering::Acquire);
        let key = slot.key.load(Ordering::Acquire);
        (key == ra ^ mix(shape)).then_some(shape)
    })
}

impl RuleTable {
    /// An empty table in its own mapping (without one, every lookup says `Unknown` and
    /// the caller keeps using framehop). The mapping is kept for the rest of the process:
    /// walks on other threads may still read it.
    pub fn new() -> RuleTable {
        let slots = Region::map(SLOTS * core::mem::size_of::<Slot>()).map(|r| {
            let bytes = r.leak();
            // SAFETY: page-aligned, `SLOTS` whole slots fit, all-zero bytes are valid
            // atomics (an empty slot), and the mapping now lives for the process; it is
            // only ever accessed through these atomics.
            unsafe { core::slice::from_raw_parts(bytes.as_ptr().cast::<Slot>(), SLOTS) }
        });
        RuleTable {
            slots,
            dirty: AtomicBool::new(false),
            victim: AtomicUsize::new(0),
        }
    }

    /// The table's mapping (start, end), if it has one.
    pub fn mapping(&self) -> Option<(usize, usize)> {
        self.slots.map(|s| {
            (
                s.as_ptr() as usize,
                s.as_ptr() as usize + core::mem::size_of_val(s),
            )
        })
    }

    /// The shape learned for `ra`.
    #[inline]
    pub fn get(&self, ra: u64) -> Shape {
        self.reader().get(ra)
    }

    /// A read-only view of the table, for walks on other threads.
    pub fn reader(&self) -> RuleReader {
        RuleReader { slots: self.slots }
    }

    /// Stores `shape` for `ra`: in the slot already holding `ra`, else an empty slot of
    /// its set, else one of the set's slots in turn. A shape whose offsets do not fit
    /// the slot is stored as `General`.
    pub fn set(&self, ra: u64, shape: Shape) {
        let Some(slots) = self.slots else {
            return;
        };
        let (mut cfa_offset, mut bp_offset, mut kind) = (0u32, 0i16, GENERAL);
        match shape {
            Shape::Unknown => return,
            Shape::End => kind = END,
            Shape::General => {}
            Shape::Cfa {
                from_bp,
                cfa_offset: offset,
                bp_from_cfa,
            } => {
                let bp = match bp_from_cfa {
                    None => Some((0, 0)),
                    Some(o) => i16::try_from(o).ok().map(|o| (o, LOADS_BP)),
                };
                if let Some((o, loads)) = bp {
                    cfa_offset = offset;
                    bp_offset = o;
                    kind = if from_bp { FROM_BP } else { FROM_SP } | loads;
                }
            }
        }
        let word =
            u64::from(cfa_offset) | u64::from(bp_offset as u16) << 32 | u64::from(kind) << 48;
        let first = set_of(ra);
        let set = &slots[first..first + WAYS];
        let holds = |slot: &Slot| {
            let shape = slot.shape.load(Ordering::Relaxed);
            slot.key.load(Ordering::Relaxed) == ra ^ mix(shape)
        };
        let empty = |slot: &Slot| {
            slot.key.load(Ordering::Relaxed) == 0 && slot.shape.load(Ordering::Relaxed) == 0
        };
        let slot = set
            .iter()
            .find(|s| holds(s))
            .or_else(|| set.iter().find(|s| empty(s)))
            .unwrap_or_else(|| &set[self.victim.fetch_add(1, Ordering::Relaxed) % WAYS]);
        // The key first goes to a value no reader's address matches with either shape.
        slot.key.store(0, Ordering::Release);
        slot.shape.store(word, Ordering::Release);
        slot.key.store(ra ^ mix(word), Ordering::Release);
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Forgets everything (the module set changed).
    pub fn clear(&self) {
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return;
        }
        for slot in self.slots.unwrap_or_default() {
            slot.key.store(0, Ordering::Release);
            slot.shape.store(0, Ordering::Release);
        }
    }
}

/// Lookups in a [`RuleTable`] from any thread, without its owner's lock.
#[derive(Clone, Copy)]
pub struct RuleReader {
    slots: Option<&'static [Slot]>,
}

impl RuleReader {
    /// The shape learned for `ra`.
    #[inline]
    pub fn get(&self, ra: u64) -> Shape {
        let Some(shape) = self.slots.and_then(|slots| lookup(slots, ra)) else {
            return Shape::Unknown;
        };
        let kind = (shape >> 48) as u8;
        match kind & 7 {
            END => Shape::End,
            FROM_SP | FROM_BP => Shape::Cfa {
                from_bp: kind & 7 == FROM_BP,
                cfa_offset: shape as u32,
                bp_from_cfa: (kind & LOADS_BP != 0)
                    .then_some(i32::from((shape >> 32) as u16 as i16)),
            },
            GENERAL => Shape::General,
            _ => Shape::Unknown,
        }
    }

    /// One step of a walk with the rule learned for `ra`, from the frame whose stack and
    /// frame pointers are `sp` and `bp` (updated to the caller's) and with stack words
    /// `read` from `[lo, lo + span + 8)`: the same as [`apply`] with the shape [`get`]
    /// gives, decoded in place (the walk's hottest code). The step tells `log` what it
    /// depended on: the words it read and whether it used the frame pointer it was given
    /// ([`NoLog`] for a walk that keeps no log).
    ///
    /// [`get`]: RuleReader::get
    #[inline(always)]
    pub fn step_logged(
        &self,
        ra: u64,
        sp: &mut u64,
        bp: &mut u64,
        lo: u64,
        span: u64,
        log: &mut impl ReadLog,
    ) -> Step {
        let Some(slots) = self.slots else {
            return Step::Slow;
        };
        let read = |addr: u64| -> Option<u64> {
            if addr.wrapping_sub(lo) <= span && addr & 7 == 0 {
                // SAFETY: `[lo, lo + span + 8)` is the caller's readable stack (the
                // contract of `span`), and `addr` is an aligned word within it.
                Some(unsafe { core::ptr::read_volatile(addr as *const u64) })
            } else {
                None
            }
        };
        let Some(shape) = lookup(slots, ra) else {
            return Step::Slow;
        };
        let kind = (shape >> 48) as u8;
        let base = match kind & 7 {
            FROM_SP => *sp,
            FROM_BP => {
                log.bp_used();
                if *bp == 0 {
                    return Step::End;
                }
                *bp
            }
            END => return Step::End,
            _ => return Step::Slow,
        };
        let cfa = base.wrapping_add(u64::from(shape as u32));
        if cfa <= *sp {
            return Step::End;
        }
        let Some(next) = read(cfa - 8) else {
            return Step::End;
        };
        log.return_address(cfa - 8, next);
        if kind & LOADS_BP != 0 {
            let at = cfa.wrapping_add_signed(i64::from((shape >> 32) as u16 as i16));
            match read(at) {
                Some(v) => {
                    log.bp_loaded(at, v);
                    *bp = v;
                }
                None => return Step::End,
            }
        }
        *sp = cfa;
        Step::Next(next)
    }
}

/// What a table step depended on, beyond the rule and the stack pointer it started from
/// (for memward-check's walk cache: a walk that would read the same words and start from
/// the same registers gives the same frames).
pub trait ReadLog {
    /// The step read the return address `value` at `addr`.
    fn return_address(&mut self, addr: u64, value: u64);
    /// The step loaded the caller's frame pointer, `value`, from `addr`.
    fn bp_loaded(&mut self, addr: u64, value: u64);
    /// The step's frame address was computed from the frame pointer it was given.
    fn bp_used(&mut self);
    /// A step the table could not take was taken another way (its reads are not logged).
    fn slow_step(&mut self) {}
}

/// The log of a walk that keeps none.
pub struct NoLog;

impl ReadLog for NoLog {
    #[inline(always)]
    fn return_address(&mut self, _: u64, _: u64) {}
    #[inline(always)]
    fn bp_loaded(&mut self, _: u64, _: u64) {}
    #[inline(always)]
    fn bp_used(&mut self) {}
}

/// What [`RuleReader::step_logged`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Moved to the caller, which returns to this address.
    Next(u64),
    /// The stack ends here, or cannot be read further.
    End,
    /// No rule for this frame (not learned yet, or framehop's to unwind).
    Slow,
}

/// Applies a `Cfa` shape to the registers `(sp, bp)` of the frame returning to the
/// looked-up address: `Some((return address, caller's sp, caller's bp))`, or `None` where
/// the stack cannot be read or the result would not move outwards (the walk ends).
#[inline]
pub fn apply(
    from_bp: bool,
    cfa_offset: u32,
    bp_from_cfa: Option<i32>,
    sp: u64,
    bp: u64,
    read: &mut impl FnMut(u64) -> Result<u64, ()>,
) -> Option<(u64, u64, u64)> {
    let base = if from_bp {
        if bp == 0 {
            return None;
        }
        bp
    } else {
        sp
    };
    let cfa = base.checked_add(u64::from(cfa_offset))?;
    if cfa <= sp {
        return None;
    }
    let ra = read(cfa - 8).ok()?;
    let new_bp = match bp_from_cfa {
        None => bp,
        Some(o) => read(cfa.checked_add_signed(i64::from(o))?).ok()?,
    };
    Some((ra, cfa, new_bp))
}

/// The marker bit the learning reader sets on every value it returns.
const MARK: u64 = 1 << 60;
/// Offsets farther than this from a made-up register are not a shape.
const WINDOW: u64 = 1 << 24;

/// Reads a shape out of one unwind step done with made-up registers `(sp0, bp0)` and the
/// marking reader: `unwound` is framehop's answer (`None`: the stack ends),
/// `(sp1, bp1)` the registers after the step.
pub fn shape_from_probe(sp0: u64, bp0: u64, unwound: Option<u64>, sp1: u64, bp1: u64) -> Shape {
    let Some(ra) = unwound else {
        return Shape::End;
    };
    let (from_bp, cfa_offset) = if sp1.wrapping_sub(sp0) < WINDOW {
        (false, sp1 - sp0)
    } else if sp1.wrapping_sub(bp0) < WINDOW {
        (true, sp1 - bp0)
    } else {
        return Shape::General;
    };
    if ra != MARK | (sp1 - 8) {
        return Shape::General;
    }
    let bp_from_cfa = if bp1 == bp0 {
        None
    } else if bp1 & MARK != 0 {
        let at = (bp1 & !MARK) as i64 - sp1 as i64;
        if at.unsigned_abs() >= WINDOW {
            return Shape::General;
        }
        Some(at as i32)
    } else {
        return Shape::General;
    };
    Shape::Cfa {
        from_bp,
        cfa_offset: cfa_offset as u32,
        bp_from_cfa,
    }
}

/// The reader used while learning: every address reads as itself with the marker bit.
pub fn marking_read(addr: u64) -> Result<u64, ()> {
    Ok(MARK | addr)
}

/// Two sets of made-up registers for learning: stack and frame pointer far apart, so a
/// result near one of them says which one it came from.
pub const PROBES: [(u64, u64); 2] = [(1 << 40, 1 << 42), (3 << 40, 5 << 42)];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_reads_shapes() {
        let t = RuleTable::new();
        assert_eq!(t.get(0x1234), Shape::Unknown);
        let s = Shape::Cfa {
            from_bp: false,
            cfa_offset: 48,
            bp_from_cfa: Some(-16),
        };
        t.set(0x1234, s);
        assert_eq!(t.get(0x1234), s);
        t.set(0x5678, Shape::End);
        assert_eq!(t.get(0x5678), Shape::End);
        // An offset too large for the slot falls back to framehop.
        t.set(
            0x9abc,
            Shape::Cfa {
                from_bp: true,
                cfa_offset: 16,
                bp_from_cfa: Some(1 << 20),
            },
        );
        assert_eq!(t.get(0x9abc), Shape::General);
        t.clear();
        assert_eq!(t.get(0x1234), Shape::Unknown);
    }

    #[test]
    fn addresses_sharing_a_set_are_all_kept_up_to_its_ways() {
        let t = RuleTable::new();
        let set = set_of(0x40_1000);
        let same: Vec<u64> = (0x40_1000u64..)
            .step_by(7)
            .filter(|&ra| set_of(ra) == set)
            .take(WAYS + 1)
            .collect();
        let shape = |i: usize| Shape::Cfa {
            from_bp: false,
            cfa_offset: 8 * (i as u32 + 1),
            bp_from_cfa: None,
        };
        for (i, &ra) in same[..WAYS].iter().enumerate() {
            t.set(ra, shape(i));
        }
        // Learning one again rewrites its own slot, evicting nothing.
        t.set(same[0], shape(0));
        for (i, &ra) in same[..WAYS].iter().enumerate() {
            assert_eq!(t.get(ra), shape(i), "way {i}");
        }
        // One more than the set holds replaces one of them, and nothing else.
        t.set(same[WAYS], shape(WAYS));
        assert_eq!(t.get(same[WAYS]), shape(WAYS));
        let kept = same[..WAYS]
            .iter()
            .filter(|&&ra| t.get(ra) != Shape::Unknown)
            .count();
        assert_eq!(kept, WAYS - 1);
    }

    #[test]
    fn reads_shapes_from_probes() {
        let (sp0, bp0) = PROBES[0];
        // sp += 40, return address at the new sp - 8, rbp restored from cfa - 16.
        let sp1 = sp0 + 40;
        let shape = shape_from_probe(sp0, bp0, Some(MARK | (sp1 - 8)), sp1, MARK | (sp1 - 16));
        assert_eq!(
            shape,
            Shape::Cfa {
                from_bp: false,
                cfa_offset: 40,
                bp_from_cfa: Some(-16)
            }
        );
        // The frame-pointer chain: cfa = bp + 16, bp = *bp.
        let sp1 = bp0 + 16;
        let shape = shape_from_probe(sp0, bp0, Some(MARK | (sp1 - 8)), sp1, MARK | bp0);
        assert_eq!(
            shape,
            Shape::Cfa {
                from_bp: true,
                cfa_offset: 16,
                bp_from_cfa: Some(-16)
            }
        );
        assert_eq!(shape_from_probe(sp0, bp0, None, 0, 0), Shape::End);
        // A stack pointer read from memory (a signal frame) is no shape.
        let sp1 = MARK | (sp0 + 160);
        assert_eq!(
            shape_from_probe(sp0, bp0, Some(MARK | 8), sp1, bp0),
            Shape::General
        );
    }

    #[test]
    fn applies_shapes_to_real_memory() {
        // A fake stack: [sp] .. ; the frame keeps 32 bytes, saved rbp at cfa-16, ra at cfa-8.
        let stack = [0u64, 0, 7777, 0x4000_1234, 99];
        let base = stack.as_ptr() as u64;
        let mut read = |a: u64| -> Result<u64, ()> {
            let i = (a - base) / 8;
            stack.get(i as usize).copied().ok_or(())
        };
        let r = apply(false, 32, Some(-16), base, 5, &mut read);
        assert_eq!(r, Some((0x4000_1234, base + 32, 7777)));
        // Not moving outwards ends the walk.
        assert_eq!(apply(true, 16, None, base, base - 64, &mut read), None);
        assert_eq!(apply(true, 16, None, base, 0, &mut read), None);
    }
}
