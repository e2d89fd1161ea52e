//! The Rust workloads with mimalloc (the `mimalloc` crate) as the global allocator.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    memward_bench::main();
}
