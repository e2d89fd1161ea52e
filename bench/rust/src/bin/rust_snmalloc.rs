//! The Rust workloads with snmalloc (the `snmalloc-rs` crate) as the global allocator.

#[global_allocator]
static GLOBAL: snmalloc_rs::SnMalloc = snmalloc_rs::SnMalloc;

fn main() {
    memward_bench::main();
}
