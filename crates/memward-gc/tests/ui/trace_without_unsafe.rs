// A hand-written Trace is a promise the collector relies on: it takes `unsafe impl`.
use memward_gc::{Trace, Tracer};

struct Manual;

impl Trace for Manual {
    fn trace(&self, _: &mut Tracer) {}
}

fn main() {}
