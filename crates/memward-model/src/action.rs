//! The model's vocabulary: what one step does, and random lists of steps.
//!
//! Fields are raw numbers that the runner reduces (thread and block indices modulo the
//! counts, sizes and alignments through fixed buckets), so every value of every field is
//! a valid action. That is what lets `arbitrary` derive fuzz inputs directly, and lets the
//! random generator and the fuzzer share one meaning for each field. The buckets give
//! mostly small blocks with a tail of medium, large and huge ones (the same mix as the
//! model test always used): 60% up to 128 bytes, 25% up to 8 KiB, 12% up to 80 KiB, 2% up
//! to 2 MiB, 1% from 2 to 8 MiB.

/// A block size, drawn from buckets (see the module docs).
///
/// ```
/// use memward_model::Size;
/// assert_eq!(Size::exactly(100).bytes(), 100);
/// assert!(Size { bucket: 0, value: 12345 }.bytes() <= 128);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Size {
    /// Picks the range: `bucket % 100` in 0..60 small, ..85 medium, ..97 large, ..99
    /// very large, 99 huge; 255 means `value` itself (up to 8 MiB).
    pub bucket: u8,
    /// The size within the range, reduced modulo its width.
    pub value: u32,
}

impl Size {
    /// Exactly `bytes` (at most 8 MiB).
    ///
    /// ```
    /// assert_eq!(memward_model::Size::exactly(0).bytes(), 0);
    /// ```
    pub fn exactly(bytes: u32) -> Size {
        Size {
            bucket: u8::MAX,
            value: bytes,
        }
    }

    /// The size in bytes.
    ///
    /// ```
    /// let s = memward_model::Size { bucket: 99, value: 0 };
    /// assert_eq!(s.bytes(), 2 << 20);
    /// ```
    pub fn bytes(self) -> usize {
        let v = self.value as usize;
        if self.bucket == u8::MAX {
            return v.min(8 << 20);
        }
        match self.bucket % 100 {
            0..=59 => v % 129,
            60..=84 => v % (8 * 1024),
            85..=96 => v % (80 * 1024),
            97..=98 => v % (2 << 20),
            _ => (2 << 20) + v % (6 << 20),
        }
    }
}

/// A block alignment, drawn from buckets: mostly the `malloc` default, sometimes small,
/// page-sized or huge (up to 2 MiB, memward's maximum).
///
/// ```
/// use memward_model::Align;
/// assert_eq!(Align { bucket: 0, log2: 200 }.bytes(), 16);
/// assert_eq!(Align { bucket: 9, log2: 8 }.bytes(), 1 << 21);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Align {
    /// `bucket % 10`: 0..7 the default 16, 7 up to 64, 8 up to 4 KiB, 9 up to 2 MiB.
    pub bucket: u8,
    /// The power of two within the bucket, reduced modulo its width.
    pub log2: u8,
}

impl Align {
    /// The alignment in bytes, for a block of `size` bytes: `malloc` promises only 8 for
    /// blocks of 8 bytes or less.
    ///
    /// ```
    /// let a = memward_model::Align { bucket: 0, log2: 0 };
    /// assert_eq!(a.bytes_for(8), 8);
    /// assert_eq!(a.bytes_for(9), 16);
    /// ```
    pub fn bytes_for(self, size: usize) -> usize {
        let a = self.bytes();
        if a == 16 && size <= 8 {
            8
        } else {
            a
        }
    }

    /// The alignment in bytes.
    ///
    /// ```
    /// assert_eq!(memward_model::Align { bucket: 7, log2: 3 }.bytes(), 8);
    /// ```
    pub fn bytes(self) -> usize {
        let l = u32::from(self.log2);
        match self.bucket % 10 {
            0..=6 => 16,
            7 => 1 << (l % 7),
            8 => 1 << (7 + l % 6),
            _ => 1 << (13 + l % 9),
        }
    }
}

