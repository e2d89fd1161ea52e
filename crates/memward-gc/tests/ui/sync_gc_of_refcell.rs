// sync::Gc needs Send + Sync contents: a RefCell would be shared unsynchronised.
use memward_gc::sync;
use std::cell::RefCell;

fn main() {
    let _ = sync::Gc::new(RefCell::new(1u32));
}
