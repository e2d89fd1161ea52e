#![doc = include_str!("../README.md")]
#![no_std]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;
#[cfg(test)]
extern crate std;

// Layers, bottom up: chunks, the bump engine, typed allocation, then the public types.
mod bump;
mod chunk;
mod typed;

mod allocator;
mod arena;
mod boxed;
pub mod pool;
mod scope;
#[cfg(feature = "std")]
mod sync;

pub use allocator_api2::alloc::AllocError;
pub use arena::Arena;
pub use boxed::ArenaBox;
pub use pool::{Key, Pool};
pub use scope::ArenaScope;
#[cfg(feature = "std")]
pub use sync::SyncArena;
