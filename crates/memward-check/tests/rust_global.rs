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

/// Alignments from the default one to 64 MiB: the engine finds a block only from its
/// first 4 MiB segment, so blocks aligned to 4 MiB or more need the checker's own
/// placement (`AllocAt`) for their frees to reach it.
const ALIGNMENTS: [usize; 6] = [64, 4096, 2 << 20, 4 << 20, 16 << 20, 64 << 20];

#[test]
fn large_alignments_through_the_global_allocator() {
    if child().is_some() {
        use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout};
        for align in ALIGNMENTS {
            let layout = Layout::from_size_align(1000, align).unwrap();
            // SAFETY: a non-zero size; every block is used within its size and freed
            // once with its layout (realloc keeps the alignment).
            unsafe {
                let p = std::hint::black_box(alloc(layout));
                assert!(!p.is_null() && p as usize % align == 0, "alignment {align}");
                p.write_bytes(0x5a, 1000);
                let q = realloc(p, layout, 5000);
                assert!(!q.is_null() && q as usize % align == 0, "alignment {align}");
                assert_eq!(*q.add(999), 0x5a);
                q.add(4999).write(1);
                dealloc(q, Layout::from_size_align(5000, align).unwrap());
                let z = std::hint::black_box(alloc_zeroed(layout));
                assert!(!z.is_null() && z as usize % align == 0, "alignment {align}");
                assert!(std::slice::from_raw_parts(z, 1000).iter().all(|b| *b == 0));
                dealloc(z, layout);
            }
        }
        return;
    }
    let out = run_child("large_alignments_through_the_global_allocator", "1");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("ERROR"), "{err}");
}

#[test]
fn interior_free_of_a_large_aligned_block_is_a_bad_free() {
    if let Some(align) = child() {
        use std::alloc::{alloc, dealloc, Layout};
        let layout = Layout::from_size_align(1000, align.parse().unwrap()).unwrap();
        // SAFETY: not sound, on purpose: frees a pointer 16 bytes into the block.
        unsafe {
            let p = std::hint::black_box(alloc(layout));
            assert!(!p.is_null());
            dealloc(std::hint::black_box(p.add(16)), layout);
        }
        return;
    }
    for align in [4096usize, 4 << 20, 16 << 20, 64 << 20] {
        let out = run_child(
            "interior_free_of_a_large_aligned_block_is_a_bad_free",
            &align.to_string(),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "alignment {align}: {err}");
        assert!(
            err.contains("ERROR: memward: attempting free on address which was not malloc()-ed"),
            "alignment {align}: {err}"
        );
        assert!(
            err.contains("is located 16 bytes inside of 1000-byte region"),
            "alignment {align}: {err}"
        );
    }
}
