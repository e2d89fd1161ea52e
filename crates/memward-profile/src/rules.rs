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
//! This table stores that shape per return address (16 bytes, 4,096 slots: 64 KiB, which stay in the
//! processor's cache better than a larger table and hold the few thousand return
//! addresses of a program's allocation paths) and applies
//! it in a dozen instructions.
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

use crate::sys::{Region, ZeroValid};

/// Slots in the table (a power of two).
const SLOTS: usize = 1 << 12;

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

#[derive(Clone, Copy)]
#[repr(C)]
struct Slot {
    /// The return address; 0: empty.
    ra: u64,
    cfa_offset: u32,
    bp_offset: i16,
    /// 0 empty, 1 end, 2 general, 3 cfa from sp, 4 cfa from bp; plus 8 if the frame
    /// pointer is loaded.
    kind: u8,
    _pad: u8,
}

// SAFETY: integers only; all-zero is an empty slot.
unsafe impl ZeroValid for Slot {}

const END: u8 = 1;
const GENERAL: u8 = 2;
const FROM_SP: u8 = 3;
const FROM_BP: u8 = 4;
const LOADS_BP: u8 = 8;

/// The rule table.
pub struct RuleTable {
    slots: Option<Region>,
    /// Something was stored since the last clear.
    dirty: bool,
}

#[inline]
fn index(ra: u64) -> usize {
    ((ra.wrapping_mul(0x9e37_79b9_7f4a_7c15)) >> (64 - 12)) as usize & (SLOTS - 1)
}

impl RuleTable {
    /// An empty table in its own mapping (without one, every lookup says `Unknown` and
    /// the caller keeps using framehop).
    pub fn new() -> RuleTable {
        RuleTable {
            slots: Region::map(SLOTS * core::mem::size_of::<Slot>()),
            dirty: false,
        }
    }

    /// The shape learned for `ra`.
    #[inline]
    pub fn get(&mut self, ra: u64) -> Shape {
        let Some(r) = self.slots.as_mut() else {
            return Shape::Unknown;
        };
        let s = r.slice_of::<Slot>()[index(ra)];
        if s.ra != ra || s.kind == 0 {
            return Shape::Unknown;
        }
        match s.kind & 7 {
            END => Shape::End,
            FROM_SP | FROM_BP => Shape::Cfa {
                from_bp: s.kind & 7 == FROM_BP,
                cfa_offset: s.cfa_offset,
                bp_from_cfa: (s.kind & LOADS_BP != 0).then_some(i32::from(s.bp_offset)),
            },
            _ => Shape::General,
        }
    }

    /// Stores `shape` for `ra` (replacing whatever shared its slot). A shape whose
    /// offsets do not fit the slot is stored as `General`.
    pub fn set(&mut self, ra: u64, shape: Shape) {
        let Some(r) = self.slots.as_mut() else {
            return;
        };
        let mut slot = Slot {
            ra,
            cfa_offset: 0,
            bp_offset: 0,
            kind: GENERAL,
            _pad: 0,
        };
        match shape {
            Shape::Unknown => return,
            Shape::End => slot.kind = END,
            Shape::General => {}
            Shape::Cfa {
                from_bp,
                cfa_offset,
                bp_from_cfa,
            } => {
                let bp = match bp_from_cfa {
                    None => Some((0, 0)),
                    Some(o) => i16::try_from(o).ok().map(|o| (o, LOADS_BP)),
                };
                if let Some((bp_offset, loads)) = bp {
                    slot.cfa_offset = cfa_offset;
                    slot.bp_offset = bp_offset;
                    slot.kind = if from_bp { FROM_BP } else { FROM_SP } | loads;
                }
            }
        }
        r.slice_of::<Slot>()[index(ra)] = slot;
        self.dirty = true;
    }

    /// Forgets everything (the module set changed).
    pub fn clear(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        if let Some(r) = self.slots.as_mut() {
            r.bytes_mut().fill(0);
        }
    }
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
        let mut t = RuleTable::new();
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
