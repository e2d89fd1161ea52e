// Nor may a reference to one (Gc is not Sync).
use memward_gc::Gc;

fn assert_sync<T: Sync>(_: &T) {}

fn main() {
    let gc = Gc::new(1u32);
    assert_sync(&gc);
}
