//! The checker driven for real: each scenario runs in a child process (this test binary,
//! re-executed with `MEMWARD_CHECK_TEST_CHILD=1` and the scenario's environment), where
//! `configure_from_env` sets the checker up over a libc-backed `Backing` and the scenario
//! calls the entry points as the engine would. Errors end the child as they end a checked
//! program; the parent asserts on its stderr and exit status.
//!
//! libtest runs each test on a thread of its own, so the scenario's thread is the
//! second thread to reach the checker: `T1` in the reports (the process's main thread,
//! `T0`, never allocates through it here), and a thread it spawns is `T2`.

use memward_check::{Backing, Kind};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The backing for these tests: one big reserved mapping handed out by a bump pointer
/// (frees are no-ops), which also serves this binary's global allocator, as the engine
/// serves both in a real program: the checker's own tables and everything else that is
/// not a checked block are memory the backing `owns`, which the leak scan does not take
/// for roots, while the checked blocks are the program's heap.
const ARENA: usize = 16 << 30;
static ARENA_BASE: AtomicUsize = AtomicUsize::new(0);
static ARENA_NEXT: AtomicUsize = AtomicUsize::new(0);

fn arena_base() -> usize {
    let base = ARENA_BASE.load(Ordering::Acquire);
    if base != 0 {
        return base;
    }
    // SAFETY: an anonymous private mapping of reserved (not committed) memory.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            ARENA,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    assert!(p != libc::MAP_FAILED);
    match ARENA_BASE.compare_exchange(0, p as usize, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => p as usize,
        Err(winner) => {
            // SAFETY: our mapping, unused.
            unsafe { libc::munmap(p, ARENA) };
            winner
        }
    }
}

fn arena_alloc(size: usize, align: usize) -> *mut u8 {
    let base = arena_base();
    let mut next = ARENA_NEXT.load(Ordering::Relaxed);
    loop {
        let start = (base + next + align - 1) & !(align - 1);
        let end = start - base + size;
        if end > ARENA {
            return core::ptr::null_mut();
        }
        match ARENA_NEXT.compare_exchange_weak(next, end, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return start as *mut u8,
            Err(now) => next = now,
        }
    }
}

struct Arena;

// SAFETY: blocks are disjoint ranges of the mapping, aligned as asked, never reused.
unsafe impl std::alloc::GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        arena_alloc(layout.size(), layout.align())
    }
    unsafe fn dealloc(&self, _: *mut u8, _: std::alloc::Layout) {}
}

#[global_allocator]
static GLOBAL: Arena = Arena;

unsafe fn backing_alloc(size: usize, align: usize) -> *mut u8 {
    arena_alloc(size, align)
}

unsafe fn backing_free(_: *mut u8) {}

fn backing_owns(p: *const u8) -> bool {
    let base = arena_base();
    (p as usize) >= base && (p as usize) < base + ARENA
}

static LIBC: Backing = Backing {
    alloc: backing_alloc,
    alloc_at: None,
    free: backing_free,
    owns: backing_owns,
    // No answer: a test protects a page of the arena, as the engine's reservations are.
    readable_from: |_| usize::MAX,
    unchecked: |f| f(),
};

const CHILD: &str = "MEMWARD_CHECK_TEST_CHILD";

/// In the child: sets the checker up. False in the parent (the scenario does nothing).
fn child() -> bool {
    if std::env::var_os(CHILD).is_none() {
        return false;
    }
    assert!(memward_check::configure_from_env(&LIBC));
    true
}

struct Outcome {
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    /// The value the child printed as `NAME=VALUE`.
    fn value(&self, name: &str) -> String {
        let key = format!("{name}=");
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&key))
            .unwrap_or_else(|| panic!("no {name} in stdout:\n{}", self.stdout))
            .to_string()
    }

    fn addr(&self, name: &str) -> usize {
        usize::from_str_radix(self.value(name).trim_start_matches("0x"), 16).unwrap()
    }

    fn has(&self, s: &str) -> &Self {
        assert!(
            self.stderr.contains(s),
            "stderr lacks {s:?}:\n{}\n(stdout: {})",
            self.stderr,
            self.stdout
        );
        self
    }

    fn lacks(&self, s: &str) -> &Self {
        assert!(
            !self.stderr.contains(s),
            "stderr has {s:?}:\n{}",
            self.stderr
        );
        self
    }
}

