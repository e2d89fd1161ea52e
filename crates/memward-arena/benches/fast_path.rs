//! Fast paths of memward-arena and its anchors, one `#[inline(never)]` function each, for
//! counting instructions and branches with callgrind (`scripts/arena-callgrind`).
//!
//! Each `fp_*` function is one operation; `main` calls each `CALLS` times on an arena big
//! enough that no call leaves the fast path, so callgrind's inclusive count for the function
//! divided by `CALLS` is the cost of one fast-path operation, call and return included.
//! Run without callgrind it just exercises the functions.

use allocator_api2::alloc::Allocator;
use core::alloc::Layout;
use std::hint::black_box;

const CALLS: usize = 100_000;

#[inline(never)]
fn fp_memward_alloc_u8(a: &memward_arena::Arena) -> &mut u8 {
    a.alloc(1u8)
}
#[inline(never)]
fn fp_bumpalo_alloc_u8(a: &bumpalo::Bump) -> &mut u8 {
    a.alloc(1u8)
}
#[inline(never)]
fn fp_bump_scope_alloc_u8(a: &bump_scope::Bump) -> &mut u8 {
    a.alloc(1u8).into_mut()
}
#[inline(never)]
fn fp_blink_alloc_u8(a: &blink_alloc::Blink) -> &mut u8 {
    a.put(1u8)
}

#[inline(never)]
fn fp_memward_alloc_u32(a: &memward_arena::Arena) -> &mut u32 {
    a.alloc(1u32)
}
#[inline(never)]
fn fp_bumpalo_alloc_u32(a: &bumpalo::Bump) -> &mut u32 {
    a.alloc(1u32)
}
#[inline(never)]
fn fp_bump_scope_alloc_u32(a: &bump_scope::Bump) -> &mut u32 {
    a.alloc(1u32).into_mut()
}
#[inline(never)]
fn fp_blink_alloc_u32(a: &blink_alloc::Blink) -> &mut u32 {
    a.put(1u32)
}

#[inline(never)]
fn fp_memward_alloc_32b(a: &memward_arena::Arena, v: [u8; 32]) -> &mut [u8; 32] {
    a.alloc(v)
}
#[inline(never)]
fn fp_bumpalo_alloc_32b(a: &bumpalo::Bump, v: [u8; 32]) -> &mut [u8; 32] {
    a.alloc(v)
}
#[inline(never)]
fn fp_bump_scope_alloc_32b(a: &bump_scope::Bump, v: [u8; 32]) -> &mut [u8; 32] {
    a.alloc(v).into_mut()
}
#[inline(never)]
fn fp_blink_alloc_32b(a: &blink_alloc::Blink, v: [u8; 32]) -> &mut [u8; 32] {
    a.put(v)
}

#[inline(never)]
fn fp_memward_sync_alloc_u8(a: &memward_arena::SyncArena) -> &mut u8 {
    a.alloc(1u8)
}
#[inline(never)]
fn fp_memward_sync_alloc_u32(a: &memward_arena::SyncArena) -> &mut u32 {
    a.alloc(1u32)
}

#[inline(never)]
fn fp_memward_allocate(a: &memward_arena::Arena, l: Layout) -> *mut u8 {
    a.allocate(l).unwrap().cast::<u8>().as_ptr()
}
#[inline(never)]
fn fp_bumpalo_allocate(a: &bumpalo::Bump, l: Layout) -> *mut u8 {
    Allocator::allocate(&a, l).unwrap().cast::<u8>().as_ptr()
}
#[inline(never)]
fn fp_bump_scope_allocate(a: &bump_scope::Bump, l: Layout) -> *mut u8 {
    Allocator::allocate(&a, l).unwrap().cast::<u8>().as_ptr()
}
#[inline(never)]
fn fp_blink_allocate(a: &blink_alloc::BlinkAlloc, l: Layout) -> *mut u8 {
    a.allocate(l).unwrap().cast::<u8>().as_ptr()
}

