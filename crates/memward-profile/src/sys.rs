//! The few system calls the recorder makes, wrapped so the rest of the crate is safe
//! code: anonymous mappings, `open`/`write`/`read` on file descriptors, clocks, ids.
//!
//! Nothing here allocates: the recorder runs inside `malloc`, and its memory comes from
//! mappings it makes itself. Errors are `errno` values; the callers decide what to tell
//! the user.

use core::ffi::CStr;

/// An anonymous private mapping, unmapped on drop. Pages cost memory only once touched
/// (`MAP_NORESERVE`), so regions can be sized for the worst case.
#[derive(Debug)]
pub struct Region {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: a Region owns its mapping exclusively, like a Box<[u8]>.
unsafe impl Send for Region {}

impl Region {
    /// Maps `len` bytes of zeroed memory; `None` if the system refuses.
    pub fn map(len: usize) -> Option<Region> {
        // SAFETY: an anonymous mapping at an address of the kernel's choice has no
        // preconditions; the result is checked.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            None
        } else {
            Some(Region { ptr: p.cast(), len })
        }
    }

    /// The mapping's bytes.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` bytes, readable and writable, owned by `self`;
        // the borrow of `self` keeps it alive and unaliased.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// The mapping as a slice of `T` (`T` must be valid when all-zero and the mapping a
    /// multiple of its size, which `slice_of` checks).
    pub fn slice_of<T: ZeroValid>(&mut self) -> &mut [T] {
        assert!(core::mem::align_of::<T>() <= 4096);
        let n = self.len / core::mem::size_of::<T>();
        // SAFETY: page-aligned, `n` whole `T`s fit, zero bytes are a valid `T`
        // (`ZeroValid`), and the borrow of `self` keeps the memory alive and unaliased.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.cast::<T>(), n) }
    }

    /// Turns the mapping into a slice that lives for the rest of the process (the writer's
    /// buffer, which a forked child keeps using).
    pub fn leak(self) -> &'static mut [u8] {
        let (ptr, len) = (self.ptr, self.len);
        core::mem::forget(self);
        // SAFETY: the mapping is never unmapped now, and nothing else refers to it.
        unsafe { core::slice::from_raw_parts_mut(ptr, len) }
    }

    /// Turns the mapping into 64-bit atomics that live for the rest of the process (tables
    /// that threads read without a lock while another replaces them: a reader may still
    /// hold the old one, so it is never unmapped).
    pub fn leak_atomics(self) -> &'static [core::sync::atomic::AtomicU64] {
        let n = self.len / 8;
        let bytes = self.leak();
        // SAFETY: page-aligned, `n` whole words fit, all-zero bytes are valid atomics, and
        // the mapping now lives for the process; it is only accessed through these atomics.
        unsafe { core::slice::from_raw_parts(bytes.as_ptr().cast(), n) }
    }

    /// Start and end addresses of the mapping.
    pub fn range(&self) -> (usize, usize) {
        (self.ptr as usize, self.ptr as usize + self.len)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (it never is: `mmap` refuses zero bytes).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: we own the mapping; nothing borrows it once `self` is dropped.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Types for which the all-zero bit pattern is a valid value (plain integers and structs
/// of them), so fresh anonymous memory can be viewed as a slice of them.
///
/// # Safety
/// Implement only for types whose every field accepts zero bytes.
pub unsafe trait ZeroValid: Copy {}

/// The calling thread's `errno`.
pub fn errno() -> i32 {
    // SAFETY: __errno_location returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// Opens `path` for writing: `exclusive` fails with `EEXIST` if it exists, otherwise it
/// is truncated.
pub fn create(path: &CStr, exclusive: bool) -> Result<i32, i32> {
    let mode = if exclusive {
        libc::O_EXCL
    } else {
        libc::O_TRUNC
    };
    // SAFETY: `path` is NUL-terminated.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC | mode,
            0o644,
        )
    };
    if fd < 0 {
        Err(errno())
    } else {
        Ok(fd)
    }
}

/// Writes all of `bytes` to `fd`, retrying on `EINTR` and short writes.
pub fn write_all(fd: i32, mut bytes: &[u8]) -> Result<(), i32> {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid readable slice.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            let e = errno();
            if e == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(libc::EIO);
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

/// Closes `fd`, ignoring errors.
pub fn close(fd: i32) {
    // SAFETY: closing a descriptor we opened; no memory is involved.
    unsafe { libc::close(fd) };
}

/// Reads up to `buf.len()` bytes of the file at `path`; 0 if it cannot be read.
pub fn read_file(path: &CStr, buf: &mut [u8]) -> usize {
    // SAFETY: `path` is NUL-terminated.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return 0;
    }
    let mut len = 0;
    while len < buf.len() {
        // SAFETY: the destination is the unfilled tail of `buf`.
        let n = unsafe { libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            break;
        }
        len += n as usize;
    }
    close(fd);
    len
}

/// The target of the symbolic link `path` (for `/proc/self/exe`), or empty.
pub fn read_link<'a>(path: &CStr, buf: &'a mut [u8]) -> &'a [u8] {
    // SAFETY: `path` is NUL-terminated and `buf` writable for its length.
    let n = unsafe { libc::readlink(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        &[]
    } else {
        &buf[..n as usize]
    }
}

