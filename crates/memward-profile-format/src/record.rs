//! The records of a profile, as the reader returns them and the writer takes them.
//!
//! These are plain owned values (strings and vectors): the reader runs in the report
//! process, where allocating is fine. The writer never needs them: it takes the fields as
//! arguments and borrows strings, so the recorder inside `malloc` builds none of these.

/// The first record of every profile: which process, when, and how it was sampled.
///
/// ```
/// let h = memward_profile_format::Header { pid: 7, ..Default::default() };
/// assert_eq!(h.sample_rate, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// The profiled process.
    pub pid: u32,
    /// Its parent when recording started (for a forked child: the process it was forked
    /// from, whose profile holds the history before the fork).
    pub ppid: u32,
    /// Wall-clock start of the recording, nanoseconds since the Unix epoch. All other
    /// times in the file are nanoseconds since this moment (monotonic clock).
    pub start_unix_nanos: u64,
    /// Mean bytes between samples with Poisson sampling by bytes; 0 when every allocation
    /// is recorded. See [`sample_weight`](crate::sample_weight).
    pub sample_rate: u64,
    /// The executable (`/proc/self/exe`), as bytes (paths need not be UTF-8).
    pub exe: Vec<u8>,
    /// The command line (`/proc/self/cmdline`), one entry per argument.
    pub args: Vec<Vec<u8>>,
}

/// One loaded ELF object (the executable, a shared library, the vDSO): where it lies, so
/// return addresses can be symbolised after the process is gone.
///
/// ```
/// use memward_profile_format::{Module, Segment};
/// let m = Module {
///     id: 1,
///     path: b"/usr/lib/libc.so.6".to_vec(),
///     build_id: vec![0xab, 0xcd],
///     bias: 0x7f00_0000_0000,
///     segments: vec![Segment { start: 0x7f00_0000_1000, len: 0x1000, file_offset: 0x1000, flags: Segment::EXEC }],
/// };
/// assert_eq!(m.segment_of(0x7f00_0000_1800).map(|s| s.file_offset), Some(0x1000));
/// assert_eq!(m.relative(0x7f00_0000_1800), 0x1800);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Module {
    /// Distinct per module within a file, in the order modules were seen (from 1).
    pub id: u32,
    /// The object's path as the loader reported it (empty for the main program in some
    /// loaders: the writer substitutes the executable's path).
    pub path: Vec<u8>,
    /// The GNU build id (`NT_GNU_BUILD_ID` note), empty if the object has none.
    pub build_id: Vec<u8>,
    /// Load bias: run-time address minus the address in the ELF file (`dlpi_addr`).
    pub bias: u64,
    /// The object's `PT_LOAD` segments at their run-time addresses.
    pub segments: Vec<Segment>,
}

impl Module {
    /// The segment holding run-time address `addr`, if any.
    ///
    /// ```
    /// # use memward_profile_format::Module;
    /// assert!(Module::default().segment_of(1).is_none());
    /// ```
    pub fn segment_of(&self, addr: u64) -> Option<&Segment> {
        self.segments.iter().find(|s| s.contains(addr))
    }

    /// `addr` as an address in the ELF file (what `addr2line -e PATH` takes).
    ///
    /// ```
    /// # use memward_profile_format::Module;
    /// let m = Module { bias: 0x1000, ..Default::default() };
    /// assert_eq!(m.relative(0x1234), 0x234);
    /// ```
    pub fn relative(&self, addr: u64) -> u64 {
        addr.wrapping_sub(self.bias)
    }
}

/// A `PT_LOAD` segment of a [`Module`] at its run-time address.
///
/// ```
/// use memward_profile_format::Segment;
/// let s = Segment { start: 100, len: 10, file_offset: 0, flags: Segment::READ };
/// assert!(s.contains(109) && !s.contains(110));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Segment {
    /// Run-time start address (`bias + p_vaddr`).
    pub start: u64,
    /// Length in memory (`p_memsz`).
    pub len: u64,
    /// Offset in the file (`p_offset`), for pprof's mappings.
    pub file_offset: u64,
    /// [`Segment::READ`], [`Segment::WRITE`], [`Segment::EXEC`] as ORed bits.
    pub flags: u32,
}

impl Segment {
    /// Readable (`PF_R`).
    pub const READ: u32 = 4;
    /// Writable (`PF_W`).
    pub const WRITE: u32 = 2;
    /// Executable (`PF_X`): return addresses lie in such segments.
    pub const EXEC: u32 = 1;

    /// Whether `addr` lies in the segment.
    ///
    /// ```
    /// # use memward_profile_format::Segment;
    /// assert!(!Segment::default().contains(0));
    /// ```
    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.start && addr - self.start < self.len
    }
}

