#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

// Layers, bottom up: `trace` (the trait and the tracer), `std_impls` (Trace for std
// types), then the two heaps, each a private unsafe core (`gc_box`, the collector) under
// the safe handles.
mod std_impls;
mod trace;

pub mod sync;
mod unsync;

pub use memward_gc_derive::Trace;
#[doc(hidden)]
pub use trace::Structural;
pub use trace::{Trace, Tracer};
pub use unsync::{collect, trim, Gc, Weak};
