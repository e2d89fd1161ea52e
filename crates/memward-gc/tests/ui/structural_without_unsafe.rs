// A hand-written Trace is safe, but claiming it is structural (so that the collector
// counts what it reports) is a promise the collector relies on: it takes `unsafe`.
use memward_gc::{Structural, Trace, Tracer};

struct Manual;

impl Trace for Manual {
    const STRUCTURAL: Structural = Structural::assert_structural();
    fn trace(&self, _: &mut Tracer) {}
}

fn main() {}
