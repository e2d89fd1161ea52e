// A Gc's contents must be Trace: the collector must be able to enumerate its Gcs.
use memward_gc::Gc;

struct Opaque;

fn main() {
    let _ = Gc::new(Opaque);
}
