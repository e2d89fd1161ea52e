//! Replaying a profile's events into the heap they describe.
//!
//! The profile is a log; every analysis needs the heap it implies at each point: which
//! blocks are live, from which stack, since when. [`Replay`] keeps exactly that (a hash map
//! from address to block, about 40 bytes per live block) and nothing per event, so memory
//! follows the live heap, not the length of the run. Each analysis is an [`Observer`]
//! called after every change with the new totals; a second pass (massif's snapshots) is
//! a second replay with another observer, cheaper than keeping history.
//!
//! Rules from the format (docs/profile-format.md): a realloc is a free of `old` then an
//! allocation at `new`; frees of unknown pointers are ignored (counted). When an alloc
//! names an address that is still live, the block there was really freed by a realloc
//! whose record comes later (the recorder's only race): the old block is freed now and
//! the later realloc's free of that address is skipped.
//!
//! Sampled profiles: each recorded block stands for `sample_weight(size, rate)` blocks.
//! Figures stay integers so that unsampled profiles are exact; a sampled block's weighted
//! count and bytes are rounded up or down at random with the fractional part as the
//! probability, which keeps every sum unbiased. The block remembers what it added, so its
//! free removes exactly that.

use memward_profile_format::{
    sample_weight, End, Module, ModuleMap, Record, StackTable, TimeSample,
};
use rustc_hash::{FxHashMap, FxHashSet};

/// A record as the replay takes it: the three events inline, anything else boxed.
#[derive(Debug)]
pub(crate) enum Event {
    Alloc {
        ptr: u64,
        size: u64,
        stack: u32,
    },
    Free {
        ptr: u64,
    },
    Realloc {
        old: u64,
        new: u64,
        size: u64,
        stack: u32,
    },
    Other(Box<Record>),
}

impl From<Record> for Event {
    fn from(r: Record) -> Self {
        match r {
            Record::Alloc {
                ptr, size, stack, ..
            } => Event::Alloc { ptr, size, stack },
            Record::Free { ptr, .. } => Event::Free { ptr },
            Record::Realloc {
                old,
                new,
                size,
                stack,
                ..
            } => Event::Realloc {
                old,
                new,
                size,
                stack,
            },
            other => Event::Other(Box::new(other)),
        }
    }
}

/// A live block as the replay remembers it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Block {
    /// Bytes it counts for (its size, or the weighted estimate when sampled).
    pub bytes: u64,
    /// When it was allocated (the time of the last time record before it).
    pub nanos: u64,
    /// Its allocation stack.
    pub stack: u32,
    /// Blocks it counts for (1, or the weighted estimate when sampled; a weight is below
    /// 2^32 for any sampling rate under 4 GiB).
    pub blocks: u32,
}

/// Callbacks of a replay; each is called after the heap totals were updated.
pub(crate) trait Observer {
    /// A block was allocated (`size` requested bytes, counting as `block`).
    fn alloc(&mut self, heap: &Heap, block: &Block, size: u64);
    /// A block was freed; `temporary` if no allocation happened since its own.
    fn free(&mut self, heap: &Heap, block: &Block, temporary: bool);
    /// A periodic memory sample.
    fn time(&mut self, _heap: &Heap, _sample: &TimeSample) {}
}

/// The heap's running totals, visible to observers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Heap {
    /// Bytes in live blocks.
    pub bytes: u64,
    /// Live blocks.
    pub blocks: u64,
    /// Allocation events so far (allocs and reallocs).
    pub allocations: u64,
    /// Bytes allocated plus bytes freed so far (massif's `B` time unit).
    pub churn: u64,
    /// The latest time record's nanoseconds.
    pub nanos: u64,
}

/// The replay state of one profile.
pub(crate) struct Replay {
    pub heap: Heap,
    live: FxHashMap<u64, Block>,
    /// Addresses whose block an alloc displaced before the realloc moving it was recorded.
    displaced: FxHashSet<u64>,
    /// The latest allocation's address, until that block is freed or another is allocated.
    last_alloc: Option<u64>,
    sample_rate: u64,
    rng: u64,
    pub stacks: StackTable,
    pub modules: ModuleMap,
    pub threads: Vec<(u32, String)>,
    /// Frees (and realloc frees) of addresses no recorded allocation returned.
    pub unknown_frees: u64,
    /// Free events (frees and the free half of reallocs) that matched a block.
    pub frees: u64,
    /// Reallocs.
    pub reallocs: u64,
    /// The latest memory sample.
    pub last_sample: Option<TimeSample>,
    pub end: Option<End>,
    /// A stack node that did not fit the trie (the stack stays unknown).
    pub bad_nodes: u64,
}

impl Replay {
    pub(crate) fn new(sample_rate: u64) -> Self {
        Replay {
            heap: Heap::default(),
            live: FxHashMap::default(),
            displaced: FxHashSet::default(),
            last_alloc: None,
            sample_rate,
            rng: 0x9e37_79b9_7f4a_7c15,
            stacks: StackTable::default(),
            modules: ModuleMap::default(),
            threads: Vec::new(),
            unknown_frees: 0,
            frees: 0,
            reallocs: 0,
            last_sample: None,
            end: None,
            bad_nodes: 0,
        }
    }