fn run(name: &str, env: &[(&str, &str)]) -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &format!("scenarios::{name}"),
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("MEMWARD_CHECK", "1")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    Outcome {
        code: out.status.code(),
        signal: out.status.signal(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A report's common frame: the 65-`=` opener, the ERROR line, frames, SUMMARY, ABORTING.
fn assert_report(o: &Outcome, headline: &str, bug: &str) {
    o.has(&format!("{}\n==", "=".repeat(65)))
        .has(&format!("==ERROR: memward: {headline}"))
        .has("    #0 0x")
        .has(&format!("\nSUMMARY: memward: {bug} "))
        .has("==ABORTING");
    assert_eq!(o.code, Some(1), "stderr:\n{}", o.stderr);
}

fn alloc(size: usize, kind: Kind) -> *mut u8 {
    // SAFETY: the checker is configured (scenarios call `child()` first).
    let p = unsafe { memward_check::alloc(size, 16, false, kind) };
    assert!(!p.is_null());
    p
}

fn free(p: *mut u8, kind: Kind) {
    // SAFETY: as in `alloc`; p is not null.
    unsafe { memward_check::free(p, kind, 0) }
}

fn show(name: &str, p: *const u8) {
    println!("\n{name}={p:p}");
}

fn hex(a: usize) -> String {
    format!("{a:#x}")
}

#[test]
fn a_correct_program_runs_silently() {
    let o = run("correct_program", &[]);
    assert_eq!(o.code, Some(0), "stderr:\n{}", o.stderr);
    assert_eq!(o.stderr, "");
    assert_eq!(o.value("DONE"), "1");
}

#[test]
fn double_free_is_reported_with_both_stacks() {
    let o = run("double_free", &[]);
    let p = o.addr("P");
    assert_report(
        &o,
        &format!("attempting double-free on {} in thread T1:", hex(p)),
        "double-free",
    );
    o.has(&format!(
        "{} is located 0 bytes inside of 13-byte region [{},{})",
        hex(p),
        hex(p),
        hex(p + 13)
    ))
    .has("\nfreed by thread T1 here:\n    #0 0x")
    .has("\npreviously allocated by thread T1 here:\n    #0 0x");
    // Frames are symbolised in-process, the checker's own frames dropped: the first
    // frame of each stack is the scenario's call.
    o.has("attempting double-free on")
        .has(":\n    #0 0x")
        .has(" in check::scenarios::double_free ")
        .has("tests/check.rs:")
        .has("\nSUMMARY: memward: double-free ")
        .has("tests/check.rs:");
    let first = o.stderr.lines().find(|l| l.starts_with("    #0 ")).unwrap();
    assert!(first.contains(" in check::free "), "{first}");
}

#[test]
fn interior_and_never_allocated_frees_are_bad_frees() {
    let o = run("interior_free", &[]);
    let p = o.addr("P");
    assert_report(
        &o,
        &format!(
            "attempting free on address which was not malloc()-ed: {} in thread T1",
            hex(p + 5)
        ),
        "bad-free",
    );
    o.has(&format!(
        "{} is located 5 bytes inside of 13-byte region [{},{})",
        hex(p + 5),
        hex(p),
        hex(p + 13)
    ))
    .has("allocated by thread T1 here:");
    let o = run("foreign_free", &[]);
    let p = o.addr("P");
    assert_report(
        &o,
        &format!(
            "attempting free on address which was not malloc()-ed: {}",
            hex(p)
        ),
        "bad-free",
    );
    o.has("is not heap memory (a stack, global or unmapped address passed to free)");
}

#[test]
fn mismatched_deallocation_is_reported() {
    let o = run("malloc_then_delete", &[]);
    let p = o.addr("P");
    assert_report(
        &o,
        &format!(
            "alloc-dealloc-mismatch (malloc vs operator delete) on {}",
            hex(p)
        ),
        "alloc-dealloc-mismatch",
    );
    o.has("==HINT: if you don't care about these errors");
    let o = run("new_array_then_delete", &[]);
    assert_report(
        &o,
        "alloc-dealloc-mismatch (operator new [] vs operator delete) on",
        "alloc-dealloc-mismatch",
    );
    let o = run("new_then_free", &[]);
    assert_report(
        &o,
        "alloc-dealloc-mismatch (operator new vs free) on",
        "alloc-dealloc-mismatch",
    );
}

#[test]
fn sized_delete_with_the_wrong_size_is_reported() {
    let o = run("wrong_sized_delete", &[]);
    let p = o.addr("P");
    assert_report(
        &o,
        &format!("new-delete-type-mismatch on {} in thread T1:", hex(p)),
        "new-delete-type-mismatch",
    );
    o.has("  size of the allocated type:   24 bytes;\n  size of the deallocated type: 16 bytes.\n");
}

#[test]
fn overflow_and_underflow_writes_are_found_at_free() {
    let o = run("overflow_write", &[("MEMWARD_CHECK_GUARD", "none")]);
    let p = o.addr("P");
    assert_report(
        &o,
        &format!(
            "heap-buffer-overflow on address {} in thread T1 (found at free",
            hex(p + 13)
        ),
        "heap-buffer-overflow",
    );
    o.has(&format!("WRITE of size 2 at {}", hex(p + 13)))
        .has(&format!(
            "{} is located 0 bytes after 13-byte region [{},{})",
            hex(p + 13),
            hex(p),
            hex(p + 13)
        ))
        .has("allocated by thread T1 here:");
    let o = run("underflow_write", &[("MEMWARD_CHECK_GUARD", "none")]);
    let p = o.addr("P");
    assert_report(
        &o,
        "heap-buffer-overflow on address",
        "heap-buffer-overflow",
    );
    o.has(&format!(
        "{} is located 1 bytes before 13-byte region",
        hex(p - 1)
    ));
}

#[test]
fn writes_after_free_are_found_when_the_block_leaves_quarantine() {
    let o = run(
        "write_after_free_then_churn",
        &[
            ("MEMWARD_CHECK_GUARD", "none"),
            ("MEMWARD_CHECK_QUARANTINE_MIB", "1"),
        ],
    );
    let p = o.addr("P");
    assert_report(
        &o,
        &format!(
            "heap-use-after-free on address {} (found when the block left quarantine",
            hex(p + 3)
        ),
        "heap-use-after-free",
    );
    o.has(&format!(
        "{} is located 3 bytes inside of 40-byte region",
        hex(p + 3)
    ))
    .has("freed by thread T1 here:")
    .has("previously allocated by thread T1 here:");
    // The churn ran until the block left the quarantine, not to its end.
    assert!(!o.stdout.contains("CHURNED=1"));
}

#[test]
fn writes_after_free_are_found_at_exit() {
    let o = run(
        "write_after_free_then_exit",
        &[("MEMWARD_CHECK_GUARD", "none")],
    );
    assert_report(&o, "heap-use-after-free on address", "heap-use-after-free");
    o.has("(found at exit: freed memory was changed)");
    assert_eq!(o.value("RETURNED"), "1");
}

#[test]
fn fills_stop_at_their_limits() {
    // New blocks: the first MEMWARD_CHECK_MALLOC_FILL_MAX bytes (4096 by default).
    let o = run("large_block_fill", &[]);
    assert_eq!(o.value("FILLED"), "4096", "{}", o.stderr);
    let o = run(
        "large_block_fill",
        &[("MEMWARD_CHECK_MALLOC_FILL_MAX", "100")],
    );
    assert_eq!(o.value("FILLED"), "100", "{}", o.stderr);
    // Freed blocks: writes inside the poisoned prefix are found, past it they are not
    // (MEMWARD_CHECK_FREE_FILL_MAX, 4096 by default), but for stripes (64 bytes of each
    // KiB, up to 64 KiB).
    let limit = [
        ("MEMWARD_CHECK_GUARD", "none"),
        ("MEMWARD_CHECK_FREE_FILL_MAX", "256"),
    ];
    let o = run("write_after_free_at_200", &limit);
    assert_report(&o, "heap-use-after-free on address", "heap-use-after-free");
    let o = run("write_after_free_at_900", &limit);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(!o.stderr.contains("ERROR"), "{}", o.stderr);
    let o = run(
        "write_after_free_at_900",
        &[("MEMWARD_CHECK_GUARD", "none")],
    );
    assert_report(&o, "heap-use-after-free on address", "heap-use-after-free");
    let none = [("MEMWARD_CHECK_GUARD", "none")];
    // A 40,000-byte block: 5,000 is between stripes, 5,130 in the one at 5,120, and a
    // 2,000-byte memset from 10,000 crosses the stripes at 10,240 and 11,264.
    let o = run("write_after_free_in_a_large_block_between_stripes", &none);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(!o.stderr.contains("ERROR"), "{}", o.stderr);
    let o = run("write_after_free_in_a_large_block_on_a_stripe", &none);
    assert_report(&o, "heap-use-after-free on address", "heap-use-after-free");
    o.has("is located 5130 bytes inside of 40000-byte region");
    let o = run("memset_after_free_across_stripes", &none);
    assert_report(&o, "heap-use-after-free on address", "heap-use-after-free");
    o.has("is located 10240 bytes inside of 40000-byte region");
}

#[test]
fn overflow_left_in_a_live_block_is_found_at_exit() {
    let o = run("overflow_then_exit", &[("MEMWARD_CHECK_GUARD", "none")]);
    assert_report(
        &o,
        "heap-buffer-overflow on address",
        "heap-buffer-overflow",
    );
    o.has("(found at exit: the red zone was overwritten)")
        .has("allocated by thread T1 here:");
}

#[test]
fn guard_pages_catch_reads_past_the_end_at_the_access() {
    let o = run("read_past_end", &[("MEMWARD_CHECK_GUARD", "all")]);
    let p = o.addr("P");
    assert_report(
        &o,
        &format!("heap-buffer-overflow on address {} at pc 0x", hex(p + 32)),
        "heap-buffer-overflow",
    );
    o.has(&format!(
        "READ of unknown size at {} thread T1",
        hex(p + 32)
    ))
    .has(&format!(
        "{} is located 0 bytes after 32-byte region [{},{})",
        hex(p + 32),
        hex(p),
        hex(p + 32)
    ))
    .has("allocated by thread T1 here:");
    // A block whose size is not a multiple of its alignment keeps a slack before the
    // guard page; a write there is found at free.
    let o = run("write_into_guard_slack", &[("MEMWARD_CHECK_GUARD", "all")]);
    let p = o.addr("P");
    assert_eq!(
        (p + 16) % 4096,
        0,
        "a 13-byte block ends 3 bytes before the guard page"
    );
    assert_report(
        &o,
        &format!(
            "heap-buffer-overflow on address {} in thread T1 (found at free",
            hex(p + 13)
        ),
        "heap-buffer-overflow",
    );
}

#[test]
fn guard_pages_catch_reads_and_writes_after_free() {
    let o = run("read_after_free", &[("MEMWARD_CHECK_GUARD", "all")]);
    let p = o.addr("P");
    assert_report(
        &o,
        &format!("heap-use-after-free on address {} at pc 0x", hex(p + 8)),
        "heap-use-after-free",
    );
    o.has(&format!("READ of unknown size at {} thread T1", hex(p + 8)))
        .has("is located 8 bytes inside of 100-byte region")
        .has("freed by thread T1 here:")
        .has("previously allocated by thread T1 here:");
    let o = run("write_after_free", &[("MEMWARD_CHECK_GUARD", "all")]);
    assert_report(&o, "heap-use-after-free on address", "heap-use-after-free");
    o.has("WRITE of unknown size at");
}

#[test]
fn guarded_blocks_are_recognised_while_protected() {
    // A double free of a guarded block in quarantine (its data pages protected): the
    // header on its own page is read, nothing faults.
    let o = run("double_free", &[("MEMWARD_CHECK_GUARD", "all")]);
    let p = o.addr("P");
    assert_report(
        &o,
        &format!("attempting double-free on {} in thread T1:", hex(p)),
        "double-free",
    );
    o.has("freed by thread T1 here:");
    // An interior pointer into a protected block: a bad free naming the block, found
    // without reading the protected page.
    let o = run(
        "interior_free_after_free",
        &[("MEMWARD_CHECK_GUARD", "all")],
    );
    let p = o.addr("P");
    assert_report(
        &o,
        &format!(
            "attempting free on address which was not malloc()-ed: {}",
            hex(p + 8)
        ),
        "bad-free",
    );
    o.has("is located 8 bytes inside of 100-byte region")
        .has("freed by thread T1 here:");
}

#[test]
fn a_wild_free_after_an_inaccessible_page_is_a_bad_free() {
    // The header's place (48 bytes before) is in a PROT_NONE page of backing memory, as
    // the engine's reservations are: reported, not a fault in the checker.
    let o = run("free_after_protected_page", &[]);
    let p = o.addr("P");
    assert_report(
        &o,
        &format!(
            "attempting free on address which was not malloc()-ed: {}",
            hex(p)
        ),
        "bad-free",
    );
}

#[test]
fn faults_that_are_not_the_checkers_keep_their_default_action() {
    let o = run("wild_read", &[("MEMWARD_CHECK_GUARD", "all")]);
    assert_eq!(o.signal, Some(libc::SIGSEGV), "stderr:\n{}", o.stderr);
    o.lacks("memward");
}

#[test]
fn keep_going_reports_every_error_and_exits_with_the_exit_code() {
    let o = run(
        "several_errors",
        &[
            ("MEMWARD_CHECK_KEEP_GOING", "1"),
            ("MEMWARD_CHECK_EXIT_CODE", "7"),
            ("MEMWARD_CHECK_GUARD", "all"),
        ],
    );
    assert_eq!(o.code, Some(7), "stderr:\n{}", o.stderr);
    o.has("attempting double-free")
        .has("attempting free on address which was not malloc()-ed")
        .has("alloc-dealloc-mismatch (malloc vs operator delete)")
        .has("READ of unknown size")
        .has("attempting to call malloc_usable_size() for pointer which is not owned")
        .lacks("ABORTING");
    assert_eq!(
        o.stderr.matches("==ERROR: memward:").count(),
        5,
        "{}",
        o.stderr
    );
    assert_eq!(o.value("END"), "1");
}

#[test]
fn sampling_guards_a_fraction_of_blocks() {
    let o = run(
        "read_past_end_of_many",
        &[
            ("MEMWARD_CHECK_KEEP_GOING", "1"),
            ("MEMWARD_CHECK_GUARD_RATE", "8"),
        ],
    );
    let caught = o.stderr.matches("READ of unknown size").count();
    // 2000 blocks, one in 8.5 on average: about 235.
    assert!((120..=400).contains(&caught), "{caught} guarded of 2000");
    let o = run(
        "read_past_end_of_many",
        &[
            ("MEMWARD_CHECK_KEEP_GOING", "1"),
            ("MEMWARD_CHECK_GUARD", "none"),
        ],
    );
    assert_eq!(o.stderr.matches("READ of unknown size").count(), 0);
    assert_eq!(o.code, Some(0));
}

#[test]
fn realloc_moves_contents_and_rejects_freed_and_interior_pointers() {
    let o = run("realloc_freed", &[]);
    assert_report(&o, "attempting double-free on", "double-free");
    let o = run("realloc_interior", &[]);
    assert_report(
        &o,
        "attempting free on address which was not malloc()-ed",
        "bad-free",
    );
    o.has("is located 1 bytes inside of 10-byte region");
}

#[test]
fn frees_on_other_threads_name_them() {
    let o = run("free_on_another_thread_then_double_free", &[]);
    assert_report(&o, "attempting double-free on", "double-free");
    o.has("freed by thread T2 here:")
        .has("previously allocated by thread T1 here:");
}

#[test]
fn the_log_file_gets_the_report_too() {
    let dir = std::env::temp_dir().join(format!("memward-check-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let base = dir.join("report");
    let o = run(
        "double_free",
        &[("MEMWARD_CHECK_LOG_FILE", base.to_str().unwrap())],
    );
    assert_eq!(o.code, Some(1));
    let pid = o.value("PID");
    let logged = std::fs::read_to_string(format!("{}.{pid}", base.display())).unwrap();
    assert_eq!(logged, o.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn suppressions_hide_matching_reports_only() {
    let dir = std::env::temp_dir().join(format!("memward-check-supp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = std::env::current_exe().unwrap();
    let name = exe.file_name().unwrap().to_str().unwrap();
    let supp = dir.join("supp.txt");
    std::fs::write(&supp, format!("# the test binary\ndouble-free:{name}$\n")).unwrap();
    let o = run(
        "double_free",
        &[("MEMWARD_CHECK_SUPPRESSIONS", supp.to_str().unwrap())],
    );
    assert_eq!(o.code, Some(0), "stderr:\n{}", o.stderr);
    assert_eq!(o.stderr, "");
    std::fs::write(&supp, "bad-free:*\nleak:nothing\n").unwrap();
    let o = run(
        "double_free",
        &[("MEMWARD_CHECK_SUPPRESSIONS", supp.to_str().unwrap())],
    );
    assert_report(&o, "attempting double-free", "double-free");
    std::fs::write(&supp, "double free:x\n").unwrap();
    let o = run(
        "double_free",
        &[("MEMWARD_CHECK_SUPPRESSIONS", supp.to_str().unwrap())],
    );
    assert_eq!(o.code, Some(1));
    o.has("line 1: unknown kind \"double free\"");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_error_in_a_forked_child_is_reported_by_the_child() {
    let o = run("fork_then_double_free_in_child", &[]);
    assert_eq!(o.code, Some(0), "stderr:\n{}", o.stderr);
    assert_eq!(o.value("CHILD_STATUS"), "1");
    o.has("attempting double-free");
}

#[test]
fn usable_size_of_a_freed_block_is_reported() {
    let o = run("usable_size_of_freed", &[("MEMWARD_CHECK_GUARD", "none")]);
    assert_report(
        &o,
        "attempting to call malloc_usable_size() for pointer which is not owned",
        "bad-malloc_usable_size",
    );
    o.has("is located 0 bytes inside of 32-byte region")
        .has("freed by thread T1 here:");
}

#[test]
fn leaks_are_reported_at_exit_and_reachable_blocks_are_not() {
    let o = run("leak_one_keep_one", &[]);
    assert_eq!(o.code, Some(1), "stderr:\n{}", o.stderr);
    o.has("ERROR: memward: detected memory leaks")
        .has("Direct leak of 40 byte(s) in 1 object(s) allocated from:\n    #0 0x")
        .has(" in check::alloc ")
        .lacks("memward_check::")
        .has("SUMMARY: memward: 40 byte(s) leaked in 1 allocation(s).")
        .lacks("24 byte(s)");
    let o = run("leak_one_keep_one", &[("MEMWARD_CHECK_LEAKS", "0")]);
    assert_eq!(o.code, Some(0), "stderr:\n{}", o.stderr);
    assert_eq!(o.stderr, "");
    let dir = std::env::temp_dir().join(format!("memward-check-leak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let supp = dir.join("supp.txt");
    std::fs::write(&supp, "leak:leak_one_keep_one\n").unwrap();
    let o = run(
        "leak_one_keep_one",
        &[("MEMWARD_CHECK_SUPPRESSIONS", supp.to_str().unwrap())],
    );
    assert_eq!(o.code, Some(0), "stderr:\n{}", o.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The scenarios, each run in a child by the tests above (ignored when run directly).
mod scenarios {
    use super::*;

    #[test]
    #[ignore = "run in a child process"]
    fn correct_program() {
        if !child() {
            return;
        }
        let mut blocks = Vec::new();
        for i in 0..5000usize {
            let size = (i * 37) % 3000;
            let p = alloc(size, Kind::Malloc);
            // SAFETY: `size` bytes at p are the block's.
            let bytes = unsafe { std::slice::from_raw_parts_mut(p, size) };
            assert!(
                bytes.iter().all(|b| *b == 0xbe),
                "new blocks are filled with 0xbe"
            );
            bytes.fill(i as u8);
            // SAFETY: p is live.
            assert_eq!(unsafe { memward_check::usable_size(p) }, size);
            blocks.push((p, size));
        }
        for (i, (p, size)) in blocks.iter_mut().enumerate() {
            if i % 3 == 0 {
                // SAFETY: p is live; the new size is not 0.
                let q = unsafe { memward_check::realloc(*p, *size + 100, 16) };
                // SAFETY: the first `size` bytes were copied.
                let bytes = unsafe { std::slice::from_raw_parts(q, *size) };
                assert!(bytes.iter().all(|b| *b == i as u8));
                *p = q;
                *size += 100;
            }
        }
        for (p, _) in blocks {
            free(p, Kind::Malloc);
        }
        // SAFETY: configured.
        let z = unsafe { memward_check::alloc(4096, 16, true, Kind::Malloc) };
        // SAFETY: 4096 bytes at z.
        assert!(unsafe { std::slice::from_raw_parts(z, 4096) }
            .iter()
            .all(|b| *b == 0));
        free(z, Kind::Malloc);
        // SAFETY: configured.
        let a = unsafe { memward_check::alloc(100, 4096, false, Kind::Malloc) };
        assert_eq!(a as usize % 4096, 0);
        free(a, Kind::Malloc);
        let zero = alloc(0, Kind::Malloc);
        free(zero, Kind::Malloc);
        let n = alloc(24, Kind::New);
        // SAFETY: n is live and was allocated with new (sized delete, right size).
        unsafe { memward_check::free(n, Kind::New, 24) };
        let n = alloc(24, Kind::NewArray);
        free(n, Kind::NewArray);
        println!("\nDONE=1");
    }

    #[test]
    #[ignore = "run in a child process"]
    fn double_free() {
        if !child() {
            return;
        }
        // SAFETY: getpid has no preconditions.
        println!("\nPID={}", unsafe { libc::getpid() });
        let p = alloc(13, Kind::Malloc);
        show("P", p);
        free(p, Kind::Malloc);
        free(p, Kind::Malloc);
    }

    #[test]
    #[ignore = "run in a child process"]
    fn interior_free() {
        if !child() {
            return;
        }
        let p = alloc(13, Kind::Malloc);
        show("P", p);
        free(p.wrapping_add(5), Kind::Malloc);
    }

    #[test]
    #[ignore = "run in a child process"]
    fn interior_free_after_free() {
        if !child() {
            return;
        }
        let p = alloc(100, Kind::Malloc);
        show("P", p);
        free(p, Kind::Malloc);
        free(p.wrapping_add(8), Kind::Malloc);
    }

    #[test]
    #[ignore = "run in a child process"]
    fn free_after_protected_page() {
        if !child() {
            return;
        }
        let q = arena_alloc(3 * 4096, 4096);
        // SAFETY: the first page of a region this scenario owns.
        assert_eq!(
            unsafe { libc::mprotect(q.cast(), 4096, libc::PROT_NONE) },
            0
        );
        let p = q.wrapping_add(4096 + 16);
        show("P", p);
        free(p, Kind::Malloc);
    }

    #[test]
    #[ignore = "run in a child process"]
    fn foreign_free() {
        if !child() {
            return;
        }
        let x = [0u8; 16];
        show("P", x.as_ptr());
        // SAFETY: configured; the pointer is not dereferenced.
        unsafe { memward_check::foreign_free(x.as_ptr() as *mut u8, "free") };
    }

    #[test]
    #[ignore = "run in a child process"]
    fn malloc_then_delete() {
        if !child() {
            return;
        }
        let p = alloc(13, Kind::Malloc);
        show("P", p);
        free(p, Kind::New);
    }

    #[test]
    #[ignore = "run in a child process"]
    fn new_array_then_delete() {
        if !child() {
            return;
        }
        let p = alloc(40, Kind::NewArray);
        free(p, Kind::New);
    }

    #[test]
    #[ignore = "run in a child process"]
    fn new_then_free() {
        if !child() {
            return;
        }
        let p = alloc(40, Kind::New);
        free(p, Kind::Malloc);
    }

    #[test]
    #[ignore = "run in a child process"]
    fn wrong_sized_delete() {
        if !child() {
            return;
        }
        let p = alloc(24, Kind::New);
        show("P", p);
        // SAFETY: configured; p is live.
        unsafe { memward_check::free(p, Kind::New, 16) };
    }

    #[test]
    #[ignore = "run in a child process"]
    fn overflow_write() {
        if !child() {
            return;
        }
        let p = alloc(13, Kind::Malloc);
        show("P", p);
        // SAFETY: deliberately writes the two bytes after the block (its red zone,
        // which is the checker's memory and writable).
        unsafe {
            p.add(13).write_volatile(0);
            p.add(14).write_volatile(0);
        }
        free(p, Kind::Malloc);
    }

    #[test]
    #[ignore = "run in a child process"]
    fn underflow_write() {
        if !child() {
            return;
        }
        let p = alloc(13, Kind::Malloc);
        show("P", p);
        // SAFETY: deliberately writes the byte before the block (its left red zone).
        unsafe { p.sub(1).write_volatile(0) };
        free(p, Kind::Malloc);
    }

    #[test]
    #[ignore = "run in a child process"]
    fn write_after_free_then_churn() {
        if !child() {
            return;
        }
        let p = alloc(40, Kind::Malloc);
        show("P", p);
        free(p, Kind::Malloc);
        // SAFETY: deliberately writes into the freed block (in quarantine, poisoned but
        // still the checker's memory).
        unsafe { p.add(3).write_volatile(7) };
        // 4 MiB of frees through a 1 MiB quarantine push it out.
        for _ in 0..64 {
            let q = alloc(64 << 10, Kind::Malloc);
            free(q, Kind::Malloc);
        }
        println!("\nCHURNED=1");
    }

    #[test]
    #[ignore = "run in a child process"]
    fn large_block_fill() {
        if !child() {
            return;
        }
        let p = alloc(20000, Kind::Malloc);
        // SAFETY: the block's 20000 bytes.
        let bytes = unsafe { std::slice::from_raw_parts(p, 20000) };
        let filled = bytes.iter().take_while(|b| **b == 0xbe).count();
        println!("\nFILLED={filled}");
        free(p, Kind::Malloc);
    }

    /// Frees a block of `size` bytes, then writes `len` of its bytes from `offset`, then
    /// exits.
    fn write_after_free_at(size: usize, offset: usize, len: usize) {
        let p = alloc(size, Kind::Malloc);
        free(p, Kind::Malloc);
        for i in offset..offset + len {
            // SAFETY: deliberately writes the freed (unprotected: guard none) block.
            unsafe { p.add(i).write_volatile(7) };
        }
        std::process::exit(0);
    }

    #[test]
    #[ignore = "run in a child process"]
    fn write_after_free_at_200() {
        if child() {
            write_after_free_at(1000, 200, 1);
        }
    }

    #[test]
    #[ignore = "run in a child process"]
    fn write_after_free_at_900() {
        if child() {
            write_after_free_at(1000, 900, 1);
        }
    }

    #[test]
    #[ignore = "run in a child process"]
    fn write_after_free_in_a_large_block_between_stripes() {
        if child() {
            write_after_free_at(40_000, 5000, 1);
        }
    }

    #[test]
    #[ignore = "run in a child process"]
    fn write_after_free_in_a_large_block_on_a_stripe() {
        if child() {
            write_after_free_at(40_000, 5130, 1);
        }
    }

    #[test]
    #[ignore = "run in a child process"]
    fn memset_after_free_across_stripes() {
        if child() {
            write_after_free_at(40_000, 10_000, 2000);
        }
    }

    #[test]
    #[ignore = "run in a child process"]
    fn write_after_free_then_exit() {
        if !child() {
            return;
        }
        let p = alloc(40, Kind::Malloc);
        free(p, Kind::Malloc);
        // SAFETY: as in write_after_free_then_churn.
        unsafe { p.add(3).write_volatile(7) };
        println!("\nRETURNED=1");
        std::process::exit(0);
    }

    #[test]
    #[ignore = "run in a child process"]
    fn overflow_then_exit() {
        if !child() {
            return;
        }
        let p = alloc(20, Kind::Malloc);
        // SAFETY: deliberately writes the byte after the block (its red zone).
        unsafe { p.add(20).write_volatile(1) };
        std::process::exit(0);
    }

    #[test]
    #[ignore = "run in a child process"]
    fn read_past_end() {
        if !child() {
            return;
        }
        let p = alloc(32, Kind::Malloc);
        show("P", p);
        // SAFETY: deliberately reads the byte after the block: the guard page faults.
        let v = unsafe { p.add(32).read_volatile() };
        println!("\nREAD={v}");
    }

    #[test]
    #[ignore = "run in a child process"]
    fn write_into_guard_slack() {
        if !child() {
            return;
        }
        let p = alloc(13, Kind::Malloc);
        show("P", p);
        // SAFETY: deliberately writes the byte after the block (the slack before the
        // guard page, canary bytes of the checker's).
        unsafe { p.add(13).write_volatile(1) };
        free(p, Kind::Malloc);
    }

    #[test]
    #[ignore = "run in a child process"]
    fn read_after_free() {
        if !child() {
            return;
        }
        let p = alloc(100, Kind::Malloc);
        show("P", p);
        free(p, Kind::Malloc);
        // SAFETY: deliberately reads the freed (protected) block.
        let v = unsafe { p.add(8).read_volatile() };
        println!("\nREAD={v}");
    }

    #[test]
    #[ignore = "run in a child process"]
    fn write_after_free() {
        if !child() {
            return;
        }
        let p = alloc(100, Kind::Malloc);
        free(p, Kind::Malloc);
        // SAFETY: deliberately writes the freed (protected) block.
        unsafe { p.add(8).write_volatile(1) };
    }

    #[test]
    #[ignore = "run in a child process"]
    fn wild_read() {
        if !child() {
            return;
        }
        let _p = alloc(100, Kind::Malloc);
        // SAFETY: deliberately reads an unmapped address: the default action ends us.
        let v = unsafe { (16 as *const u8).read_volatile() };
        println!("\nREAD={v}");
    }

    #[test]
    #[ignore = "run in a child process"]
    fn several_errors() {
        if !child() {
            return;
        }
        let p = alloc(13, Kind::Malloc);
        free(p, Kind::Malloc);
        free(p, Kind::Malloc);
        let q = alloc(13, Kind::Malloc);
        free(q.wrapping_add(1), Kind::Malloc);
        free(q, Kind::New);
        let r = alloc(16, Kind::Malloc);
        // SAFETY: deliberately reads past the guarded block; keep-going lifts the guard.
        let v = unsafe { r.add(16).read_volatile() };
        println!("\nREAD={v}");
        // SAFETY: configured.
        let n = unsafe { memward_check::usable_size(p) };
        println!("\nUSABLE={n}");
        println!("\nEND=1");
    }

    #[test]
    #[ignore = "run in a child process"]
    fn read_past_end_of_many() {
        if !child() {
            return;
        }
        let mut sum = 0u32;
        for _ in 0..2000 {
            let p = alloc(16, Kind::Malloc);
            // SAFETY: deliberately reads past the block: a guarded one faults (keep-going
            // lifts its guard), an unguarded one's red zone is readable.
            sum += unsafe { p.add(16).read_volatile() } as u32;
            free(p, Kind::Malloc);
        }
        println!("\nSUM={sum}");
    }

    #[test]
    #[ignore = "run in a child process"]
    fn realloc_freed() {
        if !child() {
            return;
        }
        let p = alloc(10, Kind::Malloc);
        free(p, Kind::Malloc);
        // SAFETY: configured; deliberately a freed pointer.
        unsafe { memward_check::realloc(p, 20, 16) };
    }

    #[test]
    #[ignore = "run in a child process"]
    fn realloc_interior() {
        if !child() {
            return;
        }
        let p = alloc(10, Kind::Malloc);
        // SAFETY: configured; deliberately an interior pointer.
        unsafe { memward_check::realloc(p.wrapping_add(1), 20, 16) };
    }

    #[test]
    #[ignore = "run in a child process"]
    fn free_on_another_thread_then_double_free() {
        if !child() {
            return;
        }
        let p = alloc(10, Kind::Malloc) as usize;
        std::thread::spawn(move || free(p as *mut u8, Kind::Malloc))
            .join()
            .unwrap();
        free(p as *mut u8, Kind::Malloc);
    }

    #[test]
    #[ignore = "run in a child process"]
    fn fork_then_double_free_in_child() {
        if !child() {
            return;
        }
        let p = alloc(10, Kind::Malloc);
        // SAFETY: fork in a single-threaded test child; the child only calls the
        // checker and ends.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            free(p, Kind::Malloc);
            free(p, Kind::Malloc);
            // SAFETY: not reached (the double free ends the child).
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        println!("\nCHILD_STATUS={}", libc::WEXITSTATUS(status));
        free(p, Kind::Malloc);
    }

    static KEPT: AtomicUsize = AtomicUsize::new(0);

    #[test]
    #[ignore = "run in a child process"]
    fn leak_one_keep_one() {
        if !child() {
            return;
        }
        KEPT.store(alloc(24, Kind::Malloc) as usize, Ordering::Relaxed);
        // A global only ever stored to could be optimised away; a real program reads it.
        std::hint::black_box(&KEPT);
        lose_one();
        clobber_stack();
        std::process::exit(0);
    }

    /// Zeroes the stack below this frame, so that the dead frame of `lose_one` leaves no
    /// copy of its pointer for the exit path's frames to expose to the (conservative)
    /// scan.
    #[inline(never)]
    fn clobber_stack() {
        std::hint::black_box([0u64; 8192]);
    }

    /// Allocates 40 bytes and forgets them: the pointer lived only in this frame, which
    /// is dead (below the stack pointer) once it returns.
    #[inline(never)]
    fn lose_one() {
        std::hint::black_box(alloc(40, Kind::Malloc));
    }

    #[test]
    #[ignore = "run in a child process"]
    fn usable_size_of_freed() {
        if !child() {
            return;
        }
        let p = alloc(32, Kind::Malloc);
        free(p, Kind::Malloc);
        // SAFETY: configured.
        unsafe { memward_check::usable_size(p) };
    }
}
