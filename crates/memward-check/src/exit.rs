//! The end of the process: an `atexit` handler, registered at configuration (before the
//! program's own handlers, so it runs after them), checks the red zones of every block
//! still known and the poison of every freed block in quarantine, then runs the leak
//! scan (`src/leaks/`, when leaks are on), and ends the process with the exit code if
//! any error was reported (with `MEMWARD_CHECK_KEEP_GOING=1` the errors did not end it
//! when they were found).
//!
//! The handler runs outside any entry point, so its work runs inside the backing's
//! `unchecked`: what it allocates is not checked (and not reported as a leak).

use crate::checker::{backing, check_all_blocks};
use crate::report;

/// Registers the handler.
pub fn register() {
    // SAFETY: `at_exit` is an `extern "C" fn()` that may run at any exit.
    unsafe { libc::atexit(at_exit) };
}

extern "C" fn at_exit() {
    (backing().unchecked)(&mut || {
        check_all_blocks();
        // The leak scan (src/leaks/) runs here, after the block checks.
        if report::error_count() > 0 {
            report::die();
        }
    });
}
