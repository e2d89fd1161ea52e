//! The stack depot: every distinct stack stored once, named by the 32-bit id a block's
//! header holds, so a million blocks allocated from one place share one stack (as
//! AddressSanitizer's StackDepot does).
//!
//! Stacks are found by a hash of their frames in an open-addressing table whose slots
//! hold the hash's upper half and the stack's id. Finding a stack takes no lock: a slot,
//! the stack's entry (where its frames lie in the frame arena) and its frames are all
//! written before the slot is published (release) and read after it is (acquire), and
//! nothing is ever removed. Adding a stack happens under the caller's lock, one thread at
//! a time; it is rare once a program's allocation sites have been seen.
//!
//! The three tables are reserved once (`MAP_NORESERVE`: only what is used costs memory).
//! When one is full new stacks get id 0, "no stack", and reports print none for them.

use memward_profile::shared::Region;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Table slots; at most three quarters of them are used, so probes stay short.
const SLOTS: usize = 1 << 20;
const MAX_STACKS: usize = SLOTS / 4 * 3;
/// Frames stored, all stacks together: room for `MAX_STACKS` stacks of `MAX_FRAMES`
/// (512 MiB reserved).
const ARENA_FRAMES: usize = 1 << 26;
const _: () = assert!(MAX_STACKS * memward_profile::shared::MAX_FRAMES <= ARENA_FRAMES);

/// The depot's tables.
pub struct Depot {
    /// `tag << 32 | id` (0: empty), at `hash % SLOTS` or the next free slot after it.
    slots: &'static [AtomicU64],
    /// Per id: `len << 32 | offset` of its frames in `arena`.
    entries: &'static [AtomicU64],
    arena: &'static [AtomicU64],
    /// Written only by the thread adding a stack (under the caller's lock).
    stacks: AtomicU32,
    used: AtomicUsize,
    ranges: [(usize, usize); 3],
}

/// A reserved mapping of `n` zeroed words that lives for the rest of the process.
fn words(n: usize) -> Option<(&'static [AtomicU64], (usize, usize))> {
    let r = Region::map(n * 8)?;
    let range = r.range();
    let bytes = r.leak();
    // SAFETY: the mapping is page-aligned and holds `n` words; zero bytes are valid
    // `AtomicU64`s; it is never unmapped and is accessed only through these atomics.
    let w = unsafe { core::slice::from_raw_parts(bytes.as_ptr().cast::<AtomicU64>(), n) };
    Some((w, range))
}

/// The hash of a stack (its frames, innermost first).
pub fn hash(frames: &[u64]) -> u64 {
    let mut h = frames.len() as u64;
    for &f in frames {
        h = (h ^ f).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(31);
    }
    h ^ h >> 29
}

impl Depot {
    /// Reserves the tables; `None` if the system refuses the mappings.
    pub fn new() -> Option<Depot> {
        let (slots, a) = words(SLOTS)?;
        let (entries, b) = words(MAX_STACKS + 1)?;
        let (arena, c) = words(ARENA_FRAMES)?;
        Some(Depot {
            slots,
            entries,
            arena,
            stacks: AtomicU32::new(0),
            used: AtomicUsize::new(0),
            ranges: [a, b, c],
        })
    }

    /// The id of `frames` (with `h == hash(frames)`), if it is stored. Takes no lock.
    pub fn find(&self, frames: &[u64], h: u64) -> Option<u32> {
        let tag = h >> 32;
        let mut i = h as usize % SLOTS;
        loop {
            let s = self.slots[i].load(Ordering::Acquire);
            if s == 0 {
                return None;
            }
            if s >> 32 == tag && self.equals(s as u32, frames) {
                return Some(s as u32);
            }
            i = (i + 1) % SLOTS;
        }
    }

