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

pub use recorder::{
    configure_from_env, finish, on_alloc, on_free, on_realloc, set_heap_bytes_source,
};
pub use stats::{counts as heap_counts, enable as enable_heap_counts, HeapCounts};
