//! Integration tests of memward-gc (one binary): the randomised model, destructors,
//! destructors that reach dead cycle members, threads sharing sync cycles, the API.
mod api;
mod destructors;
mod misbehaving;
mod model;
mod support;
mod sync_threads;

#[global_allocator]
static ALLOC: support::Counting = support::Counting;
