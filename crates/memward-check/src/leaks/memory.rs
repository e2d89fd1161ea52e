//! Reading the process's memory and a few `/proc` files without allocating and without
//! crashing: the parts of the scan that run while the other threads are stopped.
//!
//! Root memory is whatever the process has mapped writable, and not all of it can be
//! read: a private file mapping longer than its file raises `SIGBUS` past the end of the
//! file, and a device mapping may not be memory at all. So roots are copied with
//! `process_vm_readv` on the process itself, which reports such pages as a short read
//! instead of a signal; an unreadable page is skipped. Where a sandbox forbids that
//! system call (it answers `EPERM` or `ENOSYS`), roots are read directly, and only
//! anonymous mappings and files' own extents are scanned (see `roots`). Live blocks are
//! always read directly: they are memory the checker handed out and still owns.
//!
//! `/proc/self/maps` and `/proc/self/task` are read with raw `read` and `getdents64` into
//! buffers reserved before the threads were stopped, because a stopped thread may hold a
//! lock the allocator needs.

use super::blocks::LiveBlock;
use core::ffi::CStr;

/// Words per root chunk (64 KiB): one system call per chunk.
const CHUNK_WORDS: usize = 8192;
const WORD: usize = core::mem::size_of::<usize>();
const PAGE: usize = 4096;

/// Calls `f` with every aligned word of the live block `b`.
///
/// # Safety
/// `b` is memory the checker handed out and has not taken back: readable for `b.size`
/// bytes, and not being written (the other threads are stopped or locked out).
pub(crate) unsafe fn block_words(b: &LiveBlock, mut f: impl FnMut(usize)) {
    let first = b.start.next_multiple_of(WORD);
    let end = b.start.saturating_add(b.size);
    let mut at = first;
    while at.saturating_add(WORD) <= end {
        // SAFETY: `at..at + WORD` lies inside the block, which the caller guarantees is
        // readable; a volatile read takes the bytes as they are, initialised or not, as a
        // conservative scan must.
        f(unsafe { core::ptr::read_volatile(at as *const usize) });
        at += WORD;
    }
}

/// Copies root memory into a buffer of its own and hands out its words.
pub(crate) struct RootReader {
    buf: Vec<usize>,
    remote: bool,
}

impl RootReader {
    /// Allocates the buffer (call before stopping threads) and finds out whether
    /// `process_vm_readv` works here.
    pub(crate) fn new() -> RootReader {
        let mut reader = RootReader {
            buf: vec![0; CHUNK_WORDS],
            remote: true,
        };
        let probe = [0x5a5a_usize; 4];
        reader.remote = reader.copy(probe.as_ptr() as usize, 4 * WORD).is_ok();
        reader
    }

    /// A reader that copies directly, as where `process_vm_readv` is refused.
    #[cfg(test)]
    pub(crate) fn direct() -> RootReader {
        RootReader {
            buf: vec![0; CHUNK_WORDS],
            remote: false,
        }
    }

    /// Whether unreadable pages are detected (else the caller must only pass memory that
    /// is known to be readable).
    pub(crate) fn detects_faults(&self) -> bool {
        self.remote
    }

    /// Calls `f` with every aligned word of `[lo, hi)` that can be read; `lo` and `hi`
    /// are rounded inwards to words.
    pub(crate) fn scan(&mut self, lo: usize, hi: usize, mut f: impl FnMut(usize)) {
        let mut at = lo.next_multiple_of(WORD);
        let hi = hi & !(WORD - 1);
        while at < hi {
            let len = (hi - at).min(CHUNK_WORDS * WORD);
            match self.copy(at, len) {
                Ok(n) if n > 0 => {
                    self.buf[..n / WORD].iter().for_each(|&w| f(w));
                    at += n;
                }
                // Unreadable: skip to the next page.
                _ => at = (at + 1).next_multiple_of(PAGE),
            }
        }
    }

