//! A Rust program whose global allocator is `memward::Memward` (with memward's `check`
//! feature) is checked when run with `MEMWARD_CHECK=1`, like a C program under
//! `memward check`: the test binary re-runs itself as the program, with one error each.

use std::process::{Command, Output};

#[global_allocator]
static GLOBAL: memward::Memward = memward::Memward;

/// Which error the re-run makes (unset: this is the test, not the program).
const CHILD: &str = "MEMWARD_RUST_CHECK_CHILD";

fn run_child(test: &str, what: &str) -> Output {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, what)
        .env("MEMWARD_CHECK", "1")
        .output()
        .unwrap()
}

fn child() -> Option<String> {
    std::env::var(CHILD).ok()
}

#[test]
fn double_free_of_a_box() {
    if child().is_some() {
        // black_box: the optimiser may remove an allocation whose memory is never observed.
        let p = std::hint::black_box(Box::into_raw(Box::new([7u8; 24])));
        // SAFETY: not sound, on purpose: the second drop frees the box again.
        unsafe {
            drop(Box::from_raw(p));
            drop(Box::from_raw(std::hint::black_box(p)));
        }
        return;
    }
    let out = run_child("double_free_of_a_box", "1");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("ERROR: memward: attempting double-free on 0x"),
        "{err}"
    );
    assert!(
        err.contains("is located 0 bytes inside of 24-byte region"),
        "{err}"
    );
    assert!(
        err.contains("freed by thread T1 here:"),
        "the test runs on thread T1: {err}"
    );
    assert!(
        err.contains("previously allocated by thread T1 here:"),
        "{err}"
    );
    assert!(
        err.contains("rust_global.rs"),
        "the stacks name the program's source: {err}"
    );
}

#[test]
fn write_past_the_end_of_a_vec() {
    if child().is_some() {
        let mut v: Vec<u8> = std::hint::black_box(Vec::with_capacity(13));
        v.extend_from_slice(b"thirteen byte");
        // SAFETY: not sound, on purpose: one byte past the 13-byte allocation.
        unsafe { v.as_mut_ptr().add(13).write(0x42) };
        drop(v);
        return;
    }
    let out = run_child("write_past_the_end_of_a_vec", "1");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("ERROR: memward: heap-buffer-overflow"),
        "{err}"
    );
    assert!(err.contains("13-byte region"), "{err}");
}

#[test]
fn a_correct_program_runs_silently() {
    if child().is_some() {
        let mut total = 0usize;
        let handles: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut m = std::collections::HashMap::new();
                    for i in 0..20_000usize {
                        m.insert(i, format!("{t}-{i}"));
                    }
                    m.values().map(String::len).sum::<usize>()
                })
            })
            .collect();
        for h in handles {
            total += h.join().unwrap();
        }
        assert!(total > 0);
        return;
    }
    let out = run_child("a_correct_program_runs_silently", "1");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("ERROR"), "{err}");
}
