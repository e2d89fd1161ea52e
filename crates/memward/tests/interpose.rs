//! The interposition point: with an interposer installed, every allocation, free, resize
//! and size query of thread heaps goes to it, whatever the entry point, and what it does
//! itself goes to the engine. A toy interposer puts a header before each block and logs.

use memward::interpose::{self, Interposer, Kind};
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

const MAGIC: u32 = 0x6d77_6368;

/// Before each block: where its engine block starts, its size, its kind, a magic word.
#[repr(C)]
struct Header {
    base: *mut u8,
    size: u32,
    magic: u32,
    kind: Kind,
}

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static FREES: AtomicUsize = AtomicUsize::new(0);
static FOREIGN: AtomicUsize = AtomicUsize::new(0);
/// (event, size, align or 0, kind) of every call, written from inside the interposer:
/// the Vec's own growth must be served by the engine, not by the interposer.
static LOG: Mutex<Vec<(&'static str, usize, usize, Kind)>> = Mutex::new(Vec::new());

fn log(event: &'static str, size: usize, align: usize, kind: Kind) {
    LOG.lock().unwrap().push((event, size, align, kind));
}

fn header_size(align: usize) -> usize {
    align.max(32)
}

unsafe fn toy_alloc(size: usize, align: usize, zeroed: bool, kind: Kind) -> *mut u8 {
    ALLOCS.fetch_add(1, Ordering::Relaxed);
    log("alloc", size, align, kind);
    let front = header_size(align);
    let base = memward::raw::aligned_alloc(front.max(16), front + size);
    if base.is_null() {
        return base;
    }
    // SAFETY: base has front + size bytes; the header fits in front (>= 32) before p.
    unsafe {
        let p = base.add(front);
        let h = p.sub(std::mem::size_of::<Header>()).cast::<Header>();
        h.write(Header {
            base,
            size: size as u32,
            magic: MAGIC,
            kind,
        });
        p.write_bytes(if zeroed { 0 } else { 0xAA }, size);
        p
    }
}

unsafe fn header<'a>(p: *const u8) -> &'a Header {
    // SAFETY: the caller passes a block of toy_alloc.
    let h = unsafe { &*p.sub(std::mem::size_of::<Header>()).cast::<Header>() };
    assert_eq!(h.magic, MAGIC, "not an interposer block");
    h
}

unsafe fn toy_free(p: *mut u8, kind: Kind, size: usize) {
    FREES.fetch_add(1, Ordering::Relaxed);
    log("free", size, 0, kind);
    // SAFETY: blocks of the toy interposer.
    unsafe {
        let base = header(p).base;
        memward::raw::free(base);
    }
}

unsafe fn toy_realloc(p: *mut u8, size: usize, align: usize) -> *mut u8 {
    log("realloc", size, align, Kind::Malloc);
    // SAFETY: blocks of the toy interposer.
    unsafe {
        let old = header(p);
        let q = toy_alloc(size, align, false, old.kind);
        std::ptr::copy_nonoverlapping(p, q, size.min(old.size as usize));
        toy_free(p, old.kind, 0);
        q
    }
}

unsafe fn toy_usable_size(p: *const u8) -> usize {
    // SAFETY: a block of the toy interposer.
    unsafe { header(p).size as usize }
}

unsafe fn toy_foreign_free(_p: *mut u8, api: &'static str) {
    FOREIGN.fetch_add(1, Ordering::Relaxed);
    log(api, 0, 0, Kind::Malloc);
}

static TOY: Interposer = Interposer {
    alloc: toy_alloc,
    free: toy_free,
    realloc: toy_realloc,
    usable_size: toy_usable_size,
    foreign_free: toy_foreign_free,
};

fn is_toy_block(p: *const u8) -> bool {
    // SAFETY: only called on live blocks of at least 32 bytes front room or toy blocks;
    // reading 16 bytes before a live engine block stays in its segment.
    let magic = unsafe {
        p.sub(std::mem::size_of::<Header>())
            .cast::<Header>()
            .read()
            .magic
    };
    magic == MAGIC
}

fn take_log() -> Vec<(&'static str, usize, usize, Kind)> {
    std::mem::take(&mut *LOG.lock().unwrap())
}

/// One test, so no other test's allocations run while the interposer is installed.
#[test]
fn every_entry_point_reaches_the_interposer_and_its_own_memory_the_engine() {
    // Warm the log so its first growth is not inside the measured window.
    log("warm", 0, 0, Kind::Malloc);
    take_log();
    interpose::install(&TOY);
    assert!(interpose::installed());
    assert!(
        !memward::hooks::installed(),
        "an interposer is not a hook table"
    );

    // Every direct size class and a medium, a large and a huge size.
    let sizes = [1, 8, 16, 24, 100, 1024, 5000, 70_000, 3 << 20];
    for &size in &sizes {
        let p = memward::raw::malloc(size);
        assert!(is_toy_block(p), "malloc({size}) not interposed");
        // SAFETY: p has `size` bytes, filled by the interposer.
        assert_eq!(unsafe { *p.add(size - 1) }, 0xAA);
        // SAFETY: live block.
        assert_eq!(unsafe { memward::raw::usable_size(p) }, size);
        // SAFETY: live block, freed once.
        unsafe { memward::raw::free(p) };
    }
    let log = take_log();
    let allocs: Vec<usize> = log.iter().filter(|e| e.0 == "alloc").map(|e| e.1).collect();
    assert_eq!(allocs, sizes);
    assert_eq!(log.iter().filter(|e| e.0 == "free").count(), sizes.len());

    // calloc gives zeros although the interposer filled the block.
    let z = memward::raw::calloc(100, 10);
    assert!(is_toy_block(z));
    // SAFETY: 1000 bytes.
    assert!(unsafe { std::slice::from_raw_parts(z, 1000) }
        .iter()
        .all(|&b| b == 0));
    // Aligned allocation passes the alignment.
    let a = memward::raw::aligned_alloc(4096, 10);
    assert_eq!(a as usize % 4096, 0);
    assert!(is_toy_block(a));
    // realloc goes to the interposer's realloc.
    // SAFETY: live block.
    let r = unsafe { memward::raw::realloc(z, 5000) };
    assert!(is_toy_block(r));
    // SAFETY: the first 1000 bytes were copied.
    assert_eq!(unsafe { *r.add(999) }, 0);
    // SAFETY: live blocks, freed once.
    unsafe {
        memward::raw::free(a);
        memward::raw::free(r);
    }
    let log = take_log();
    assert!(log.contains(&("alloc", 10, 4096, Kind::Malloc)));
    assert!(log.contains(&("realloc", 5000, 16, Kind::Malloc)));

    // The global allocator too, with its layouts.
    let layout = Layout::from_size_align(48, 64).unwrap();
    // SAFETY: a non-zero layout; the block is freed with the same layout.
    unsafe {
        let g = memward::Memward.alloc(layout);
        assert!(is_toy_block(g));
        assert_eq!(g as usize % 64, 0);
        let g = memward::Memward.realloc(g, layout, 4000);
        assert!(is_toy_block(g));
        memward::Memward.dealloc(g, Layout::from_size_align(4000, 64).unwrap());
    }
    assert!(take_log().contains(&("alloc", 48, 64, Kind::Malloc)));

    // Kinds pass through interpose::alloc and interpose::free.
    let n = interpose::alloc(40, 16, Kind::NewArray);
    assert!(is_toy_block(n));
    // SAFETY: live block.
    unsafe { interpose::free(n, Kind::NewArray, 40) };
    let log = take_log();
    assert_eq!(
        log,
        vec![
            ("alloc", 40, 16, Kind::NewArray),
            ("free", 40, 0, Kind::NewArray)
        ]
    );

    // A foreign pointer given to interpose::free reaches foreign_free, not the engine.
    let mut local = 0u64;
    // SAFETY: the interposer takes foreign pointers.
    unsafe { interpose::free((&raw mut local).cast(), Kind::New, 0) };
    assert_eq!(FOREIGN.load(Ordering::Relaxed), 1);
    assert_eq!(take_log(), vec![("operator delete", 0, 0, Kind::Malloc)]);

    // Frees from another thread reach the interposer.
    let blocks: Vec<usize> = (0..100)
        .map(|i| memward::raw::malloc(16 + i) as usize)
        .collect();
    let before = FREES.load(Ordering::Relaxed);
    std::thread::spawn(move || {
        for p in blocks {
            // SAFETY: live blocks, freed once.
            unsafe { memward::raw::free(p as *mut u8) };
        }
    })
    .join()
    .unwrap();
    assert_eq!(FREES.load(Ordering::Relaxed) - before, 100);
    // A new thread's heap is interposed from its first allocation.
    let p = std::thread::spawn(|| memward::raw::malloc(77) as usize)
        .join()
        .unwrap();
    assert!(is_toy_block(p as *const u8));
    // SAFETY: live block.
    unsafe { memward::raw::free(p as *mut u8) };
    take_log();

    // First-class heaps are never interposed.
    let heap = memward::Heap::new();
    let before = ALLOCS.load(Ordering::Relaxed);
    let layout = Layout::from_size_align(64, 8).unwrap();
    let b = allocator_api2::alloc::Allocator::allocate(&&heap, layout).unwrap();
    // SAFETY: allocated just above with this layout.
    unsafe { allocator_api2::alloc::Allocator::deallocate(&&heap, b.cast(), layout) };
    drop(heap);
    assert_eq!(ALLOCS.load(Ordering::Relaxed), before);

    // Inside `unchecked`, the engine serves directly.
    let u = interpose::unchecked(|| memward::raw::malloc(64));
    assert!(!is_toy_block(u) || u.is_null());
    interpose::unchecked(|| {
        // SAFETY: an engine block, freed unchecked.
        unsafe { memward::raw::free(u) }
    });
    assert_eq!(ALLOCS.load(Ordering::Relaxed), before);

    interpose::remove();
    assert!(!interpose::installed());
    let before = ALLOCS.load(Ordering::Relaxed);
    let p = memward::raw::malloc(24);
    // SAFETY: live block.
    unsafe { memward::raw::free(p) };
    assert_eq!(
        ALLOCS.load(Ordering::Relaxed),
        before,
        "removed, yet still interposed"
    );
}
