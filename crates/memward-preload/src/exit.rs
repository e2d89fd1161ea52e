//! What happens at process exit: `MEMWARD_STATS=1` prints statistics to stderr, and
//! `MEMWARD_SUMMARY_FILE=PATH` writes `PATH.<pid>` with `key value` lines that
//! `memward run` reads for its summary. A `.fini_array` entry runs this after `atexit`
//! handlers and C++ static destructors, without registering anything at startup.

use crate::report::{self, StackBuf};
use core::fmt::Write;

extern "C" fn at_exit() {
    if memward::stats_requested_at_exit() {
        report::print_stats();
    }
    write_summary();
}

#[used]
#[link_section = ".fini_array"]
static AT_EXIT: extern "C" fn() = at_exit;

fn write_summary() {
    // SAFETY: getenv only reads the environment.
    let base = unsafe { libc::getenv(c"MEMWARD_SUMMARY_FILE".as_ptr()) };
    if base.is_null() {
        return;
    }
    // SAFETY: getenv returned a NUL-terminated string.
    let base = unsafe { core::ffi::CStr::from_ptr(base) }.to_bytes();
    let mut path = StackBuf::new();
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let _ = write!(
        path,
        "{}.{pid}\0",
        core::str::from_utf8(base).unwrap_or("/dev/null")
    );
    let s = memward::stats();
    let mut text = StackBuf::new();
    let _ = write!(
        text,
        "peak_in_use_bytes {}\nin_use_bytes {}\nallocations {}\nfrees {}\nmapped_bytes {}\npeak_mapped_bytes {}\nresident_bytes {}\n",
        s.peak_in_use_bytes, s.in_use_bytes, s.allocations, s.frees, s.mapped_bytes, s.peak_mapped_bytes, s.resident_bytes
    );
    // SAFETY: `path` holds a NUL-terminated path.
    let fd = unsafe {
        libc::open(
            path.as_bytes().as_ptr().cast(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o600,
        )
    };
    if fd >= 0 {
        text.write_to_fd(fd);
        // SAFETY: fd was opened above.
        unsafe { libc::close(fd) };
    }
}
