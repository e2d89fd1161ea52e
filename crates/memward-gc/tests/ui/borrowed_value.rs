// Collection may run a destructor late: values must not borrow anything ('static).
use memward_gc::Gc;

fn main() {
    let local = String::from("short-lived");
    let _ = Gc::new(&local[..]);
}
