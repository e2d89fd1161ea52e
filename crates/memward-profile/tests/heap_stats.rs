//! `memward::HeapStats` in a program whose global allocator is memward: exact blocks and
//! requested bytes, as dhat-rs's assertions use them.

#[global_allocator]
static GLOBAL: memward::Memward = memward::Memward;

#[test]
fn counts_exactly_what_the_program_asked_for() {
    // One test in this binary: the counters are process-wide.
    assert!(memward::HeapStats::start());
    let base = memward::HeapStats::get();
    let a = std::hint::black_box(vec![1u8; 1000]);
    let b = std::hint::black_box(vec![2u64; 100]);
    let s = memward::HeapStats::get();
    assert_eq!(s.total_blocks - base.total_blocks, 2);
    assert_eq!(s.total_bytes - base.total_bytes, 1800);
    assert_eq!(s.curr_blocks - base.curr_blocks, 2);
    assert_eq!(s.curr_bytes - base.curr_bytes, 1800);
    drop(a);
    let mut c: Vec<u8> = Vec::with_capacity(10);
    c.extend_from_slice(&[0; 10]);
    c.reserve_exact(90); // a realloc to 100 bytes
    let s = memward::HeapStats::get();
    assert_eq!(s.total_blocks - base.total_blocks, 4);
    assert_eq!(s.total_bytes - base.total_bytes, 1910);
    assert_eq!(s.curr_blocks - base.curr_blocks, 2);
    assert_eq!(s.curr_bytes - base.curr_bytes, 900);
    assert!(s.max_bytes >= base.curr_bytes + 1800);
    drop((b, c));
    let s = memward::HeapStats::get();
    assert_eq!(s.curr_bytes, base.curr_bytes);
    assert_eq!(s.curr_blocks, base.curr_blocks);
}
