// Which field of a union holds a value is unknown: no derive.
use memward_gc::Trace;

#[derive(Trace)]
union Either {
    a: u32,
    b: f32,
}

fn main() {}
