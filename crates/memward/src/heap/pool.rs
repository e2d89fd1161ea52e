//! The registry of heap structures: every heap ever created (for `stats()`), and a pool of
//! retired ones for reuse.
//!
//! Heap structures are carved from mappings of their own (never from the global allocator
//! this crate implements) and never unmapped: a remote free that read a stale owner may
//! push to a heap after its thread exited, and that push must land in valid memory. The
//! pushes are applied by the next owner of the pooled heap, or by `drain_retired_heaps`.

use super::remote::queued_next;
use super::{Heap, Local};
use crate::list::Block;
use crate::lock::SpinLock;
use crate::{hook_table, os, stats};
use core::mem::{align_of, size_of};
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

/// Every heap ever created, newest first: a push-only list that `stats()` walks without a
/// lock (links are written once, before the release CAS that publishes the heap).
static ALL_HEAPS: AtomicPtr<Heap> = AtomicPtr::new(ptr::null_mut());

struct Registry {
    dead: *mut Heap,
    chunk: usize,
    chunk_left: usize,
}
// SAFETY: the registry only holds addresses of heap memory; the lock serialises its use.
unsafe impl Send for Registry {}

static REGISTRY: SpinLock<Registry> = SpinLock::new(Registry {
    dead: ptr::null_mut(),
    chunk: 0,
    chunk_left: 0,
});

const HEAP_CHUNK: usize = 64 * 1024;

/// Gives out a heap for a new owner: a retired one, or a new one carved from a mapping.
/// Null if the OS is out of memory.
pub fn new_heap(thread_id: usize) -> *mut Heap {
    let stride = (size_of::<Heap>() + 63) & !63;
    const { assert!(align_of::<Heap>() <= 64) };
    let (h, fresh) = {
        let mut reg = REGISTRY.lock();
        if !reg.dead.is_null() {
            let h = reg.dead;
            // SAFETY: heaps on the dead list are valid and unused.
            reg.dead = unsafe { (*h).dead_next.load(Ordering::Relaxed) };
            (h, false)
        } else {
            if reg.chunk_left < stride {
                let size = HEAP_CHUNK.max(stride).next_multiple_of(os::page_size());
                let chunk = os::map(size);
                if chunk.is_null() {
                    return ptr::null_mut();
                }
                stats::mapped(size);
                reg.chunk = chunk as usize;
                reg.chunk_left = size;
            }
            let h = reg.chunk as *mut Heap;
            reg.chunk += stride;
            reg.chunk_left -= stride;
            (h, true)
        }
    };
    // SAFETY: `h` is either fresh mapped memory sized and aligned for a Heap, or a retired
    // heap nobody owns.
    unsafe {
        if fresh {
            stats::resident(stride as i64);
            h.write(Heap::EMPTY);
            let mut head = ALL_HEAPS.load(Ordering::Relaxed);
            loop {
                (*h).registry_next.store(head, Ordering::Relaxed);
                match ALL_HEAPS.compare_exchange_weak(head, h, Ordering::Release, Ordering::Relaxed)
                {
                    Ok(_) => break,
                    Err(now) => head = now,
                }
            }
        }
        reset_for(h, thread_id);
    }
    h
}

/// Prepares a heap structure (fresh or from the pool) for a new owner.
///
/// # Safety
/// `h` points to a heap nobody else uses as owner.
unsafe fn reset_for(h: *mut Heap, thread_id: usize) {
    // SAFETY: the caller has exclusive ownership of the heap's local part.
    unsafe {
        let l = (*h).local();
        *l = Local::EMPTY;
        l.this = h;
        l.thread_id = thread_id;
        (*h).owner_thread.store(thread_id, Ordering::Relaxed);
        (*h).first_class.store(false, Ordering::Relaxed);
        l.set_mode(hook_table::wanted_mode(false));
    }
}

/// Puts an emptied heap in the pool for reuse.
///
/// # Safety
/// The heap was abandoned or destroyed and its owner will not use it again.
pub unsafe fn retire_heap(h: *mut Heap) {
    let mut reg = REGISTRY.lock();
    // SAFETY: the heap is valid memory and no longer owned.
    unsafe {
        (*h).owner_thread.store(0, Ordering::Relaxed);
        (*h).dead_next.store(reg.dead, Ordering::Relaxed);
    }
    reg.dead = h;
}

/// Applies frees that reached retired heaps after their threads exited.
pub fn drain_retired_heaps(local: &mut Local) {
    let mut chain: *mut Block = ptr::null_mut();
    {
        let reg = REGISTRY.lock();
        let mut h = reg.dead;
        while !h.is_null() {
            // SAFETY: retired heaps are valid; their queues are atomics; the taken blocks
            // are ours to relink.
            unsafe {
                for mut b in (*h).remote.take_lanes() {
                    while !b.is_null() {
                        let next = queued_next(b);
                        Block::set_remote_next(b, chain);
                        chain = b;
                        b = next;
                    }
                }
                h = (*h).dead_next.load(Ordering::Relaxed);
            }
        }
    }
    while !chain.is_null() {
        // SAFETY: each block is a live memward block queued for freeing.
        unsafe {
            let next = Block::remote_next(chain);
            local.free_from_queue(chain.cast(), Block::remote_tag(chain));
            chain = next;
        }
    }
}

/// Calls `f` with every heap (for `stats()`).
pub fn for_each_heap(mut f: impl FnMut(&Heap)) {
    let mut h = ALL_HEAPS.load(Ordering::Acquire);
    while !h.is_null() {
        // SAFETY: heaps on the registry list are never unmapped.
        unsafe {
            f(&*h);
            h = (*h).registry_next.load(Ordering::Relaxed);
        }
    }
}

/// Takes the registry lock (fork prepare handler).
pub fn lock() {
    REGISTRY.acquire();
}

/// Releases what `lock` took.
///
/// # Safety
/// Only after `lock` on this thread (fork parent/child handlers).
pub unsafe fn unlock() {
    // SAFETY: per the contract.
    unsafe { REGISTRY.release() }
}
