#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]

mod symbolize;

pub use symbolize::{demangle, Frame, Location, ModuleInfo, Symbolizer, Unusable};
