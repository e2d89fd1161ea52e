//! The hook point (`memward::hooks`) with memward as the global allocator: every
//! allocation, resize and free of the program is reported once, from whichever thread and
//! entry point, the hooks' own allocations are not, and removing the hooks stops reports.
//! One test function, because the hooks are process-wide.

use allocator_api2::vec::Vec as ApiVec;
use std::alloc::{GlobalAlloc, Layout};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;

#[global_allocator]
static GLOBAL: memward::Memward = memward::Memward;

/// Live blocks as the hooks saw them: address -> requested size.
static LIVE: Mutex<Option<HashMap<usize, usize>>> = Mutex::new(None);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static FREES: AtomicUsize = AtomicUsize::new(0);
static REALLOCS: AtomicUsize = AtomicUsize::new(0);
/// Set while a hook runs on some thread, to check hooks are not re-entered on one thread.
static NESTED: AtomicBool = AtomicBool::new(false);

thread_local! {
    static IN_HOOK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn enter() {
    IN_HOOK.with(|f| {
        if f.replace(true) {
            NESTED.store(true, Ordering::Relaxed);
        }
    });
}

fn leave() {
    IN_HOOK.with(|f| f.set(false));
}

unsafe fn on_alloc(p: *mut u8, size: usize) {
    enter();
    ALLOCS.fetch_add(1, Ordering::Relaxed);
    // The map allocates through memward: those allocations must not be reported.
    let mut live = LIVE.lock().unwrap();
    live.get_or_insert_with(HashMap::new)
        .insert(p as usize, size);
    drop(live);
    leave();
}

unsafe fn on_free(p: *mut u8) {
    enter();
    FREES.fetch_add(1, Ordering::Relaxed);
    if let Some(live) = LIVE.lock().unwrap().as_mut() {
        live.remove(&(p as usize));
    }
    leave();
}

unsafe fn on_realloc(old: *mut u8, new: *mut u8, size: usize) {
    enter();
    REALLOCS.fetch_add(1, Ordering::Relaxed);
    let mut live = LIVE.lock().unwrap();
    let live = live.get_or_insert_with(HashMap::new);
    live.remove(&(old as usize));
    live.insert(new as usize, size);
    leave();
}

static HOOKS: memward::hooks::Hooks = memward::hooks::Hooks {
    alloc: on_alloc,
    free: on_free,
    realloc: on_realloc,
};

fn live_size(p: *const u8) -> Option<usize> {
    LIVE.lock()
        .unwrap()
        .as_ref()
        .and_then(|m| m.get(&(p as usize)).copied())
}

#[test]
fn every_operation_is_reported_once_and_hooks_can_be_removed() {
    // Blocks allocated before installation: their frees may be reported, and are ignored.
    let early: Vec<Box<[u8; 48]>> = (0..100).map(|_| Box::new([1; 48])).collect();
    memward::hooks::install(&HOOKS);
    assert!(memward::hooks::installed());

    // Small blocks of every direct size, then freed: each seen allocated, then gone.
    let boxes: Vec<Box<[u8]>> = (1..=1024).step_by(7).map(|n| vec![2u8; n].into()).collect();
    for b in &boxes {
        assert_eq!(
            live_size(b.as_ptr()),
            Some(b.len()),
            "allocation of {}",
            b.len()
        );
    }
    let ptrs: Vec<usize> = boxes.iter().map(|b| b.as_ptr() as usize).collect();
    drop(boxes);
    for p in ptrs {
        assert_eq!(
            live_size(p as *const u8),
            None,
            "free of {p:#x} not reported"
        );
    }

    // Medium, large and huge blocks, and over-aligned ones.
    for (size, align) in [
        (5000, 8),
        (100_000, 16),
        (3 << 20, 16),
        (40, 64),
        (1000, 4096),
        (70_000, 1 << 20),
    ] {
        let layout = Layout::from_size_align(size, align).unwrap();
        // SAFETY: a non-zero layout; the block is freed with the same layout.
        unsafe {
            let p = GLOBAL.alloc(layout);
            assert_eq!(p as usize % align, 0);
            assert_eq!(live_size(p), Some(size), "size {size} align {align}");
            GLOBAL.dealloc(p, layout);
            assert_eq!(live_size(p), None);
        }
    }

    // A vector grown by realloc: one block at the end, with the last requested size.
    let reallocs = REALLOCS.load(Ordering::Relaxed);
    let mut v: Vec<u64> = Vec::new();
    for i in 0..100_000 {
        v.push(i);
    }
    assert!(REALLOCS.load(Ordering::Relaxed) > reallocs + 10);
    assert_eq!(live_size(v.as_ptr().cast()), Some(v.capacity() * 8));
    let vp = v.as_ptr() as usize;
    drop(v);
    assert_eq!(live_size(vp as *const u8), None);

    // Blocks freed by other threads (the remote-free path).
    let sent: Vec<Box<[u8; 200]>> = (0..1000).map(|_| Box::new([3; 200])).collect();
    let addrs: Vec<usize> = sent.iter().map(|b| b.as_ptr() as usize).collect();
    for &a in &addrs {
        assert_eq!(live_size(a as *const u8), Some(200));
    }
    thread::spawn(move || drop(sent)).join().unwrap();
    for &a in &addrs {
        assert_eq!(live_size(a as *const u8), None, "remote free not reported");
    }

    // Blocks of another thread's heap, allocated there.
    let made = thread::spawn(|| Box::new([4u8; 300])).join().unwrap();
    assert_eq!(live_size(made.as_ptr()), Some(300));
    let mp = made.as_ptr() as usize;
    drop(made);
    assert_eq!(live_size(mp as *const u8), None);

    // First-class heaps report through the same hooks.
    let heap = memward::Heap::new();
    let mut hv: ApiVec<u32, &memward::Heap> = ApiVec::new_in(&heap);
    hv.extend(0..1000u32);
    assert_eq!(live_size(hv.as_ptr().cast()), Some(hv.capacity() * 4));
    drop(hv);
    drop(heap);

    assert!(!NESTED.load(Ordering::Relaxed), "a hook was re-entered");
    drop(early);

    // Removed: nothing more is reported, and the fast paths serve again.
    memward::hooks::remove();
    let before = (
        ALLOCS.load(Ordering::Relaxed),
        FREES.load(Ordering::Relaxed),
    );
    let quiet: Vec<Box<u64>> = (0..10_000).map(Box::new).collect();
    drop(quiet);
    assert_eq!(
        before,
        (
            ALLOCS.load(Ordering::Relaxed),
            FREES.load(Ordering::Relaxed)
        )
    );
}