    /// The live blocks (after the last record: the leaks).
    pub(crate) fn live(&self) -> impl Iterator<Item = &Block> {
        self.live.values()
    }

    pub(crate) fn modules(&self) -> Vec<Module> {
        self.modules.modules().to_vec()
    }

    pub(crate) fn apply<O: Observer>(&mut self, event: Event, obs: &mut O) {
        match event {
            Event::Alloc { ptr, size, stack } => self.alloc(ptr, size, stack, obs),
            Event::Free { ptr } => {
                if !self.displaced.is_empty() {
                    self.displaced.remove(&ptr);
                }
                self.free(ptr, obs);
            }
            Event::Realloc {
                old,
                new,
                size,
                stack,
            } => {
                self.reallocs += 1;
                if self.displaced.is_empty() || !self.displaced.remove(&old) {
                    self.free(old, obs);
                }
                self.alloc(new, size, stack, obs);
            }
            Event::Other(record) => self.apply_other(*record, obs),
        }
    }

    fn apply_other<O: Observer>(&mut self, record: Record, obs: &mut O) {
        match record {
            Record::Alloc {
                ptr, size, stack, ..
            } => self.alloc(ptr, size, stack, obs),
            Record::Free { ptr, .. } => self.apply(Event::Free { ptr }, obs),
            Record::Realloc {
                old,
                new,
                size,
                stack,
                ..
            } => self.apply(
                Event::Realloc {
                    old,
                    new,
                    size,
                    stack,
                },
                obs,
            ),
            Record::Time(sample) => {
                self.heap.nanos = self.heap.nanos.max(sample.nanos);
                obs.time(&self.heap, &sample);
                self.last_sample = Some(sample);
            }
            Record::StackNode(node) => {
                if self.stacks.insert(node).is_err() {
                    self.bad_nodes += 1;
                }
            }
            Record::Module(m) => self.modules.insert(m),
            Record::ThreadName { tid, name } => {
                let name = String::from_utf8_lossy(&name).into_owned();
                match self.threads.iter_mut().find(|t| t.0 == tid) {
                    Some(t) => t.1 = name,
                    None => self.threads.push((tid, name)),
                }
            }
            Record::End(end) => {
                self.heap.nanos = self.heap.nanos.max(end.nanos);
                self.end = Some(end);
            }
        }
    }

    fn alloc<O: Observer>(&mut self, ptr: u64, size: u64, stack: u32, obs: &mut O) {
        let (bytes, blocks) = self.weigh(size);
        let block = Block {
            bytes,
            blocks: u32::try_from(blocks).unwrap_or(u32::MAX),
            stack,
            nanos: self.heap.nanos,
        };
        // One hash lookup: the insert returns a block still live at this address.
        if let Some(old) = self.live.insert(ptr, block) {
            // A realloc moved that block away and its record is still to come.
            self.release(ptr, old, obs);
            self.displaced.insert(ptr);
        }
        self.last_alloc = Some(ptr);
        let h = &mut self.heap;
        h.bytes += bytes;
        h.blocks += u64::from(block.blocks);
        h.allocations += 1;
        h.churn += bytes;
        obs.alloc(&self.heap, &block, size);
    }

    fn free<O: Observer>(&mut self, ptr: u64, obs: &mut O) {
        match self.live.remove(&ptr) {
            Some(block) => self.release(ptr, block, obs),
            None => self.unknown_frees += 1,
        }
    }

    /// Accounts for the free of `block`, which was at `ptr`.
    fn release<O: Observer>(&mut self, ptr: u64, block: Block, obs: &mut O) {
        self.frees += 1;
        let temporary = self.last_alloc == Some(ptr);
        if temporary {
            self.last_alloc = None;
        }
        let h = &mut self.heap;
        h.bytes -= block.bytes;
        h.blocks -= u64::from(block.blocks);
        h.churn += block.bytes;
        obs.free(&self.heap, &block, temporary);
    }

    /// What a recorded block of `size` bytes counts for: itself, or its sampling weight
    /// rounded at random (unbiased).
    fn weigh(&mut self, size: u64) -> (u64, u64) {
        if self.sample_rate == 0 {
            return (size, 1);
        }
        let w = sample_weight(size, self.sample_rate);
        let blocks = self.round_randomly(w);
        let bytes = self.round_randomly(w * size as f64);
        (bytes, blocks)
    }

    /// `floor(x)` or `floor(x) + 1`, the latter with probability `frac(x)`.
    fn round_randomly(&mut self, x: f64) -> u64 {
        // splitmix64: a few lines, reproducible, and statistically sound for this.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let u = (z >> 11) as f64 / (1u64 << 53) as f64;
        let floor = x.floor();
        floor as u64 + u64::from(u < x - floor)
    }
}
