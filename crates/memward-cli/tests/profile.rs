//! `memward profile` on real C programs built with `-O2 -fomit-frame-pointer`: the
//! profile is read back with the format crate's reader, each allocation is attributed to
//! the function holding its innermost return address (resolved through the module map
//! stored in the profile and the program's symbol table), and every figure is checked
//! against what the program is known to do. Also: fork, exec, threads, `_exit`, SIGKILL,
//! and stdio/exit status pass-through.
//!
//! Needs the release library (`cargo build --release`) and a C compiler (`cc`).

mod library;
mod profile_lib;

use library::library;
use memward_profile_format::{Ending, Reader, Record};
use profile_lib::{compile, compile_with, temp_dir, Loaded};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn profile(file: &Path, cmd: &[&std::ffi::OsStr], extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_memward"))
        .env_remove("LD_PRELOAD")
        .env("MEMWARD_LIB", library())
        .arg("profile")
        .args(extra)
        .arg("-o")
        .arg(file)
        .arg("--")
        .args(cmd)
        .output()
        .unwrap()
}

/// A profile read back, with the program's function symbols to name sites.
/// Per-site figures, as DHAT defines them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Figures {
    total_blocks: u64,
    total_bytes: u64,
    peak_blocks: u64,
    peak_bytes: u64,
    exit_blocks: u64,
    exit_bytes: u64,
    /// Freed before any other allocation (heaptrack's definition).
    temporary: u64,
}

struct Replay {
    sites: HashMap<String, Figures>,
    peak: u64,
    threads: HashMap<String, std::collections::BTreeSet<u32>>,
}

fn replay(p: &Loaded) -> Replay {
    let mut live: HashMap<u64, (u64, String)> = HashMap::new();
    let mut sites: HashMap<String, Figures> = HashMap::new();
    let mut threads: HashMap<String, std::collections::BTreeSet<u32>> = HashMap::new();
    let mut current = 0u64;
    let mut peak = 0u64;
    let mut at_peak: HashMap<String, (u64, u64)> = HashMap::new();
    let mut last_alloc: Option<u64> = None;
    let mut site_names: HashMap<u32, String> = HashMap::new();
    let mut name = |stack: u32| {
        site_names
            .entry(stack)
            .or_insert_with(|| p.site(stack))
            .clone()
    };
    let free = |ptr: u64,
                live: &mut HashMap<u64, (u64, String)>,
                current: &mut u64,
                sites: &mut HashMap<String, Figures>,
                last_alloc: &Option<u64>| {
        if let Some((size, site)) = live.remove(&ptr) {
            *current -= size;
            if *last_alloc == Some(ptr) {
                sites.get_mut(&site).unwrap().temporary += 1;
            }
        }
    };
    for e in &p.events {
        let (thread, ptr, size, stack) = match *e {
            Record::Alloc {
                thread,
                ptr,
                size,
                stack,
            } => (thread, ptr, size, stack),
            Record::Realloc {
                thread,
                old,
                new,
                size,
                stack,
            } => {
                free(old, &mut live, &mut current, &mut sites, &last_alloc);
                (thread, new, size, stack)
            }
            Record::Free { ptr, .. } => {
                // heaptrack's definition: a free of the block the last allocation event
                // returned, frees in between or not.
                free(ptr, &mut live, &mut current, &mut sites, &last_alloc);
                continue;
            }
            _ => continue,
        };
        let site = name(stack);
        threads.entry(site.clone()).or_default().insert(thread);
        let f = sites.entry(site.clone()).or_default();
        f.total_blocks += 1;
        f.total_bytes += size;
        live.insert(ptr, (size, site));
        current += size;
        last_alloc = Some(ptr);
        if current > peak {
            peak = current;
            at_peak.clear();
            for (size, site) in live.values() {
                let e = at_peak.entry(site.clone()).or_default();
                e.0 += 1;
                e.1 += size;
            }
        }
    }
    for (site, (blocks, bytes)) in at_peak {
        let f = sites.get_mut(&site).unwrap();
        f.peak_blocks = blocks;
        f.peak_bytes = bytes;
    }
    for (size, site) in live.values() {
        let f = sites.get_mut(site).unwrap();
        f.exit_blocks += 1;
        f.exit_bytes += size;
    }
    Replay {
        sites,
        peak,
        threads,
    }
}