#[inline(never)]
fn fp_memward_reset(a: &mut memward_arena::Arena) {
    a.reset()
}
#[inline(never)]
fn fp_bumpalo_reset(a: &mut bumpalo::Bump) {
    a.reset()
}
#[inline(never)]
fn fp_bump_scope_reset(a: &mut bump_scope::Bump) {
    a.reset()
}
#[inline(never)]
fn fp_blink_reset(a: &mut blink_alloc::Blink) {
    a.reset()
}

const BIG: usize = 8 * CALLS + 4096;

fn main() {
    // Allocation: one warm chunk big enough for every call.
    let ours = memward_arena::Arena::with_capacity(BIG);
    let bumpalo = bumpalo::Bump::with_capacity(BIG);
    let scope = bump_scope::Bump::<bump_scope::alloc::Global>::with_size(BIG);
    let blink = blink_alloc::Blink::new();
    // blink-alloc has no capacity hint: warm it with one allocation of the whole size.
    black_box(blink.put([0u8; 1]));
    let sync = memward_arena::SyncArena::new();
    black_box(sync.alloc(0u8)); // takes the thread's first block
    for _ in 0..CALLS {
        black_box(fp_memward_alloc_u8(black_box(&ours)));
        black_box(fp_bumpalo_alloc_u8(black_box(&bumpalo)));
        black_box(fp_bump_scope_alloc_u8(black_box(&scope)));
        black_box(fp_blink_alloc_u8(black_box(&blink)));
    }
    for _ in 0..CALLS {
        black_box(fp_memward_alloc_u32(black_box(&ours)));
        black_box(fp_bumpalo_alloc_u32(black_box(&bumpalo)));
        black_box(fp_bump_scope_alloc_u32(black_box(&scope)));
        black_box(fp_blink_alloc_u32(black_box(&blink)));
    }
    let big32 = 40 * CALLS;
    let ours32 = memward_arena::Arena::with_capacity(big32);
    let bumpalo32 = bumpalo::Bump::with_capacity(big32);
    let scope32 = bump_scope::Bump::<bump_scope::alloc::Global>::with_size(big32);
    let blink32 = blink_alloc::Blink::new();
    for _ in 0..CALLS {
        let v = black_box([7u8; 32]);
        black_box(fp_memward_alloc_32b(black_box(&ours32), v));
        black_box(fp_bumpalo_alloc_32b(black_box(&bumpalo32), v));
        black_box(fp_bump_scope_alloc_32b(black_box(&scope32), v));
        black_box(fp_blink_alloc_32b(black_box(&blink32), v));
    }
    for _ in 0..CALLS {
        black_box(fp_memward_sync_alloc_u8(black_box(&sync)));
        black_box(fp_memward_sync_alloc_u32(black_box(&sync)));
    }
    let l = Layout::new::<u64>();
    let ours2 = memward_arena::Arena::with_capacity(BIG);
    let bumpalo2 = bumpalo::Bump::with_capacity(BIG);
    let scope2 = bump_scope::Bump::<bump_scope::alloc::Global>::with_size(BIG);
    let blink2 = blink_alloc::BlinkAlloc::new();
    for _ in 0..CALLS {
        black_box(fp_memward_allocate(black_box(&ours2), black_box(l)));
        black_box(fp_bumpalo_allocate(black_box(&bumpalo2), black_box(l)));
        black_box(fp_bump_scope_allocate(black_box(&scope2), black_box(l)));
        black_box(fp_blink_allocate(black_box(&blink2), black_box(l)));
    }
    // Reset: one allocation between resets, so each reset has something to undo.
    let mut ours = ours;
    let mut bumpalo = bumpalo;
    let mut scope = scope;
    let mut blink = blink;
    for _ in 0..CALLS {
        black_box(ours.alloc(1u32));
        fp_memward_reset(black_box(&mut ours));
        black_box(bumpalo.alloc(1u32));
        fp_bumpalo_reset(black_box(&mut bumpalo));
        black_box(scope.alloc(1u32).into_mut());
        fp_bump_scope_reset(black_box(&mut scope));
        black_box(blink.put(1u32));
        fp_blink_reset(black_box(&mut blink));
    }
    println!("fast_path: {CALLS} calls of each fp_* function");
}
