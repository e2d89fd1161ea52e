//! The leak check the checker's exit handler runs: the scan over the checker's block
//! table, `leak:` suppressions, and the report through the checker's output (stderr and
//! the log file).
//!
//! The block table's lock is held from before the scan lists the blocks until the
//! classification has read them: no thread can register or release a block meanwhile
//! (one that tries waits on the lock, and is stopped there like any other). It is let go
//! before the report is built, since symbolising and reading the stack depot take other
//! locks that a waiting thread may hold. A backing whose `owns` answers for memory it
//! does not manage (the libc backing of tests answers for every mapped page) would hide
//! every root and make every block a leak: then the check is skipped, with a warning.

use super::{find_leaks, write_report, LiveBlock, LiveBlocks};
use crate::checker::{backing, options};
use crate::{registry, report, stacks};
use memward_symbolize::Symbolizer;

/// The checker's live blocks, listed from its table while the other threads are
/// stopped (the caller holds the table's lock).
struct Table {
    estimate: usize,
}

impl LiveBlocks for Table {
    fn estimate(&self) -> usize {
        self.estimate
    }

    fn for_each(&self, f: &mut dyn FnMut(LiveBlock)) {
        // SAFETY: `check` holds the table's lock for the whole scan.
        unsafe {
            registry::for_each_live_unlocked(&mut |b| {
                f(LiveBlock {
                    start: b.start,
                    size: b.size,
                    stack: u64::from(b.alloc_stack),
                })
            })
        };
    }
}

/// Scans for leaks and prints the report; whether any leak was reported (not
/// suppressed). Runs in the checker's unchecked section, at exit.
///
/// The scan reads this thread's stack from its own entry up, so the frames of the exit
/// handler's earlier work (the checks of every block, which handled every block's
/// address) must not linger where the scan's callers' frames now lie: the stack below
/// this tiny frame is zeroed first.
#[inline(never)]
pub(crate) fn check() -> bool {
    scrub_stack_below();
    check_on_clean_stack()
}

/// Zeroes 32 KiB of this thread's stack below the caller's frame.
#[inline(never)]
fn scrub_stack_below() {
    let mut dead = [0u8; 32 << 10];
    std::hint::black_box(&mut dead);
}

#[inline(never)]
fn check_on_clean_stack() -> bool {
    let owns = backing().owns;
    let on_this_stack = 0u8;
    if owns(&on_this_stack) {
        report::warn("leak check skipped: the backing counts stack memory as its own");
        return false;
    }
    let estimate = registry::slot_count();
    registry::lock_all();
    let owns_address = move |p: usize| owns(p as *const u8);
    // SAFETY: the table lists readable blocks only; with its lock held none is added or
    // released; a block being reallocated stays listed (FREEING) until its copy is done;
    // `owns` takes no lock.
    let result = unsafe { find_leaks(&Table { estimate }, &owns_address) };
    // SAFETY: taken above with `lock_all` on this thread; no guard exists.
    unsafe { registry::unlock_all() };
    let leaks = match result {
        Ok(leaks) => leaks,
        Err(e) => {
            report::warn(&format!("leak check skipped: {e}"));
            return false;
        }
    };
    if leaks.is_empty() {
        return false;
    }
    let mut sym = Symbolizer::for_this_process().unwrap_or_else(|_| Symbolizer::new(vec![]));
    let depth = options().depth.max(1);
    let frames = |id: u64| {
        let mut f = stacks::frames(id as u32);
        f.truncate(depth);
        f
    };
    let mut records = leaks.records();
    records.retain(|r| !suppressed(&frames(r.stack), &mut sym));
    if records.is_empty() {
        return false;
    }
    let text = write_report(
        &records,
        leaks.unsuspended_threads(),
        &mut |id| frames(id),
        &mut sym,
    );
    report::write_out(text.as_bytes());
    true
}

/// Whether a `leak:` suppression matches a function, file or module of `stack`.
fn suppressed(stack: &[u64], sym: &mut Symbolizer) -> bool {
    let suppressions = &options().suppressions;
    if suppressions.list.is_empty() {
        return false;
    }
    let mut names: Vec<String> = Vec::new();
    for &address in stack {
        let loc = sym.symbolize(address).clone();
        if let Some(m) = loc.module {
            names.push(sym.modules()[m].path.to_string_lossy().into_owned());
        }
        for f in loc.frames {
            names.extend(f.file);
            names.push(f.name);
        }
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    suppressions.find("leak", &names).is_some()
}