    /// Stores `frames` (with `h == hash(frames)`) unless it is there, and returns its id;
    /// 0 when the depot is full or `frames` is empty. The caller holds the lock that
    /// serialises additions.
    pub fn add(&self, frames: &[u64], h: u64) -> u32 {
        if frames.is_empty() {
            return 0;
        }
        if let Some(id) = self.find(frames, h) {
            return id;
        }
        let id = self.stacks.load(Ordering::Relaxed) as usize + 1;
        let offset = self.used.load(Ordering::Relaxed);
        if id > MAX_STACKS || offset + frames.len() > ARENA_FRAMES {
            return 0;
        }
        for (slot, &f) in self.arena[offset..offset + frames.len()].iter().zip(frames) {
            slot.store(f, Ordering::Relaxed);
        }
        self.entries[id].store(
            (frames.len() as u64) << 32 | offset as u64,
            Ordering::Relaxed,
        );
        self.used.store(offset + frames.len(), Ordering::Relaxed);
        self.stacks.store(id as u32, Ordering::Relaxed);
        let mut i = h as usize % SLOTS;
        while self.slots[i].load(Ordering::Relaxed) != 0 {
            i = (i + 1) % SLOTS;
        }
        // Publishes the entry and the frames written above.
        self.slots[i].store((h >> 32) << 32 | id as u64, Ordering::Release);
        id as u32
    }

    fn stored(&self, id: u32) -> &'static [AtomicU64] {
        let e = self
            .entries
            .get(id as usize)
            .map_or(0, |e| e.load(Ordering::Relaxed));
        let (offset, len) = ((e & 0xffff_ffff) as usize, (e >> 32) as usize);
        &self.arena[offset..offset + len]
    }

    fn equals(&self, id: u32, frames: &[u64]) -> bool {
        let stored = self.stored(id);
        stored.len() == frames.len()
            && stored
                .iter()
                .zip(frames)
                .all(|(s, &f)| s.load(Ordering::Relaxed) == f)
    }

    /// The frames of stack `id`, innermost first (none for 0 or an unknown id).
    pub fn frames(&self, id: u32) -> Vec<u64> {
        if id == 0 || id > self.stacks.load(Ordering::Acquire) {
            return Vec::new();
        }
        self.stored(id)
            .iter()
            .map(|f| f.load(Ordering::Relaxed))
            .collect()
    }

    /// The depot's mappings (start, end).
    pub fn mappings(&self) -> [(usize, usize); 3] {
        self.ranges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_is_stored_once_and_read_back() {
        let d = Depot::new().unwrap();
        let a = [0x1000u64, 0x2000, 0x3000];
        let b = [0x1000u64, 0x2000];
        assert_eq!(d.find(&a, hash(&a)), None);
        let ia = d.add(&a, hash(&a));
        let ib = d.add(&b, hash(&b));
        assert!(ia != 0 && ib != 0 && ia != ib);
        assert_eq!(d.add(&a, hash(&a)), ia);
        assert_eq!(d.find(&b, hash(&b)), Some(ib));
        assert_eq!(d.frames(ia), a);
        assert_eq!(d.frames(ib), b);
        assert_eq!(d.frames(0), Vec::<u64>::new());
        assert_eq!(d.frames(ib + 1), Vec::<u64>::new());
        assert_eq!(d.add(&[], hash(&[])), 0);
    }

    #[test]
    fn stacks_whose_hashes_collide_stay_apart() {
        let d = Depot::new().unwrap();
        // The same hash given for different stacks: found by comparing frames.
        let (a, b) = ([1u64, 2], [3u64, 4, 5]);
        let ia = d.add(&a, 42);
        let ib = d.add(&b, 42);
        assert_ne!(ia, ib);
        assert_eq!(d.find(&a, 42), Some(ia));
        assert_eq!(d.find(&b, 42), Some(ib));
        assert_eq!(d.find(&[9], 42), None);
    }

    #[test]
    fn threads_find_what_others_added() {
        let d = std::sync::Arc::new(Depot::new().unwrap());
        let lock = std::sync::Arc::new(std::sync::Mutex::new(()));
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let (d, lock) = (d.clone(), lock.clone());
                std::thread::spawn(move || {
                    for i in 0..2000u64 {
                        let s = [i % 500 + 1, t % 2 + 10, 7];
                        let h = hash(&s);
                        let id = match d.find(&s, h) {
                            Some(id) => id,
                            None => {
                                let _g = lock.lock().unwrap();
                                d.add(&s, h)
                            }
                        };
                        assert_eq!(d.frames(id), s);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        // 500 sites times 2 second frames, each stored once.
        assert_eq!(d.stacks.load(Ordering::Relaxed), 1000);
    }
}