fn clock(id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(id, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// Monotonic nanoseconds.
pub fn monotonic_nanos() -> u64 {
    clock(libc::CLOCK_MONOTONIC)
}

/// Wall-clock nanoseconds since the Unix epoch.
pub fn realtime_nanos() -> u64 {
    clock(libc::CLOCK_REALTIME)
}

/// The kernel id of the calling thread.
pub fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

/// This process's id.
pub fn getpid() -> u32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() as u32 }
}

/// The parent process's id.
pub fn getppid() -> u32 {
    // SAFETY: getppid has no preconditions.
    unsafe { libc::getppid() as u32 }
}

/// Sleeps for `ms` milliseconds (less if a signal arrives).
pub fn sleep_ms(ms: u64) {
    let ts = libc::timespec {
        tv_sec: (ms / 1000) as libc::time_t,
        tv_nsec: ((ms % 1000) * 1_000_000) as libc::c_long,
    };
    // SAFETY: `ts` is valid; the remainder pointer may be null.
    unsafe { libc::nanosleep(&ts, core::ptr::null_mut()) };
}

/// The page size.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as u64
    } else {
        4096
    }
}

/// A NUL-terminated path (or message) built in place, up to 4 KiB; longer input is cut.
pub struct TextBuf {
    bytes: [u8; 4096],
    len: usize,
}

impl TextBuf {
    /// Empty.
    pub const fn new() -> Self {
        TextBuf {
            bytes: [0; 4096],
            len: 0,
        }
    }

    /// Appends bytes (truncating, always leaving room for the NUL).
    pub fn push(&mut self, b: &[u8]) -> &mut Self {
        let n = b.len().min(self.bytes.len() - 1 - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
        self
    }

    /// Appends `n` in decimal.
    pub fn push_u64(&mut self, mut n: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..])
    }

    /// The text without the NUL.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The text as a C string.
    pub fn as_cstr(&mut self) -> &CStr {
        self.bytes[self.len] = 0;
        // Interior NULs would end the string early; paths from the environment have none.
        CStr::from_bytes_until_nul(&self.bytes[..=self.len]).unwrap_or(c"")
    }
}

/// Writes `text` to standard error in one `write`.
pub fn print_error(text: &[u8]) {
    let _ = write_all(2, text);
}

/// The text of an `errno` value (`strerror`), for messages.
pub fn strerror(e: i32) -> &'static [u8] {
    match e {
        libc::ENOSPC => b"No space left on device",
        libc::EDQUOT => b"Disk quota exceeded",
        libc::EACCES => b"Permission denied",
        libc::ENOENT => b"No such file or directory",
        libc::EROFS => b"Read-only file system",
        libc::EIO => b"Input/output error",
        libc::EFBIG => b"File too large",
        libc::ENOMEM => b"Out of memory",
        _ => b"error",
    }
}
