// A thread-local Weak must not cross threads either.
use memward_gc::Gc;

fn main() {
    let gc = Gc::new(1u32);
    let weak = Gc::downgrade(&gc);
    std::thread::spawn(move || {
        let _ = weak.upgrade();
    });
}
