//! The Rust workloads with memward as the global allocator.

#[global_allocator]
static GLOBAL: memward::Memward = memward::Memward;

fn main() {
    memward_bench::main();
}
