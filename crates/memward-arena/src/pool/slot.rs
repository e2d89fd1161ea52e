//! One slot of a `Pool`: a generation and either a value or a free-list link.
//!
//! The generation's parity says which: odd means the slot holds a value, even means it is
//! vacant (and the body holds the index of the next vacant slot). A key matches a slot only
//! if their generations are equal, and keys are only made for odd generations, so a key
//! never matches a vacant slot. A slot whose generation would wrap past `u32::MAX` is
//! *retired*: its generation becomes 0 and it never joins the free list again, so a stale
//! key can never reach a value inserted later, at the cost of one dead slot per 2^31
//! reuses. The body is a union (the value and the link share the space, as in slotmap) so
//! a slot costs `4 + max(size_of T, 4)` bytes rounded to `T`'s alignment; this module is
//! the only place that reads the union, always after checking the parity.

use core::mem::ManuallyDrop;

/// The generation of a retired slot.
pub(crate) const RETIRED: u32 = 0;

union Body<T> {
    value: ManuallyDrop<T>,
    next_free: u32,
}

pub(crate) struct Slot<T> {
    generation: u32,
    body: Body<T>,
}

impl<T> Slot<T> {
    /// A new slot holding `value`, generation 1.
    pub(crate) fn occupied(value: T) -> Self {
        Slot {
            generation: 1,
            body: Body {
                value: ManuallyDrop::new(value),
            },
        }
    }

    #[inline]
    pub(crate) fn generation(&self) -> u32 {
        self.generation
    }

    #[inline]
    pub(crate) fn is_occupied(&self) -> bool {
        self.generation & 1 == 1
    }

    /// The value, if the slot is occupied with generation `generation`, which must be odd
    /// (every `Key` has an odd generation: `Pool` makes only those and `Key::from_bits`
    /// refuses the rest), so equality alone proves the slot is occupied.
    #[inline(always)]
    pub(crate) fn get(&self, generation: u32) -> Option<&T> {
        debug_assert!(generation & 1 == 1);
        if self.generation == generation {
            // SAFETY: an odd generation means `body.value` is the live field.
            Some(unsafe { &self.body.value })
        } else {
            None
        }
    }

    /// The value, mutably, if the slot is occupied with the odd generation `generation`.
    #[inline(always)]
    pub(crate) fn get_mut(&mut self, generation: u32) -> Option<&mut T> {
        debug_assert!(generation & 1 == 1);
        if self.generation == generation {
            // SAFETY: an odd generation means `body.value` is the live field.
            Some(unsafe { &mut self.body.value })
        } else {
            None
        }
    }

    /// The value if the slot is occupied, whatever its generation (for iteration).
    #[inline]
    pub(crate) fn value(&self) -> Option<&T> {
        if self.is_occupied() {
            // SAFETY: an odd generation means `body.value` is the live field.
            Some(unsafe { &self.body.value })
        } else {
            None
        }
    }

    /// The value, mutably, if the slot is occupied (for iteration).
    #[inline]
    pub(crate) fn value_mut(&mut self) -> Option<&mut T> {
        if self.is_occupied() {
            // SAFETY: an odd generation means `body.value` is the live field.
            Some(unsafe { &mut self.body.value })
        } else {
            None
        }
    }

    /// Takes the value out if the slot is occupied with `generation`, leaving it vacant
    /// with `next_free` as its link, or retired. Returns the value and whether the slot
    /// may be reused (false when it was retired).
    #[inline(always)]
    pub(crate) fn take(&mut self, generation: u32, next_free: u32) -> Option<(T, bool)> {
        debug_assert!(generation & 1 == 1);
        if self.generation != generation {
            return None;
        }
        // SAFETY: an odd generation means `body.value` is live; it is read once and the
        // generation is made even (or 0) below, so it is never read or dropped again.
        let value = unsafe { ManuallyDrop::take(&mut self.body.value) };
        let reusable = self.generation != u32::MAX;
        self.generation = if reusable {
            self.generation + 1
        } else {
            RETIRED
        };
        self.body.next_free = next_free;
        Some((value, reusable))
    }

    /// Puts `value` into a vacant, non-retired slot; returns the slot's old link and its
    /// new generation.
    #[inline(always)]
    pub(crate) fn fill(&mut self, value: T) -> (u32, u32) {
        debug_assert!(
            !self.is_occupied() && self.generation != RETIRED,
            "memward-arena: pool free list reached an occupied or retired slot"
        );
        // SAFETY: slots on the free list are vacant (even generation), so `body.next_free`
        // is the live field; `Pool` only fills slots it took from the free list.
        let next = unsafe { self.body.next_free };
        self.body.value = ManuallyDrop::new(value);
        self.generation += 1;
        (next, self.generation)
    }

    /// Sets the generation (tests drive retirement without 2^31 reuses).
    #[cfg(test)]
    pub(crate) fn set_generation(&mut self, generation: u32) {
        assert_eq!(generation & 1, self.generation & 1);
        self.generation = generation;
    }
}

impl<T> Drop for Slot<T> {
    fn drop(&mut self) {
        if self.is_occupied() {
            // SAFETY: an odd generation means `body.value` is live; the slot is being
            // dropped, so it is dropped exactly once.
            unsafe { ManuallyDrop::drop(&mut self.body.value) }
        }
    }
}
