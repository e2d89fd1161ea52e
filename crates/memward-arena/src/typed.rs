//! Typed allocation on top of a raw bump: the part `Arena` and `SyncArena` share.
//!
//! Both arenas hand out raw, aligned, uninitialised space through [`RawBump`]; the
//! functions here turn that into `&mut T`, `&mut [T]` and `&mut str`. Keeping the
//! initialisation in one place keeps the unsafe writes in one module: each writes a value
//! into space that was just reserved for exactly that value and nothing else can reach.
//! Values are never dropped by the arena (as with bumpalo); `ArenaBox` is the type that
//! runs `Drop`.

// Returning `&mut` from `&B` is the point: each call hands out fresh memory that no other
// reference reaches.
#![allow(clippy::mut_from_ref)]

use allocator_api2::alloc::AllocError;
use core::alloc::Layout;
use core::ptr::NonNull;

/// A source of fresh, aligned bytes that stay valid while `&self` is borrowed.
pub(crate) trait RawBump {
    /// Reserves `layout`; `None` when the limit or the global allocator refuses.
    fn raw_alloc(&self, layout: Layout) -> Option<NonNull<u8>>;
}

#[cold]
#[inline(never)]
pub(crate) fn out_of_memory(layout: Layout) -> ! {
    panic!(
        "memward-arena: cannot allocate {} bytes (align {}): the arena's limit or the global allocator refused",
        layout.size(),
        layout.align()
    )
}

#[inline(always)]
pub(crate) fn try_alloc_with<B: RawBump + ?Sized, T, F: FnOnce() -> T>(
    bump: &B,
    f: F,
) -> Result<&mut T, AllocError> {
    let ptr = bump.raw_alloc(Layout::new::<T>()).ok_or(AllocError)?;
    let ptr = ptr.cast::<T>().as_ptr();
    // SAFETY: `ptr` is fresh space with the size and alignment of `T`, reserved for this
    // call only and valid while `bump` is borrowed; writing initialises it, after which a
    // unique reference to it is sound.
    unsafe {
        ptr.write(f());
        Ok(&mut *ptr)
    }
}

#[inline(always)]
pub(crate) fn alloc_with<B: RawBump + ?Sized, T, F: FnOnce() -> T>(bump: &B, f: F) -> &mut T {
    match try_alloc_with(bump, f) {
        Ok(r) => r,
        Err(AllocError) => out_of_memory(Layout::new::<T>()),
    }
}

pub(crate) fn try_alloc_slice_copy<'a, B: RawBump + ?Sized, T: Copy>(
    bump: &'a B,
    src: &[T],
) -> Result<&'a mut [T], AllocError> {
    let layout = Layout::for_value(src);
    let ptr = bump.raw_alloc(layout).ok_or(AllocError)?.cast::<T>();
    // SAFETY: `ptr` is fresh space for `src.len()` values of `T`, which cannot overlap
    // `src`; `T: Copy`, so a bitwise copy initialises every element.
    unsafe {
        core::ptr::copy_nonoverlapping(src.as_ptr(), ptr.as_ptr(), src.len());
        Ok(core::slice::from_raw_parts_mut(ptr.as_ptr(), src.len()))
    }
}

pub(crate) fn alloc_slice_copy<'a, B: RawBump + ?Sized, T: Copy>(
    bump: &'a B,
    src: &[T],
) -> &'a mut [T] {
    match try_alloc_slice_copy(bump, src) {
        Ok(r) => r,
        Err(AllocError) => out_of_memory(Layout::for_value(src)),
    }
}

pub(crate) fn alloc_str<'a, B: RawBump + ?Sized>(bump: &'a B, s: &str) -> &'a mut str {
    let bytes = alloc_slice_copy(bump, s.as_bytes());
    // SAFETY: the bytes are a copy of a `str`, so they are valid UTF-8.
    unsafe { core::str::from_utf8_unchecked_mut(bytes) }
}

pub(crate) fn alloc_slice_fill_iter<B, T, I>(bump: &B, iter: I) -> &mut [T]
where
    B: RawBump + ?Sized,
    I: IntoIterator<Item = T>,
    I::IntoIter: ExactSizeIterator,
{
    let mut iter = iter.into_iter();
    let len = iter.len();
    let layout = match Layout::array::<T>(len) {
        Ok(l) => l,
        Err(_) => out_of_memory(Layout::new::<T>()),
    };
    let ptr = match bump.raw_alloc(layout) {
        Some(p) => p.cast::<T>().as_ptr(),
        None => out_of_memory(layout),
    };
    for i in 0..len {
        let Some(value) = iter.next() else {
            // The elements written so far are simply never dropped, as for any arena value.
            panic!("memward-arena: the iterator yielded {i} items but its len() said {len}");
        };
        // SAFETY: `ptr` has room for `len` values of `T` and `i < len`; each slot is
        // written once.
        unsafe { ptr.add(i).write(value) };
    }
    // SAFETY: all `len` elements were initialised above.
    unsafe { core::slice::from_raw_parts_mut(ptr, len) }
}
