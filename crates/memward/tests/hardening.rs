//! Fast-mode hardening through `memward::Memward` as the global allocator: each misuse runs
//! in a child process (this test binary, re-run on one test with `MEMWARD_MISUSE` set) and
//! must end with one `memward: ...` line on stderr and SIGABRT. The control, a live block
//! holding a free-list link's exact bits, runs in-process and must be freed normally.

use std::alloc::{alloc, dealloc, GlobalAlloc, Layout};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

#[global_allocator]
static GLOBAL: memward::Memward = memward::Memward;

const LAYOUT: Layout = match Layout::from_size_align(64, 8) {
    Ok(l) => l,
    Err(_) => panic!("layout"),
};

/// The misuse named by `MEMWARD_MISUSE`, in the child. Returning means it went unnoticed.
fn commit(misuse: &str) {
    // SAFETY: none; these are the errors under test, each of which memward must stop
    // before it touches the corrupted state.
    unsafe {
        let p = alloc(LAYOUT);
        match misuse {
            "double-free" => {
                dealloc(p, LAYOUT);
                dealloc(p, LAYOUT);
            }
            "double-free-box" => {
                let b = Box::into_raw(Box::new([7u64; 4]));
                drop(Box::from_raw(b));
                drop(Box::from_raw(b));
            }
            "interior" => dealloc(p.add(16), LAYOUT),
            "stack" => {
                let mut local = [0u8; 64];
                let q = std::hint::black_box(local.as_mut_ptr());
                dealloc(q, LAYOUT);
            }
            "realloc-stack" => {
                let mut local = [0u8; 64];
                let q = std::hint::black_box(local.as_mut_ptr());
                std::hint::black_box(GLOBAL.realloc(q, LAYOUT, 128));
            }
            "write-after-free" => {
                dealloc(p, LAYOUT);
                p.cast::<u64>().write_volatile(0x4141_4141_4141_4141);
                for _ in 0..100_000 {
                    std::hint::black_box(alloc(LAYOUT));
                }
            }
            other => panic!("unknown misuse {other}"),
        }
    }
}

/// Runs this binary's `child` test with `misuse`, and checks the abort and its message.
fn expect_abort(misuse: &str, message: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads", "1"])
        .env("MEMWARD_MISUSE", misuse)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{misuse}: {:?}\n{stderr}",
        out.status
    );
    let line = stderr.lines().find(|l| l.starts_with("memward:"));
    assert_eq!(line, Some(message), "{misuse}: stderr:\n{stderr}");
    assert!(!stderr.contains("went unnoticed"), "{misuse}");
}

#[test]
fn child() {
    if let Ok(misuse) = std::env::var("MEMWARD_MISUSE") {
        commit(&misuse);
        eprintln!("{misuse} went unnoticed");
    }
}

#[test]
fn double_frees_abort() {
    expect_abort("double-free", "memward: free(): double free detected");
    expect_abort("double-free-box", "memward: free(): double free detected");
}

#[test]
fn interior_and_foreign_pointers_abort() {
    expect_abort("interior", "memward: free(): invalid pointer");
    expect_abort("stack", "memward: free(): invalid pointer");
    expect_abort("realloc-stack", "memward: realloc(): invalid pointer");
}

#[test]
fn an_overwritten_free_list_link_aborts_on_allocation() {
    expect_abort(
        "write-after-free",
        "memward: malloc(): corrupted free list (write after free or double free)",
    );
}

#[test]
fn a_live_block_holding_a_link_lookalike_is_freed_normally() {
    // raw::free is a plain function to Rust, so reading a freed block is defined here.
    let a = memward::raw::malloc(48);
    let b = memward::raw::malloc(48);
    // SAFETY: a and b are live 48-byte blocks; a is read after its free on purpose (it is
    // still mapped memory of memward's).
    unsafe {
        memward::raw::free(a);
        let link = a.cast::<u64>().read();
        b.cast::<u64>().write(link);
        memward::raw::free(b);
        // Both are free now, the lists are consistent, and both are handed out again.
        memward::check_thread_heap();
        let mut seen = Vec::new();
        let mut taken = Vec::new();
        while seen.len() < 2 && taken.len() < 100_000 {
            let q = memward::raw::malloc(48);
            if q == a || q == b {
                seen.push(q);
            }
            taken.push(q);
        }
        assert_eq!(seen.len(), 2, "both blocks came back");
        for q in taken {
            memward::raw::free(q);
        }
    }
}