/// A node of the stack trie: the frame `address` called from the stack `parent`.
///
/// A stack id names a node; its frames are the node's address, then its parent's, and so
/// on up to the root (id 0, the empty stack). Each distinct (parent, address) pair is
/// written once, so a stack costs one id per event however deep it is.
///
/// ```
/// let n = memward_profile_format::StackNode { id: 1, parent: 0, address: 0x401000 };
/// assert_eq!(n.parent, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StackNode {
    /// This node's id (from 1).
    pub id: u32,
    /// The caller's node (0: this is the outermost frame).
    pub parent: u32,
    /// A return address (or, for the innermost frame, the allocation call's return
    /// address in the caller of `malloc`); subtract 1 to symbolise the call instruction.
    pub address: u64,
}

/// A periodic sample of the process's memory, written about every 10 ms while it runs.
///
/// ```
/// let t = memward_profile_format::TimeSample { nanos: 10_000_000, heap_bytes: 4096, rss_bytes: 1 << 20 };
/// assert!(t.rss_bytes > t.heap_bytes);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeSample {
    /// Nanoseconds since the header's start (monotonic, never decreasing in a file).
    pub nanos: u64,
    /// Bytes the allocator had in use at that moment, as the allocator counts them
    /// (block sizes, which round requests up); the exact requested bytes follow from the
    /// events.
    pub heap_bytes: u64,
    /// Resident set size of the process, in bytes.
    pub rss_bytes: u64,
}

/// The end marker: the process finished recording normally (exit, or a final flush).
/// A file without one was cut short (`_exit` before the flush, a signal, a full disk).
///
/// ```
/// let e = memward_profile_format::End { nanos: 5, allocs: 2, frees: 1 };
/// assert!(e.allocs >= e.frees);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct End {
    /// Nanoseconds since the header's start.
    pub nanos: u64,
    /// Allocation events written to this file (allocs and reallocs).
    pub allocs: u64,
    /// Free events written to this file.
    pub frees: u64,
}

/// One record after the header, as [`Reader::next_record`](crate::Reader::next_record)
/// returns it. Event records carry the thread that did the operation.
///
/// ```
/// use memward_profile_format::Record;
/// let r = Record::Free { thread: 1, ptr: 0x1000 };
/// assert!(matches!(r, Record::Free { .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A module was seen (at start, or after a `dlopen`).
    Module(Module),
    /// A new node of the stack trie.
    StackNode(StackNode),
    /// A thread's kernel id and name (as `/proc/self/task/TID/comm`).
    ThreadName {
        /// Kernel thread id.
        tid: u32,
        /// The name, as bytes.
        name: Vec<u8>,
    },
    /// `size` requested bytes were allocated at `ptr` from the stack `stack`.
    Alloc {
        /// Kernel id of the allocating thread.
        thread: u32,
        /// The block's address.
        ptr: u64,
        /// Requested bytes.
        size: u64,
        /// Stack id (a [`StackNode`] id; 0 when no frame could be captured).
        stack: u32,
    },
    /// The block at `ptr` is being freed. A pointer the file never allocated (a block from
    /// before recording started, or one not sampled) is to be ignored.
    Free {
        /// Kernel id of the freeing thread.
        thread: u32,
        /// The block's address.
        ptr: u64,
    },
    /// The block at `old` was resized to `size` bytes and now lies at `new` (possibly
    /// equal): a free of `old` and an allocation at `new` from `stack`.
    Realloc {
        /// Kernel id of the thread.
        thread: u32,
        /// The old address.
        old: u64,
        /// The new address.
        new: u64,
        /// Requested bytes of the new block.
        size: u64,
        /// Stack id of the realloc call.
        stack: u32,
    },
    /// A periodic memory sample.
    Time(TimeSample),
    /// The end marker; nothing follows it.
    End(End),
}

/// The unbiased weight of an allocation of `size` bytes recorded under Poisson sampling
/// with mean `rate` bytes between samples: each sampled allocation stands for
/// `1 / (1 - exp(-size / rate))` allocations of its size. A `rate` of 0 (every allocation
/// recorded) gives 1.
///
/// ```
/// use memward_profile_format::sample_weight;
/// assert_eq!(sample_weight(100, 0), 1.0);
/// assert!((sample_weight(1 << 30, 512 * 1024) - 1.0).abs() < 1e-9);
/// assert!((sample_weight(8, 512 * 1024) - 65536.5).abs() < 1.0);
/// ```
pub fn sample_weight(size: u64, rate: u64) -> f64 {
    if rate == 0 {
        return 1.0;
    }
    let p = -(-(size.max(1) as f64) / rate as f64).exp_m1();
    1.0 / p
}
