// Only `#[trace(skip)]` is understood.
use memward_gc::Trace;

#[derive(Trace)]
struct Node {
    #[trace(ignore)]
    a: u32,
}

fn main() {}
