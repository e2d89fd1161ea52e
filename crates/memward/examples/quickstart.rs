use allocator_api2::vec::Vec as HeapVec;
use memward::{Heap, Memward};

// Every allocation of the program (Box, Vec, String, ...) now goes to memward.
#[global_allocator]
static GLOBAL: Memward = Memward;

fn main() {
    let squares: Vec<u64> = (0..1000).map(|i| i * i).collect();

    // A first-class heap: collections allocate from it through `allocator_api2`, and
    // dropping it frees whatever it still holds at once, like an arena.
    let heap = Heap::new();
    let mut scratch = HeapVec::new_in(&heap);
    scratch.extend(squares.iter().map(|s| s.to_string()));
    println!("{} bytes in use on the heap", heap.in_use_bytes());
    drop(scratch);
    drop(heap);

    let stats = memward::stats();
    println!("{} allocations so far", stats.allocations);
}
