#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod barrier;
mod collector;
mod guard;
mod record;
pub mod structures;
mod sync;
#[cfg(not(loom))]
mod thread_index;

pub use barrier::is_expedited;
pub use collector::{Collector, Stats, DEFAULT_BATCH_SIZE};
pub use guard::Guard;
