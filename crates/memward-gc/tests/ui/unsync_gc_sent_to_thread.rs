// A thread-local Gc has non-atomic counts: it must not cross threads.
use memward_gc::Gc;

fn main() {
    let gc = Gc::new(1u32);
    std::thread::spawn(move || {
        let _ = *gc;
    });
}