    /// Copies `len` bytes at `addr` into the buffer; how many bytes came (a short count
    /// stops at the first unreadable page).
    fn copy(&mut self, addr: usize, len: usize) -> Result<usize, i32> {
        debug_assert!(len <= self.buf.len() * WORD);
        if !self.remote {
            // SAFETY: without `process_vm_readv` the caller only passes readable memory
            // (anonymous mappings, files within their extent; see `roots`), and the
            // buffer holds `len` bytes.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    addr as *const u8,
                    self.buf.as_mut_ptr().cast::<u8>(),
                    len,
                )
            };
            return Ok(len);
        }
        let local = libc::iovec {
            iov_base: self.buf.as_mut_ptr().cast(),
            iov_len: len,
        };
        let remote = libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: len,
        };
        // SAFETY: the local iovec is our buffer (`len` bytes fit); the remote one is only
        // read, by the kernel, which checks it.
        let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
        if n < 0 {
            return Err(errno());
        }
        Ok(n as usize)
    }
}

/// Why a `/proc` file could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// The buffer filled up: retry with a larger one.
    Full,
    /// The system's error number.
    Os(i32),
}

/// Reads the file at `path` into `buf` (cleared first) without growing it.
pub(crate) fn read_file(path: &CStr, buf: &mut Vec<u8>) -> Result<(), ReadError> {
    buf.clear();
    let fd = Fd::open(path, libc::O_RDONLY)?;
    loop {
        let spare = buf.spare_capacity_mut();
        if spare.is_empty() {
            return Err(ReadError::Full);
        }
        // SAFETY: reads at most `spare.len()` bytes into the vector's spare capacity.
        let n = unsafe { libc::read(fd.0, spare.as_mut_ptr().cast(), spare.len()) };
        match n {
            0 => return Ok(()),
            n if n < 0 && errno() == libc::EINTR => continue,
            n if n < 0 => return Err(ReadError::Os(errno())),
            // SAFETY: the kernel initialised `n` more bytes after `len`.
            n => unsafe { buf.set_len(buf.len() + n as usize) },
        }
    }
}

/// Calls `f` with the id of every thread of this process, from `/proc/self/task`.
pub(crate) fn list_threads(buf: &mut Vec<u8>, mut f: impl FnMut(i32)) -> Result<(), ReadError> {
    let fd = Fd::open(c"/proc/self/task", libc::O_RDONLY | libc::O_DIRECTORY)?;
    loop {
        buf.clear();
        let spare = buf.spare_capacity_mut();
        // SAFETY: getdents64 writes at most `spare.len()` bytes of records into it.
        let n =
            unsafe { libc::syscall(libc::SYS_getdents64, fd.0, spare.as_mut_ptr(), spare.len()) };
        if n < 0 {
            return Err(ReadError::Os(errno()));
        }
        if n == 0 {
            return Ok(());
        }
        // SAFETY: the kernel initialised `n` bytes.
        unsafe { buf.set_len(n as usize) };
        let mut at = 0;
        // linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, name (NUL-terminated).
        while at + 19 < buf.len() {
            let reclen = usize::from(u16::from_ne_bytes([buf[at + 16], buf[at + 17]]));
            if reclen == 0 || at + reclen > buf.len() {
                break;
            }
            let name = &buf[at + 19..at + reclen];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            if let Some(tid) = decimal(name) {
                f(tid);
            }
            at += reclen;
        }
    }
}

fn decimal(digits: &[u8]) -> Option<i32> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    core::str::from_utf8(digits).ok()?.parse().ok()
}

/// A file descriptor closed on drop.
struct Fd(i32);

impl Fd {
    fn open(path: &CStr, flags: i32) -> Result<Fd, ReadError> {
        // SAFETY: `path` is NUL-terminated.
        let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) };
        if fd < 0 {
            Err(ReadError::Os(errno()))
        } else {
            Ok(Fd(fd))
        }
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor.
        unsafe { libc::close(self.0) };
    }
}

/// The calling thread's `errno`.
pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// The calling thread's id.
pub(crate) fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// `arch_prctl`'s request for the `fs` base.
const ARCH_GET_FS: libc::c_int = 0x1003;

/// The calling thread's thread pointer: the `fs` base, where x86-64 keeps the thread
/// control block (glibc's thread descriptor, `pthread_self()`); 0 if unknown. One system
/// call, async-signal-safe, and safe on a thread that has no TLS (nothing is read
/// through `fs`).
pub(crate) fn thread_pointer() -> usize {
    let mut fs: usize = 0;
    // SAFETY: ARCH_GET_FS stores the fs base into the word `fs` points to.
    let r = unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_GET_FS, &mut fs as *mut usize) };
    if r == 0 {
        fs
    } else {
        0
    }
}

