//! C++'s global `operator new` and `operator delete` (Itanium names, x86_64), exported so
//! that a checker learns how each block was asked for and given back (`new` against
//! `delete`, `new[]` against `delete[]`, the size of a sized `delete`). In fast mode they
//! are `malloc` and `free` without the hop through libstdc++.
//!
//! A throwing `new` that finds memory exhausted hands the request to the next definition
//! (libstdc++'s, found with `dlsym(RTLD_NEXT)` on that path only): it runs the program's
//! new-handler and throws `std::bad_alloc`, which Rust code cannot do. What that definition
//! then allocates comes from `malloc`, so under the checker a block it returns after a
//! transient exhaustion counts as `malloc`'s.

use core::ffi::{c_char, c_void, CStr};
use memward::interpose::{self, Kind};

/// C++'s `std::align_val_t`.
type AlignVal = usize;

/// The C `free` of this library (foreign-pointer check included) unless a checker is
/// interposed, which then receives the kind and size.
unsafe fn delete(p: *mut c_void, kind: Kind, size: usize) {
    if interpose::installed() {
        // SAFETY: the caller's pointer, checked by the interposer.
        unsafe { interpose::free(p.cast(), kind, size) }
    } else {
        // SAFETY: forwarded contract of `operator delete`.
        unsafe { crate::free(p) }
    }
}

/// `align` is 8 for the plain operators: like `malloc` (which libstdc++'s operators
/// call), blocks of up to 8 bytes are 8-aligned, larger ones 16.
fn new_nothrow(size: usize, align: usize, kind: Kind) -> *mut c_void {
    interpose::alloc(size, align, kind).cast()
}

/// Calls the next definition of the throwing operator `name` (libstdc++'s): it runs the
/// new-handler and throws on exhaustion. If there is none, aborts as `-fno-exceptions`
/// code does.
#[cold]
#[inline(never)]
fn next_new(name: &CStr, size: usize, align: Option<usize>) -> *mut c_void {
    // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name.
    let f = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr() as *const c_char) };
    if f.is_null() {
        crate::report::out_of_memory_abort("operator new", size);
    }
    // SAFETY: the symbol is the C++ operator of this mangled name, with this signature.
    unsafe {
        match align {
            None => {
                let f: unsafe extern "C" fn(usize) -> *mut c_void = core::mem::transmute(f);
                f(size)
            }
            Some(a) => {
                let f: unsafe extern "C" fn(usize, AlignVal) -> *mut c_void =
                    core::mem::transmute(f);
                f(size, a)
            }
        }
    }
}

macro_rules! throwing_new {
    ($name:ident, $kind:expr) => {
        /// # Safety
        /// C++ `operator new`: never null; exhaustion throws `std::bad_alloc`.
        #[no_mangle]
        pub unsafe extern "C" fn $name(size: usize) -> *mut c_void {
            let p = new_nothrow(size, 8, $kind);
            if p.is_null() {
                return next_new(
                    CStr::from_bytes_with_nul(concat!(stringify!($name), "\0").as_bytes())
                        .unwrap_or(c""),
                    size,
                    None,
                );
            }
            p
        }
    };
    ($name:ident, $kind:expr, aligned) => {
        /// # Safety
        /// C++ aligned `operator new`: never null; exhaustion throws `std::bad_alloc`.
        #[no_mangle]
        pub unsafe extern "C" fn $name(size: usize, align: AlignVal) -> *mut c_void {
            let p = new_nothrow(size, align, $kind);
            if p.is_null() {
                return next_new(
                    CStr::from_bytes_with_nul(concat!(stringify!($name), "\0").as_bytes())
                        .unwrap_or(c""),
                    size,
                    Some(align),
                );
            }
            p
        }
    };
}

throwing_new!(_Znwm, Kind::New);
throwing_new!(_Znam, Kind::NewArray);
throwing_new!(_ZnwmSt11align_val_t, Kind::New, aligned);
throwing_new!(_ZnamSt11align_val_t, Kind::NewArray, aligned);

/// # Safety
/// C++ `operator new(size_t, const std::nothrow_t&)`: null on exhaustion.
#[no_mangle]
pub unsafe extern "C" fn _ZnwmRKSt9nothrow_t(size: usize, _nt: *const c_void) -> *mut c_void {
    new_nothrow(size, 8, Kind::New)
}

/// # Safety
/// C++ `operator new[](size_t, const std::nothrow_t&)`: null on exhaustion.
#[no_mangle]
pub unsafe extern "C" fn _ZnamRKSt9nothrow_t(size: usize, _nt: *const c_void) -> *mut c_void {
    new_nothrow(size, 8, Kind::NewArray)
}

/// # Safety
/// C++ aligned nothrow `operator new`: null on exhaustion.
#[no_mangle]
pub unsafe extern "C" fn _ZnwmSt11align_val_tRKSt9nothrow_t(
    size: usize,
    align: AlignVal,
    _nt: *const c_void,
) -> *mut c_void {
    new_nothrow(size, align, Kind::New)
}

/// # Safety
/// C++ aligned nothrow `operator new[]`: null on exhaustion.
#[no_mangle]
pub unsafe extern "C" fn _ZnamSt11align_val_tRKSt9nothrow_t(
    size: usize,
    align: AlignVal,
    _nt: *const c_void,
) -> *mut c_void {
    new_nothrow(size, align, Kind::NewArray)
}

/// The `operator delete` family: name, arguments after the pointer (size, alignment,
/// nothrow tag), kind, and the size a sized `delete` passes (else 0).
macro_rules! deletes {
    ($( $name:ident($($arg:ident: $t:ty),*) => $kind:expr, $size:expr; )*) => {
        $(
            /// # Safety
            /// C++ `operator delete`: `p` is null or from the matching `operator new`.
            #[no_mangle]
            pub unsafe extern "C" fn $name(p: *mut c_void $(, $arg: $t)*) {
                // SAFETY: forwarded contract.
                unsafe { delete(p, $kind, $size) }
            }
        )*
    };
}

deletes! {
    _ZdlPv() => Kind::New, 0;
    _ZdaPv() => Kind::NewArray, 0;
    _ZdlPvm(size: usize) => Kind::New, size;
    _ZdaPvm(size: usize) => Kind::NewArray, size;
    _ZdlPvRKSt9nothrow_t(_nt: *const c_void) => Kind::New, 0;
    _ZdaPvRKSt9nothrow_t(_nt: *const c_void) => Kind::NewArray, 0;
    _ZdlPvSt11align_val_t(_align: AlignVal) => Kind::New, 0;
    _ZdaPvSt11align_val_t(_align: AlignVal) => Kind::NewArray, 0;
    _ZdlPvmSt11align_val_t(size: usize, _align: AlignVal) => Kind::New, size;
    _ZdaPvmSt11align_val_t(size: usize, _align: AlignVal) => Kind::NewArray, size;
    _ZdlPvSt11align_val_tRKSt9nothrow_t(_align: AlignVal, _nt: *const c_void) => Kind::New, 0;
    _ZdaPvSt11align_val_tRKSt9nothrow_t(_align: AlignVal, _nt: *const c_void) => Kind::NewArray, 0;
}
