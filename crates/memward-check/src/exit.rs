//! The end of the process: an `atexit` handler, registered at configuration (before the
//! program's own handlers, so it runs after them), checks the red zones of every block
//! still known and the poison of every freed block in quarantine, then runs the leak
//! scan (`src/leaks/`, when leaks are on), and ends the process with the exit code if
//! any error was reported (with `MEMWARD_CHECK_KEEP_GOING=1` the errors did not end it
//! when they were found).
//!
//! The handler runs outside any entry point, so its work runs inside the backing's
//! `unchecked`: what it allocates is not checked (and not reported as a leak).

use crate::checker::{backing, check_all_blocks, options};
use crate::{leaks, registry, report, stacks};

/// Registers the handler.
pub fn register() {
    // SAFETY: `at_exit` is an `extern "C" fn()` that may run at any exit.
    unsafe { libc::atexit(at_exit) };
}

extern "C" fn at_exit() {
    scrub_stack();
    (backing().unchecked)(&mut || {
        check_all_blocks();
        // Again: the block checks just handled every block's address in frames that
        // lie where the leak scan's callers' frames go now.
        scrub_stack();
        if options().leaks {
            check_leaks();
        }
        if report::error_count() > 0 {
            report::die();
        }
    });
}

/// Runs the leak scan over the live blocks and prints its report (leaks whose stack
/// matches a `leak:` suppression left out).
fn check_leaks() {
    // The stack depot's reserved mappings are the checker's, not the program's: never
    // roots (and mostly untouched pages, each a page fault to read).
    let own = stacks::own_mappings();
    let owns = |a: usize| {
        (backing().owns)(a as *const u8) || own.iter().any(|&(lo, hi)| a >= lo && a < hi)
    };
    let found = {
        let blocks = registry::lock_live_blocks();
        // SAFETY: the listed blocks are live checker blocks, readable for their size;
        // the registry's locks keep them from being freed (or new ones added) until
        // the scan returns; the engine's `owns` takes no lock.
        unsafe { leaks::find_leaks(&blocks, &owns) }
    };
    let leaks = match found {
        Ok(l) => l,
        Err(e) => {
            report::warn(&format!("leak check skipped: {e}"));
            return;
        }
    };
    let records: Vec<_> = leaks
        .records()
        .into_iter()
        .filter(|r| !report::suppressed("leak", &stacks::frames(r.stack as u32)))
        .collect();
    if records.is_empty() {
        return;
    }
    let stacks: std::collections::HashMap<u64, Vec<u64>> = records
        .iter()
        .map(|r| {
            (
                r.stack,
                report::program_frames(&stacks::frames(r.stack as u32)),
            )
        })
        .collect();
    let text = report::with_symbolizer(|sym| {
        leaks::write_report(
            &records,
            leaks.unsuspended_threads(),
            &mut |id| stacks.get(&id).cloned().unwrap_or_default(),
            sym,
        )
    });
    if let Some(text) = text {
        report::write_out(text.as_bytes());
        report::count_error();
    }
}

/// Zeroes 64 KiB of stack below this point before the checks run there. The region was
/// last used by the program's deepest calls, the allocator's among them, whose dead
/// frames still hold copies of pointers (a block's address passes through `malloc`'s
/// frames on its way out); the exit path's frames, placed over them, would let the
/// conservative leak scan read those copies in their unwritten slots and take a leaked
/// block for a reachable one.
#[inline(never)]
fn scrub_stack() {
    let mut area = [0u8; 64 * 1024];
    std::hint::black_box(&mut area);
}