/// The registers that may hold the caller's pointers across a call (x86-64 SysV:
/// `rbx`, `rbp`, `r12`-`r15`) and the stack pointer, last.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Registers(pub(crate) [usize; 7]);

impl Registers {
    /// The stack pointer.
    pub(crate) fn sp(&self) -> usize {
        self.0[6]
    }
}

/// The calling function's callee-saved registers and stack pointer. Inlined into the
/// scan's entry, so the stack pointer is that of the entry's frame: everything above it
/// is the callers' frames, which the scan reads as the thread's stack.
#[inline(always)]
pub(crate) fn current_registers() -> Registers {
    let mut r = [0usize; 7];
    // SAFETY: stores seven registers into the seven words of `r`; nothing else is touched.
    unsafe {
        core::arch::asm!(
            "mov [{p}], rbx",
            "mov [{p} + 8], rbp",
            "mov [{p} + 16], r12",
            "mov [{p} + 24], r13",
            "mov [{p} + 32], r14",
            "mov [{p} + 40], r15",
            "mov [{p} + 48], rsp",
            p = in(reg) r.as_mut_ptr(),
            options(nostack, preserves_flags),
        )
    };
    Registers(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_proc_file_and_reports_a_small_buffer() {
        let mut buf = Vec::with_capacity(1 << 20);
        read_file(c"/proc/self/maps", &mut buf).unwrap();
        assert!(buf.starts_with(b"") && buf.contains(&b'\n'));
        let mut small = Vec::with_capacity(16);
        assert_eq!(
            read_file(c"/proc/self/maps", &mut small),
            Err(ReadError::Full)
        );
        let mut any = Vec::with_capacity(16);
        assert!(matches!(
            read_file(c"/nonexistent", &mut any),
            Err(ReadError::Os(libc::ENOENT))
        ));
    }

    #[test]
    fn the_thread_pointer_is_the_thread_descriptor() {
        // glibc's pthread_t is the descriptor's address; the TCB starts with itself.
        let tp = thread_pointer();
        // SAFETY: pthread_self has no preconditions.
        assert_eq!(tp, unsafe { libc::pthread_self() } as usize);
        // SAFETY: the calling thread's TCB is readable for its life.
        assert_eq!(unsafe { *(tp as *const usize) }, tp);
    }

    #[test]
    fn lists_this_thread() {
        let mut buf = Vec::with_capacity(4096);
        let mut tids = Vec::new();
        list_threads(&mut buf, |t| tids.push(t)).unwrap();
        assert!(tids.contains(&gettid()), "{tids:?}");
    }

    #[test]
    fn root_reads_skip_unreadable_pages() {
        // Three pages, the middle one inaccessible.
        // SAFETY: a fresh anonymous mapping; only it is touched and then unmapped.
        unsafe {
            let p = libc::mmap(
                core::ptr::null_mut(),
                3 * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            ) as *mut usize;
            assert_ne!(p as *mut libc::c_void, libc::MAP_FAILED);
            *p = 11;
            *p.add(2 * PAGE / WORD) = 33;
            libc::mprotect(p.add(PAGE / WORD).cast(), PAGE, libc::PROT_NONE);
            let mut reader = RootReader::new();
            if !reader.detects_faults() {
                // A sandbox without process_vm_readv: roots are read directly, and
                // only memory known to be readable is passed (see `roots`).
                eprintln!("process_vm_readv refused here; fault skipping not tested");
                libc::munmap(p.cast(), 3 * PAGE);
                return;
            }
            let mut seen = Vec::new();
            reader.scan(p as usize, p as usize + 3 * PAGE, |w| {
                if w != 0 {
                    seen.push(w)
                }
            });
            assert_eq!(seen, vec![11, 33]);
            libc::munmap(p.cast(), 3 * PAGE);
        }
    }

    #[test]
    fn block_words_reads_the_aligned_words_inside() {
        let words = [1usize, 2, 3, 4];
        let b = LiveBlock {
            start: words.as_ptr() as usize,
            size: 3 * WORD + 5,
            stack: 0,
        };
        let mut seen = Vec::new();
        // SAFETY: `words` is readable for the block's size.
        unsafe { block_words(&b, |w| seen.push(w)) };
        assert_eq!(seen, vec![1, 2, 3]);
    }
}
