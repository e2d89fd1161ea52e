#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod action;
pub mod block;
pub mod lockstep;
pub mod stress;

pub use action::{random_actions, Action, Align, Mix, Size};
pub use block::Block;
