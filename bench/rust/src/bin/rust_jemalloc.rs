//! The Rust workloads with jemalloc (the `tikv-jemallocator` crate) as the global allocator.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    memward_bench::main();
}
