//! `HeapStats` (with the `profile` feature): exact heap figures for assertions in tests,
//! as dhat-rs's `HeapStats` offers them, counted by the profiler's hooks in requested
//! bytes. `HeapStats::start` installs the hooks (`hooks::install`: this thread switches at
//! once, others at their next slow paths) and zeroes the counters; blocks allocated before
//! are not counted, nor are their frees. With the hooks on, every allocation takes the
//! slow path and one uncontended lock: fine for tests, not for production.

/// Blocks and requested bytes: in all, live now, and live at the largest live total.
///
/// ```
/// memward::HeapStats::start();
/// let p = memward::raw::malloc(1000);
/// let s = memward::HeapStats::get();
/// assert!(s.total_bytes >= 1000 && s.curr_blocks >= 1);
/// // SAFETY: `p` came from memward's malloc and is freed once.
/// unsafe { memward::raw::free(p) };
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Blocks allocated since `start` (a resize counts as one).
    pub total_blocks: u64,
    /// Bytes requested by those allocations.
    pub total_bytes: u64,
    /// Blocks live now.
    pub curr_blocks: u64,
    /// Requested bytes live now.
    pub curr_bytes: u64,
    /// Blocks live when `curr_bytes` was largest.
    pub max_blocks: u64,
    /// The largest `curr_bytes` since `start`.
    pub max_bytes: u64,
}

impl HeapStats {
    /// Starts counting from zero (again, if already counting). Returns false if the
    /// counters' table cannot be mapped.
    ///
    /// ```
    /// assert!(memward::HeapStats::start());
    /// ```
    pub fn start() -> bool {
        if !memward_profile::enable_heap_counts() {
            return false;
        }
        // The counters need every event: the hooks report them all from now on, and a
        // sampled profile running in this process samples in its hooks instead of in the
        // engine (blocks it sampled before stay live in its profile).
        memward_profile::set_engine_sampling(false);
        crate::hooks::install(&crate::profile_env::HOOKS);
        true
    }

    /// The figures now (all zero before `start`).
    ///
    /// ```
    /// let s = memward::HeapStats::get();
    /// assert!(s.max_bytes >= s.curr_bytes);
    /// ```
    pub fn get() -> HeapStats {
        let c = memward_profile::heap_counts();
        HeapStats {
            total_blocks: c.total_blocks,
            total_bytes: c.total_bytes,
            curr_blocks: c.curr_blocks,
            curr_bytes: c.curr_bytes,
            max_blocks: c.max_blocks,
            max_bytes: c.max_bytes,
        }
    }
}