#[test]
fn every_figure_of_the_known_sites_is_exact() {
    let dir = temp_dir("sites");
    let exe = compile("sites", &dir);
    let file = dir.join("sites.prof");
    let o = profile(&file, &[exe.as_os_str()], &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p = Loaded::load(&file, &exe);
    assert_eq!(p.ending, Ending::Complete);
    assert_eq!(p.header.sample_rate, 0);
    assert_eq!(
        Path::new(std::str::from_utf8(&p.header.exe).unwrap()),
        p.exe
    );
    let r = replay(&p);
    let f = |site: &str| {
        *r.sites
            .get(site)
            .unwrap_or_else(|| panic!("no site {site}: {:?}", r.sites.keys()))
    };
    let mib = 1u64 << 20;
    assert_eq!(
        f("leak_site"),
        Figures {
            total_blocks: 1000,
            total_bytes: 48_000,
            peak_blocks: 1000,
            peak_bytes: 48_000,
            exit_blocks: 1000,
            exit_bytes: 48_000,
            temporary: 0
        }
    );
    // The last of the 64 blocks is freed before any other allocation: temporary.
    assert_eq!(
        f("big_site"),
        Figures {
            total_blocks: 64,
            total_bytes: 64 * mib,
            peak_blocks: 64,
            peak_bytes: 64 * mib,
            exit_blocks: 0,
            exit_bytes: 0,
            temporary: 1
        }
    );
    assert_eq!(
        f("temp_site"),
        Figures {
            total_blocks: 100_000,
            total_bytes: 3_200_000,
            peak_blocks: 0,
            peak_bytes: 0,
            exit_blocks: 0,
            exit_bytes: 0,
            temporary: 100_000
        }
    );
    assert_eq!(
        f("thread_site"),
        Figures {
            total_blocks: 500,
            total_bytes: 50_000,
            peak_blocks: 250,
            peak_bytes: 25_000,
            exit_blocks: 250,
            exit_bytes: 25_000,
            temporary: 0
        }
    );
    // realloc(NULL, 16) and 12 growths: 13 allocations, the last (64 KiB) kept. Each
    // growth frees the block allocated just before it: temporary by heaptrack's
    // definition (heaptrack records a realloc as a free and an allocation too).
    assert_eq!(
        f("grow_site"),
        Figures {
            total_blocks: 13,
            total_bytes: (4..=16).map(|k| 1u64 << k).sum(),
            peak_blocks: 1,
            peak_bytes: 65_536,
            exit_blocks: 1,
            exit_bytes: 65_536,
            temporary: 12
        }
    );
    // The second thread is told apart from the main one.
    let main_tid = p.header.pid;
    assert_eq!(
        r.threads["leak_site"].iter().copied().collect::<Vec<_>>(),
        [main_tid]
    );
    let t = &r.threads["thread_site"];
    assert_eq!(t.len(), 1);
    assert_ne!(*t.iter().next().unwrap(), main_tid);
    // The peak is the 64 MiB plus what else was live then: the other sites' blocks and
    // the C library's and the loader's own (a thread's TLS block, from pthread_create),
    // attributed to them, never to a site of the program.
    let known: u64 = ["leak_site", "big_site", "thread_site", "grow_site"]
        .iter()
        .map(|s| f(s).peak_bytes)
        .sum();
    assert_eq!(known, 64 * mib + 48_000 + 25_000 + 65_536);
    let others: Vec<(&String, &Figures)> = r
        .sites
        .iter()
        .filter(|(s, f)| !s.ends_with("_site") && f.peak_bytes > 0)
        .collect();
    assert!(
        others
            .iter()
            .all(|(s, _)| s.starts_with("<libc") || s.starts_with("<ld-linux")),
        "{others:?}"
    );
    assert_eq!(
        r.peak,
        known + others.iter().map(|(_, f)| f.peak_bytes).sum::<u64>()
    );
    assert!(
        r.peak - known < 64 * 1024,
        "libc held {} bytes at the peak",
        r.peak - known
    );
    // Whole stacks: the unwinder got from the site through main into libc's start code.
    assert_leak_site_stack_is_whole(&p);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The stack of an allocation at `leak_site` (tests/programs/sites.c) runs from the site
/// through `main` into libc's start code.
fn assert_leak_site_stack_is_whole(p: &Loaded) {
    let stack = p
        .events
        .iter()
        .find_map(|e| match e {
            Record::Alloc { stack, .. } if p.site(*stack) == "leak_site" => Some(*stack),
            _ => None,
        })
        .unwrap();
    let frames = p.frames(stack);
    assert_eq!(frames[..2], ["leak_site", "main"], "{frames:?}");
    assert!(
        frames[2..].iter().any(|f| f.starts_with("<libc")),
        "{frames:?}"
    );
}

/// Reads a profile and counts (size → allocations) for the program's allocations.
fn sizes_of(p: &Loaded) -> HashMap<u64, u64> {
    let mut m = HashMap::new();
    for e in &p.events {
        if let Record::Alloc { size, stack, .. } = e {
            if !p.site(*stack).starts_with('<') {
                *m.entry(*size).or_insert(0) += 1;
            }
        }
    }
    m
}

fn only_file_with_prefix(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit()) && !rest.is_empty())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_forked_child_writes_its_own_file() {
    let dir = temp_dir("fork");
    let exe = compile("lifecycle", &dir);
    let file = dir.join("fork.prof");
    let o = profile(&file, &[exe.as_os_str(), "fork".as_ref()], &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let parent = Loaded::load(&file, &exe);
    assert_eq!(parent.ending, Ending::Complete);
    assert_eq!(sizes_of(&parent).get(&333), Some(&3));
    assert_eq!(sizes_of(&parent).get(&777), None);
    let children = only_file_with_prefix(&dir, "fork.prof.");
    assert_eq!(children.len(), 1, "{children:?}");
    let child = Loaded::load(&children[0], &exe);
    assert_eq!(child.ending, Ending::Complete);
    assert_eq!(child.header.ppid, parent.header.pid);
    assert_eq!(
        children[0].file_name().unwrap().to_str().unwrap(),
        format!("fork.prof.{}", child.header.pid)
    );
    assert_eq!(sizes_of(&child).get(&777), Some(&10));
    assert_eq!(sizes_of(&child).get(&333), None);
    // The child's stacks resolve: the trie and modules were carried over.
    let r = replay(&child);
    assert_eq!(r.sites["keep"].exit_bytes, 7770);
    assert!(o.stderr.windows(21).any(|w| w == b"more from child proce"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Events still in the parent's buffers when it forks (its own, and a thread's that is
/// allocating at that moment) are written to the parent's file only, each once.
#[test]
fn a_fork_does_not_copy_the_parents_unwritten_events() {
    let dir = temp_dir("fork-busy");
    let exe = compile("lifecycle", &dir);
    let file = dir.join("fork.prof");
    let o = profile(&file, &[exe.as_os_str(), "fork-busy".as_ref()], &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let parent = Loaded::load(&file, &exe);
    assert_eq!(parent.ending, Ending::Complete);
    let sizes = sizes_of(&parent);
    assert_eq!(sizes.get(&111), Some(&4));
    assert_eq!(sizes.get(&999), Some(&200_000));
    assert_eq!(sizes.get(&777), None);
    let r = replay(&parent);
    assert_eq!(r.sites["keep"].exit_bytes, 444);
    let children = only_file_with_prefix(&dir, "fork.prof.");
    assert_eq!(children.len(), 1, "{children:?}");
    let child = Loaded::load(&children[0], &exe);
    assert_eq!(child.ending, Ending::Complete);
    let sizes = sizes_of(&child);
    assert_eq!(sizes.get(&777), Some(&10));
    assert_eq!(sizes.get(&111), None);
    assert_eq!(sizes.get(&999), None);
    assert_eq!(replay(&child).sites["keep"].exit_bytes, 7770);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_exec_d_program_writes_its_own_file() {
    let dir = temp_dir("exec");
    let exe = compile("lifecycle", &dir);
    let file = dir.join("exec.prof");
    let o = profile(&file, &[exe.as_os_str(), "exec".as_ref()], &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let children = only_file_with_prefix(&dir, "exec.prof.");
    assert_eq!(children.len(), 1, "{children:?}");
    let child = Loaded::load(&children[0], &exe);
    assert_eq!(child.header.args.last().unwrap(), b"exec-child");
    assert_eq!(child.ending, Ending::Complete);
    assert_eq!(sizes_of(&child).get(&555), Some(&5));
    assert_eq!(replay(&child).sites["keep"].exit_bytes, 5 * 555);
    // The command itself kept FILE.
    let parent = Loaded::load(&file, &exe);
    assert_eq!(parent.header.args.last().unwrap(), b"exec");
    assert_eq!(sizes_of(&parent).get(&555), None);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn threads_are_recorded_apart() {
    let dir = temp_dir("threads");
    let exe = compile("lifecycle", &dir);
    let file = dir.join("threads.prof");
    let o = profile(&file, &[exe.as_os_str(), "threads".as_ref()], &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p = Loaded::load(&file, &exe);
    let r = replay(&p);
    let w = r.sites["worker"];
    assert_eq!((w.total_blocks, w.exit_blocks), (8000, 0));
    let k = r.sites["keep"];
    assert_eq!((k.total_blocks, k.exit_bytes), (80, 80 * 4000));
    assert_eq!(r.threads["worker"].len(), 8);
    assert!(!r.threads["worker"].contains(&p.header.pid));
    let named: Vec<u32> = p
        .events
        .iter()
        .filter_map(|e| match e {
            Record::ThreadName { tid, .. } => Some(*tid),
            _ => None,
        })
        .collect();
    assert!(r.threads["worker"].iter().all(|t| named.contains(t)));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Allocations made through zlib right after the program `dlopen`s it: each stack runs
/// from the program's callback through zlib to `main`, recorded in full and sampled (where
/// no flusher thread rescans the modules: the walks must find zlib themselves).
#[test]
fn stacks_run_through_an_executable_whose_segments_lie_apart() {
    // Segments aligned to 2 MiB leave unmapped pages between them; glibc's
    // `_dl_find_object` then answers with the segment holding an address, not the whole
    // executable, and the unwinder once dropped the executable at its first frame.
    let dir = temp_dir("split");
    let exe = compile_with("sites", &dir, &["-Wl,-z,max-page-size=0x200000"]);
    let file = dir.join("split.prof");
    let o = profile(&file, &[exe.as_os_str()], &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p = Loaded::load(&file, &exe);
    assert_leak_site_stack_is_whole(&p);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stacks_run_through_a_library_loaded_by_dlopen() {
    let dir = temp_dir("dlopened");
    let exe = compile("dlopened", &dir);
    for (name, extra) in [("full", &[][..]), ("sampled", &["--sample-rate", "64"][..])] {
        let file = dir.join(format!("{name}.prof"));
        let o = profile(&file, &[exe.as_os_str()], extra);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let p = Loaded::load(&file, &exe);
        let stacks: Vec<Vec<String>> = p
            .events
            .iter()
            .filter_map(|e| match e {
                Record::Alloc { stack, size, .. } if *size >= 1000 => Some(p.frames(*stack)),
                _ => None,
            })
            .filter(|f| f.first().map(String::as_str) == Some("zlib_site"))
            .collect();
        // deflateInit2_ allocates 5 blocks, 40 times over; sampled at 64 bytes, a block of
        // 1,000 bytes or more is missed with probability e^-15.6.
        assert!(
            stacks.len() >= 160,
            "{name}: {} zlib_site stacks",
            stacks.len()
        );
        for f in &stacks {
            assert_eq!(f[1], "<libz.so.1>", "{name}: {f:?}");
            assert!(f[2..].iter().any(|n| n == "main"), "{name}: {f:?}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn exit_without_handlers_and_sigkill_leave_readable_profiles() {
    for (mode, code) in [("_exit", Some(0)), ("kill", None)] {
        let dir = temp_dir(mode);
        let exe = compile("lifecycle", &dir);
        let file = dir.join("p.prof");
        let o = profile(&file, &[exe.as_os_str(), mode.as_ref()], &[]);
        match code {
            Some(c) => assert_eq!(o.status.code(), Some(c)),
            // memward passes a signal death on as 128 + N, like a shell.
            None => assert_eq!(o.status.code(), Some(128 + 9)),
        }
        let p = Loaded::load(&file, &exe);
        assert!(
            matches!(p.ending, Ending::Truncated { .. }),
            "{mode}: {:?}",
            p.ending
        );
        assert_eq!(sizes_of(&p).get(&4444), Some(&7), "{mode}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn stdio_and_exit_status_pass_through() {
    let dir = temp_dir("stdio");
    let file = dir.join("sh.prof");
    let o = Command::new(env!("CARGO_BIN_EXE_memward"))
        .env_remove("LD_PRELOAD")
        .env("MEMWARD_LIB", library())
        .current_dir(&dir)
        .args([
            "profile",
            "--",
            "sh",
            "-c",
            "read x; echo got $x; echo err >&2; exit 7",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"hello\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(o.stdout, b"got hello\n");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("err\n"), "{err}");
    // The default name: memward-profile.<cmd>.<pid of the command>.
    let made = only_file_with_prefix(&dir, "memward-profile.sh.");
    assert_eq!(made.len(), 1, "{made:?}");
    let r = Reader::new(std::fs::File::open(&made[0]).unwrap()).unwrap();
    assert_eq!(
        made[0].file_name().unwrap().to_str().unwrap(),
        format!("memward-profile.sh.{}", r.header().pid)
    );
    assert!(
        err.contains(&format!("wrote {}", made[0].display())),
        "{err}"
    );
    let _ = file;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_full_disk_gets_one_message_and_the_program_goes_on() {
    // A file-size limit makes writes past 8 KiB fail (EFBIG, with SIGXFSZ ignored), as
    // a full disk makes them fail with ENOSPC.
    let dir = temp_dir("full");
    let exe = compile("sites", &dir);
    let file = dir.join("full.prof");
    let o = Command::new("sh")
        .env_remove("LD_PRELOAD")
        .env("MEMWARD_LIB", library())
        .arg("-c")
        .arg("ulimit -f 16; trap '' XFSZ; exec \"$0\" profile -o \"$1\" -- \"$2\"")
        .arg(env!("CARGO_BIN_EXE_memward"))
        .arg(&file)
        .arg(&exe)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(err.matches("recording stopped").count(), 1, "{err}");
    assert!(
        err.contains("File too large") && err.contains("the program continues"),
        "{err}"
    );
    // What was written reads back, cut short.
    let p = Loaded::load(&file, &exe);
    assert!(matches!(p.ending, Ending::Truncated { .. }));
    assert!(std::fs::metadata(&file).unwrap().len() <= 8192);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sampling_by_bytes_gives_unbiased_estimates() {
    use memward_profile_format::sample_weight;
    let dir = temp_dir("sampled");
    let exe = compile("sites", &dir);
    let full = dir.join("full.prof");
    assert!(profile(&full, &[exe.as_os_str()], &[]).status.success());
    let file = dir.join("sampled.prof");
    let o = profile(&file, &[exe.as_os_str()], &["--sample-rate", "4096"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p = Loaded::load(&file, &exe);
    assert_eq!(p.header.sample_rate, 4096);
    assert_eq!(p.ending, Ending::Complete);
    let r = replay(&p);
    // 1 MiB blocks are sampled with probability 1 - e^-256: all of them, weight 1.
    let big = r.sites["big_site"];
    assert_eq!(
        (big.total_blocks, big.peak_bytes, big.exit_bytes),
        (64, 64 << 20, 0)
    );
    assert!((sample_weight(1 << 20, 4096) - 1.0).abs() < 1e-12);
    // 100,000 x 32 bytes: about 781 samples, each standing for ~128.5 allocations; the
    // estimate is within 20% (5 standard deviations).
    let temp = r.sites["temp_site"];
    let estimate = temp.total_blocks as f64 * sample_weight(32, 4096);
    assert!(
        (estimate - 100_000.0).abs() < 20_000.0,
        "estimate {estimate}"
    );
    // Frees are written for sampled blocks only, and for all of them.
    assert_eq!(temp.exit_blocks, 0);
    let frees = p
        .events
        .iter()
        .filter(|e| matches!(e, Record::Free { .. }))
        .count();
    assert!(frees < 2_000, "{frees} frees recorded");
    let small = p.events.len();
    let whole = Loaded::load(&full, &exe).events.len();
    assert!(small * 20 < whole, "sampled {small} events vs {whole}");
    std::fs::remove_dir_all(&dir).unwrap();
}