/// One step of a model run. Threads are numbered modulo the run's thread count, blocks
/// modulo the number the thread holds (an action on a thread holding none does nothing).
///
/// ```
/// use memward_model::{Action, Size, Align};
/// let a = Action::Alloc { thread: 0, size: Size::exactly(8), align: Align { bucket: 0, log2: 0 }, zeroed: true };
/// assert!(format!("{a:?}").starts_with("Alloc"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Action {
    /// `thread` allocates a block (`calloc` when `zeroed` and the alignment is at most 16,
    /// `malloc` or `aligned_alloc` otherwise).
    Alloc {
        /// Which thread.
        thread: u8,
        /// How big.
        size: Size,
        /// How aligned.
        align: Align,
        /// Through `calloc`.
        zeroed: bool,
    },
    /// `thread` reallocates one of its blocks (which may have come from another thread).
    Realloc {
        /// Which thread.
        thread: u8,
        /// Which of its blocks.
        block: u16,
        /// The new size.
        size: Size,
    },
    /// `thread` frees one of its blocks.
    Free {
        /// Which thread.
        thread: u8,
        /// Which of its blocks.
        block: u16,
    },
    /// `from` hands one of its blocks to `to`, which checks its contents; from then on `to`
    /// reallocates or frees it (a cross-thread free when `from` allocated it).
    Transfer {
        /// The giving thread.
        from: u8,
        /// The receiving thread.
        to: u8,
        /// Which of the giver's blocks.
        block: u16,
    },
    /// `thread` exits, its heap abandoned with its blocks still live, and a new thread takes
    /// its place and its blocks.
    Restart {
        /// Which thread.
        thread: u8,
    },
    /// `thread` checks its heap's invariants (`memward::check_thread_heap`) and the edges
    /// of every block it holds.
    Check {
        /// Which thread.
        thread: u8,
    },
}

/// How often each kind of action comes up in [`random_actions`], in parts of the sum.
///
/// ```
/// let m = memward_model::Mix::default();
/// assert_eq!(m.transfer, 0, "the default is the single-thread model");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Mix {
    /// Allocations.
    pub alloc: u32,
    /// Reallocations.
    pub realloc: u32,
    /// Frees.
    pub free: u32,
    /// Transfers to another thread.
    pub transfer: u32,
    /// Thread restarts.
    pub restart: u32,
}

impl Default for Mix {
    /// The single-thread model: 5 allocations to 2 reallocations to 3 frees.
    fn default() -> Mix {
        Mix {
            alloc: 5,
            realloc: 2,
            free: 3,
            transfer: 0,
            restart: 0,
        }
    }
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn byte(&mut self) -> u8 {
        (self.next() >> 56) as u8
    }
}

/// `steps` random actions over `threads` threads in the proportions of `mix`, with a
/// `Check` of every thread each 997 steps. The same seed gives the same list.
///
/// ```
/// use memward_model::{random_actions, Mix};
/// let a = random_actions(1, 100, 2, Mix::default());
/// assert_eq!(a, random_actions(1, 100, 2, Mix::default()));
/// assert!(a.len() >= 100);
/// ```
pub fn random_actions(seed: u64, steps: usize, threads: u8, mix: Mix) -> Vec<Action> {
    assert!(threads > 0);
    let mut rng = Rng(seed | 1);
    let total = u64::from(mix.alloc + mix.realloc + mix.free + mix.transfer + mix.restart);
    assert!(total > 0, "an empty mix");
    let mut out = Vec::with_capacity(steps + steps / 997 * usize::from(threads) + 1);
    for step in 0..steps {
        let thread = rng.below(u64::from(threads)) as u8;
        let block = rng.next() as u16;
        let mut pick = rng.below(total) as u32;
        let mut take = |parts: u32| {
            let hit = pick < parts;
            pick = pick.wrapping_sub(parts);
            hit
        };
        let size = Size {
            bucket: rng.below(100) as u8,
            value: rng.next() as u32,
        };
        out.push(if take(mix.alloc) {
            Action::Alloc {
                thread,
                size,
                align: Align {
                    bucket: rng.byte(),
                    log2: rng.byte(),
                },
                zeroed: rng.below(4) == 0,
            }
        } else if take(mix.realloc) {
            Action::Realloc {
                thread,
                block,
                size,
            }
        } else if take(mix.free) {
            Action::Free { thread, block }
        } else if take(mix.transfer) {
            Action::Transfer {
                from: thread,
                to: rng.below(u64::from(threads)) as u8,
                block,
            }
        } else {
            Action::Restart { thread }
        });
        if step % 997 == 0 {
            out.extend((0..threads).map(|thread| Action::Check { thread }));
        }
    }
    out
}
