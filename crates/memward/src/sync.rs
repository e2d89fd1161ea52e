//! The atomics of the lock-free lists, behind one name so that `--cfg loom` swaps in loom's
//! model-checked atomics (see `tests/loom.rs`). Everything else uses `core`'s atomics
//! directly: under loom only the protocol modules are compiled (`lib.rs`).

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

#[cfg(not(loom))]
pub use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
