#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

mod lock;
mod modules;
mod recorder;
mod rules;
mod sampler;
mod stats;
mod sys;
mod trie;
mod unwind;

/// Stack capture shared with memward-check (the checker captures allocation and free
/// stacks with the same unwinder, module scans, stack trie and lock as the recorder).
///
/// ```
/// use memward_profile::shared::{Scan, Stacks, MAX_FRAMES};
/// let mut scan = Scan::new().unwrap();
/// scan.refresh();
/// let mut stacks = Stacks::new();
/// for m in scan.modules() {
///     stacks.add(m);
/// }
/// let (mut frames, mut ids) = ([0u64; MAX_FRAMES], [0u32; MAX_FRAMES]);
/// let top = memward_profile::shared::stack_top(true);
/// let (n, _) = stacks.capture(&mut frames, &mut ids, top);
/// assert!(n > 0);
/// // Another thread's stack block, from glibc's descriptor of it.
/// std::thread::spawn(|| {
///     let (start, end) = memward_profile::shared::thread_stack().unwrap();
///     let here = &start as *const u64 as u64;
///     assert!(start <= here && here < end);
/// })
/// .join()
/// .unwrap();
/// ```
pub mod shared {
    pub use crate::lock::{single_threaded, Guard, SpinLock};
    pub use crate::modules::{ModuleInfo, Scan};
    pub use crate::sys::Region;
    pub use crate::trie::Trie;
    pub use crate::unwind::{
        generation_in, module_generation, stack_top, thread_cache, thread_pointer, thread_stack,
        Stacks, WalkCache, Walked, Walker, MAX_FRAMES,
    };
}

pub use recorder::{
    configure_from_env, finish, on_alloc, on_free, on_realloc, sample_rate, set_heap_bytes_source,
};
pub use sampler::set_engine_sampling;
pub use stats::{counts as heap_counts, enable as enable_heap_counts, HeapCounts};
