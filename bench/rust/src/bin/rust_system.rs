//! The Rust workloads with the standard library's `System` allocator (glibc's malloc on
//! Linux) as the global allocator. bench/run also runs this binary under tcmalloc by
//! `LD_PRELOAD`, since `System` calls whatever `malloc` the process has.

#[global_allocator]
static GLOBAL: std::alloc::System = std::alloc::System;

fn main() {
    memward_bench::main();
}
