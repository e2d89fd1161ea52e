#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]

pub mod asan;
mod demangle;
mod module;
mod process;
mod symbolizer;

pub use demangle::demangle;
pub use module::{ModuleInfo, Unusable};
pub use process::{parse_maps, process_modules, Mapping};
pub use symbolizer::{Frame, Location, Symbolizer};
