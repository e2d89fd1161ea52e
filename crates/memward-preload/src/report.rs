//! Messages to stderr, written without allocating: into a stack buffer, then `write(2)`.

use core::ffi::c_void;
use core::fmt::{self, Write};

/// A fixed-size text buffer; output beyond its capacity is dropped.
pub struct StackBuf {
    bytes: [u8; 8192],
    len: usize,
}

impl StackBuf {
    pub fn new() -> Self {
        StackBuf {
            bytes: [0; 8192],
            len: 0,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    pub fn write_to_fd(&self, fd: i32) {
        let mut rest = self.as_bytes();
        while !rest.is_empty() {
            // SAFETY: the pointer and length describe initialised bytes of `self`.
            let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
            if n <= 0 {
                return;
            }
            rest = &rest[n as usize..];
        }
    }
}

impl Write for StackBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.bytes.len() - self.len;
        let n = s.len().min(room);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// A pointer passed to `free` that memward did not allocate: report it, leave it alone.
/// Cold and out of line so its stack buffer stays out of `free`'s frame.
#[cold]
#[inline(never)]
pub fn foreign_pointer(function: &str, p: *mut c_void) {
    let mut b = StackBuf::new();
    let _ = writeln!(
        b,
        "memward: {function}({p:p}): pointer not allocated by memward; ignored"
    );
    b.write_to_fd(2);
}

/// A pointer passed to `realloc` that memward did not allocate: its size is unknown, so the
/// call cannot be honoured; report and abort as glibc does for invalid pointers.
#[cold]
#[inline(never)]
pub fn foreign_pointer_fatal(function: &str, p: *mut c_void) -> ! {
    let mut b = StackBuf::new();
    let _ = writeln!(
        b,
        "memward: {function}({p:p}): pointer not allocated by memward; aborting"
    );
    b.write_to_fd(2);
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

#[cold]
#[inline(never)]
pub fn print_stats() {
    let mut b = StackBuf::new();
    let _ = write!(b, "{}", memward::stats());
    b.write_to_fd(2);
}

/// A throwing C++ `operator new` found memory exhausted and no C++ runtime to throw
/// `std::bad_alloc` for it: say so and abort, as code built without exceptions does.
#[cold]
#[inline(never)]
pub fn out_of_memory_abort(function: &str, size: usize) -> ! {
    let mut b = StackBuf::new();
    let _ = writeln!(b, "memward: {function}({size}): out of memory; aborting");
    b.write_to_fd(2);
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}
