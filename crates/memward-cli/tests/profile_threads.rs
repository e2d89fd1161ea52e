//! `memward profile` on a program with hundreds of threads (`tests/programs/threads.c`,
//! built with `-O2 -fomit-frame-pointer`): two waves of 300 threads, the second started
//! after the first exited, so glibc hands the second wave the first wave's cached stacks
//! and TLS blocks, and with them whatever the recorder keeps per thread. Blocks are freed
//! by other threads, by threads that have not allocated yet, by a thread-specific-data
//! destructor as a thread exits, and by the main thread.
//!
//! The truth is computed here from the program's rules, and checked three ways: the
//! recorded events themselves (every thread's stacks whole and alike, every event carrying
//! the id of the thread that did it), `memward report --format dhat` (every figure of every
//! site), and `memward report`'s text summary (totals, the peak, the leaks), which must
//! agree with the events, the C library's own allocations included.
//!
//! Needs the release library (`cargo build --release`) and a C compiler (`cc`); kept apart
//! from tests/profile.rs, whose helpers it repeats in a smaller form, so that each file
//! stays a readable size.

mod library;
mod profile_lib;

use library::library;
use memward_profile_format::{Ending, Record};
use profile_lib::{compile, temp_dir, Loaded};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::process::{Command, Output};

/// Threads per wave, sites per wave, blocks per thread: as in threads.c.
const THREADS: u64 = 300;
const SITES: u64 = 10;
const FIRST_BLOCKS: u64 = 20;
const SECOND_BLOCKS: u64 = 5;

fn memward() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_memward"));
    c.env_remove("LD_PRELOAD").env("MEMWARD_LIB", library());
    c
}

fn checked(o: Output, what: &str) -> Output {
    assert!(
        o.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The truth for one site of the program.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Truth {
    total_blocks: u64,
    total_bytes: u64,
    peak_blocks: u64,
    peak_bytes: u64,
    exit_blocks: u64,
    exit_bytes: u64,
}

/// What threads.c does, site by site: `first_site_K` and `second_site_K`.
fn truth() -> HashMap<String, Truth> {
    let mut sites = HashMap::new();
    for k in 0..SITES {
        // Wave 1: thread i (i % 10 == k) allocates 20 blocks of 16 * (k + 1) + i bytes,
        // all live at the peak; blocks 18 and 19 are never freed.
        let threads = (k..THREADS).step_by(SITES as usize);
        let per_thread: u64 = threads.map(|i| 16 * (k + 1) + i).sum();
        let n = THREADS / SITES;
        sites.insert(
            format!("first_site_{k}"),
            Truth {
                total_blocks: n * FIRST_BLOCKS,
                total_bytes: FIRST_BLOCKS * per_thread,
                peak_blocks: n * FIRST_BLOCKS,
                peak_bytes: FIRST_BLOCKS * per_thread,
                exit_blocks: 2 * n,
                exit_bytes: 2 * per_thread,
            },
        );
        // Wave 2: 5 blocks of 8 * (k + 1) bytes per thread, none live at the peak (wave 1
        // holds it), blocks 3 and 4 never freed.
        let size = 8 * (k + 1);
        sites.insert(
            format!("second_site_{k}"),
            Truth {
                total_blocks: n * SECOND_BLOCKS,
                total_bytes: n * SECOND_BLOCKS * size,
                peak_blocks: 0,
                peak_bytes: 0,
                exit_blocks: 2 * n,
                exit_bytes: 2 * n * size,
            },
        );
    }
    sites
}

/// The profile's events with the program's function symbols to name sites.
/// A block as the replay of the events saw it.
struct Block {
    size: u64,
    site: String,
    thread: u32,
}

/// The events replayed: per site figures (as [`Truth`]), the threads and stacks seen per
/// site, and the frees by thread relation.
#[derive(Default)]
struct Replay {
    sites: HashMap<String, Truth>,
    threads: HashMap<String, BTreeSet<u32>>,
    stacks: HashMap<String, BTreeSet<u32>>,
    /// Frees of the program's blocks by the allocating thread and by another one.
    program_frees_same_thread: u64,
    program_frees_other_thread: u64,
    /// Allocation and free events, and frees of blocks the file never allocated.
    allocs: u64,
    frees: u64,
    unknown_frees: u64,
    /// Allocations at an address the file still had live: a free written after the
    /// allocation that reused its block (the events out of the heap's order).
    reused_live: u64,
    /// The peak's bytes and blocks.
    peak: (u64, u64),
    /// Threads that allocated or freed, and those whose name was written.
    active_threads: HashSet<u32>,
    named_threads: HashSet<u32>,
}

fn replay(p: &Loaded) -> Replay {
    let mut r = Replay::default();
    let mut live: HashMap<u64, Block> = HashMap::new();
    let mut names: HashMap<u32, String> = HashMap::new();
    let (mut bytes, mut blocks) = (0u64, 0u64);
    // The figures at the peak: the live blocks just before the first free (or the end)
    // after the last allocation that raised the peak; allocations in between each raised
    // it further.
    let mut at_peak: HashMap<String, (u64, u64)> = HashMap::new();
    let mut peak_pending = false;
    let snapshot = |live: &HashMap<u64, Block>, at_peak: &mut HashMap<String, (u64, u64)>| {
        at_peak.clear();
        for b in live.values() {
            let e = at_peak.entry(b.site.clone()).or_default();
            e.0 += 1;
            e.1 += b.size;
        }
    };
    for e in &p.events {
        match *e {
            Record::ThreadName { tid, .. } => {
                r.named_threads.insert(tid);
            }
            Record::Free { thread, ptr } => {
                if std::mem::take(&mut peak_pending) {
                    snapshot(&live, &mut at_peak);
                }
                r.frees += 1;
                r.active_threads.insert(thread);
                let Some(b) = live.remove(&ptr) else {
                    r.unknown_frees += 1;
                    continue;
                };
                bytes -= b.size;
                blocks -= 1;
                if !b.site.starts_with('<') {
                    if b.thread == thread {
                        r.program_frees_same_thread += 1;
                    } else {
                        r.program_frees_other_thread += 1;
                    }
                }
            }
            Record::Alloc {
                thread,
                ptr,
                size,
                stack,
            } => {
                r.allocs += 1;
                r.active_threads.insert(thread);
                let site = names.entry(stack).or_insert_with(|| p.site(stack)).clone();
                r.threads.entry(site.clone()).or_default().insert(thread);
                r.stacks.entry(site.clone()).or_default().insert(stack);
                let f = r.sites.entry(site.clone()).or_default();
                f.total_blocks += 1;
                f.total_bytes += size;
                if let Some(old) = live.insert(ptr, Block { size, site, thread }) {
                    r.reused_live += 1;
                    bytes -= old.size;
                    blocks -= 1;
                }
                bytes += size;
                blocks += 1;
                if bytes > r.peak.0 {
                    r.peak = (bytes, blocks);
                    peak_pending = true;
                }
            }
            Record::Realloc { .. } => panic!("threads.c calls no realloc"),
            _ => {}
        }
    }
    if peak_pending {
        snapshot(&live, &mut at_peak);
    }
    for (site, (n, size)) in at_peak {
        let f = r.sites.get_mut(&site).unwrap();
        f.peak_blocks = n;
        f.peak_bytes = size;
    }
    for b in live.values() {
        let f = r.sites.get_mut(&b.site).unwrap();
        f.exit_blocks += 1;
        f.exit_bytes += b.size;
    }
    r
}

/// The first integer in `text` (digits with thousands commas).
fn first_number(text: &str) -> u64 {
    let start = text.find(|c: char| c.is_ascii_digit()).unwrap();
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

/// The number just before `word` in `line` ("6,300 blocks" → 6300).
fn number_before(line: &str, word: &str) -> u64 {
    let end = line
        .find(word)
        .unwrap_or_else(|| panic!("no {word} in {line}"));
    let digits: String = line[..end]
        .trim_end()
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits.chars().rev().collect::<String>().parse().unwrap()
}

#[test]
fn hundreds_of_threads_in_two_waves_give_exact_figures() {
    let dir = temp_dir("many-threads");
    let exe = compile("threads", &dir);

    // The program runs under the profiler as it runs without it.
    let plain = Command::new(&exe).output().unwrap();
    assert_eq!(
        plain.status.code(),
        Some(7),
        "without the profiler: {}",
        String::from_utf8_lossy(&plain.stderr)
    );
    assert_eq!(plain.stdout, b"600 threads done\n");
    let file = dir.join("threads.prof");
    let o = memward()
        .arg("profile")
        .arg("-o")
        .arg(&file)
        .arg("--")
        .arg(&exe)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), plain.status.code(), "{err}");
    assert_eq!(o.stdout, plain.stdout);

    // The profile reads back whole.
    let p = Loaded::load(&file, &exe);
    assert_eq!(p.ending, Ending::Complete);
    let end = p
        .events
        .iter()
        .find_map(|e| match e {
            Record::End(end) => Some(*end),
            _ => None,
        })
        .unwrap();
    let r = replay(&p);
    assert_eq!((end.allocs, end.frees), (r.allocs, r.frees));
    assert_eq!(r.unknown_frees, 0);
    assert_eq!(r.reused_live, 0);

    // Every site's figures, from the events.
    let truth = truth();
    for (site, t) in &truth {
        assert_eq!(r.sites.get(site), Some(t), "{site}");
    }
    // No allocation lost its site: the rest is the C library's and the loader's.
    for site in r.sites.keys().filter(|s| !truth.contains_key(*s)) {
        assert!(
            site.starts_with("<libc.so") || site.starts_with("<ld-linux"),
            "{site}: {:?}",
            r.sites[site]
        );
    }
    let program = |f: fn(&Truth) -> u64| truth.values().map(f).sum::<u64>();
    // Wave 1: 10 own + 6 of the neighbour's; wave 2: 2 of wave 1's, 1 own, 1 own from
    // the destructor; main: 1 of each wave-2 thread.
    assert_eq!(r.program_frees_same_thread, THREADS * (10 + 1 + 1));
    assert_eq!(r.program_frees_other_thread, THREADS * (6 + 2 + 1));

    // Each site's stack is one and whole in every thread: site, wave function, then the C
    // library's thread start (start_thread, clone3), whatever stack the thread was given.
    for k in 0..SITES {
        for (site, wave) in [("first_site", "first_wave"), ("second_site", "second_wave")] {
            let site = format!("{site}_{k}");
            let stacks = &r.stacks[&site];
            assert_eq!(stacks.len(), 1, "{site}: {stacks:?}");
            let frames = p.frames(*stacks.iter().next().unwrap());
            assert_eq!(frames[..2], [site.as_str(), wave], "{frames:?}");
            assert!(
                frames.len() > 2 && frames[2..].iter().all(|f| f.starts_with("<libc.so")),
                "{frames:?}"
            );
        }
    }

    // Each event carries the id of the thread that did it: 300 threads per wave, 30 per
    // site, the second wave's ids new ones (though its stacks and TLS are the first
    // wave's), none the main thread's; each thread named once it did something.
    let wave_threads = |prefix: &str| -> BTreeSet<u32> {
        let mut all = BTreeSet::new();
        for k in 0..SITES {
            let t = &r.threads[&format!("{prefix}_{k}")];
            assert_eq!(t.len() as u64, THREADS / SITES, "{prefix}_{k}");
            all.extend(t);
        }
        all
    };
    let (first, second) = (wave_threads("first_site"), wave_threads("second_site"));
    assert_eq!(first.len() as u64, THREADS);
    assert_eq!(second.len() as u64, THREADS);
    assert!(first.is_disjoint(&second));
    assert!(!first.contains(&p.header.pid) && !second.contains(&p.header.pid));
    assert!(r.active_threads.is_subset(&r.named_threads));

    // The peak: all of wave 1 live, plus the C library's blocks then (a thread's DTV
    // per live thread, a few more).
    let peak_program = program(|t| t.peak_bytes);
    let libc_at_peak: Vec<(&String, &Truth)> = r
        .sites
        .iter()
        .filter(|(s, f)| !truth.contains_key(*s) && f.peak_blocks > 0)
        .collect();
    let (libc_blocks, libc_bytes) = libc_at_peak.iter().fold((0, 0), |(n, b), (_, f)| {
        (n + f.peak_blocks, b + f.peak_bytes)
    });
    assert_eq!(r.peak.0, peak_program + libc_bytes);
    assert_eq!(r.peak.1, program(|t| t.peak_blocks) + libc_blocks);
    assert!(libc_blocks <= THREADS + 16, "{libc_at_peak:?}");

    // `memward report --format dhat`: one program point per site, every figure exact.
    let dhat = checked(
        memward()
            .args(["report", "--format", "dhat"])
            .arg(&file)
            .output()
            .unwrap(),
        "memward report --format dhat",
    );
    let json: serde_json::Value = serde_json::from_slice(&dhat.stdout).unwrap();
    let ftbl: Vec<&str> = json["ftbl"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    // "0xADDR: function (file:line)" or "0xADDR: function".
    let function = |label: &str| {
        let name = label.split_once(": ").map_or(label, |(_, n)| n);
        name.split(" (").next().unwrap().to_string()
    };
    let mut seen = HashSet::new();
    let (mut all, mut exit, mut at_peak) = ((0, 0), (0, 0), (0, 0));
    for pp in json["pps"].as_array().unwrap() {
        let n = |key: &str| pp[key].as_u64().unwrap();
        all = (all.0 + n("tbk"), all.1 + n("tb"));
        exit = (exit.0 + n("ebk"), exit.1 + n("eb"));
        at_peak = (at_peak.0 + n("gbk"), at_peak.1 + n("gb"));
        let leaf = function(ftbl[pp["fs"][0].as_u64().unwrap() as usize]);
        let Some(t) = truth.get(&leaf) else { continue };
        assert!(seen.insert(leaf.clone()), "two program points for {leaf}");
        let got = Truth {
            total_blocks: n("tbk"),
            total_bytes: n("tb"),
            peak_blocks: n("gbk"),
            peak_bytes: n("gb"),
            exit_blocks: n("ebk"),
            exit_bytes: n("eb"),
        };
        assert_eq!(got, *t, "{leaf}");
        // The most live at once: wave 1's at the peak; wave 2's between the three blocks
        // per thread left at the end of the wave and all five.
        let size = t.total_bytes / t.total_blocks;
        if leaf.starts_with("first") {
            assert_eq!((n("mbk"), n("mb")), (t.peak_blocks, t.peak_bytes), "{leaf}");
        } else {
            let most = n("mbk");
            assert!((3 * 30..=5 * 30).contains(&most), "{leaf}: {most}");
            assert_eq!(n("mb"), most * size, "{leaf}");
        }
    }
    assert_eq!(seen.len(), truth.len(), "{seen:?}");
    let replayed = |f: fn(&Truth) -> u64| r.sites.values().map(f).sum::<u64>();
    assert_eq!(
        all,
        (replayed(|t| t.total_blocks), replayed(|t| t.total_bytes))
    );
    assert_eq!(
        exit,
        (replayed(|t| t.exit_blocks), replayed(|t| t.exit_bytes))
    );
    assert_eq!(at_peak, (r.peak.1, r.peak.0));

    // `memward report` (text): the totals, the peak and the leaks of the events.
    let text = checked(
        memward().arg("report").arg(&file).output().unwrap(),
        "memward report",
    );
    let text = String::from_utf8(text.stdout).unwrap();
    let line = |label: &str| {
        text.lines()
            .find_map(|l| l.trim_start().strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label} in\n{text}"))
            .to_string()
    };
    let allocations = line("allocations:");
    assert_eq!(first_number(&allocations), r.allocs, "{allocations}");
    assert_eq!(
        number_before(&allocations, "bytes"),
        replayed(|t| t.total_bytes)
    );
    assert_eq!(number_before(&allocations, "frees"), r.frees);
    let peak = line("peak heap:");
    assert_eq!(first_number(&peak), r.peak.0, "{peak}");
    assert_eq!(number_before(&peak, "blocks"), r.peak.1, "{peak}");
    let leaked = line("leaked at exit:");
    assert_eq!(first_number(&leaked), exit.1, "{leaked}");
    assert_eq!(number_before(&leaked, "blocks"), exit.0, "{leaked}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Pairs each worker of spawner.c may make before it stops by itself.
const SPAWNER_CAP: u64 = 2_000_000;

/// A main thread creating 400 threads while they allocate as fast as they can: with the
/// recorder's former single unfair lock, the workers' events kept main from getting it,
/// so main took up to minutes to create them all. Every thread now appends to its own
/// ring, so main goes on at the scheduler's pace: it stops the workers long before they
/// reach their cap (which 400 * 2,000,000 pairs would take minutes to do), the run ends
/// well within a minute, and every pair is in the profile, in the heap's order.
#[test]
fn main_creates_400_allocating_threads_without_starving() {
    let dir = temp_dir("spawner");
    let exe = compile("spawner", &dir);
    let file = dir.join("spawner.prof");
    let started = std::time::Instant::now();
    let mut child = memward()
        .arg("profile")
        .arg("-o")
        .arg(&file)
        .arg("--")
        .arg(&exe)
        .arg(SPAWNER_CAP.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A starved run is killed rather than waited for.
    let deadline = std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > deadline {
            child.kill().unwrap();
            panic!("still running after {deadline:?}: main starved");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    let o = checked(o, "spawner");
    let out = String::from_utf8_lossy(&o.stdout);
    let [pairs, active]: [u64; 2] = out
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    assert!(
        pairs < 400 * SPAWNER_CAP,
        "every worker ran to its cap ({pairs} pairs): main never stopped them"
    );

    let p = Loaded::load(&file, &exe);
    assert_eq!(p.ending, Ending::Complete);
    let r = replay(&p);
    assert_eq!(r.unknown_frees, 0);
    assert_eq!(r.reused_live, 0);
    let worker = r.sites["worker_site"];
    assert_eq!(worker.total_blocks, pairs);
    assert_eq!(worker.exit_blocks, 0);
    assert!(worker.peak_blocks <= 400, "{worker:?}");
    // GCC may name it main_site.constprop.0 (its size argument is a constant).
    let main = r
        .sites
        .iter()
        .find_map(|(name, t)| name.starts_with("main_site").then_some(*t))
        .unwrap_or_else(|| panic!("no main_site: {:?}", r.sites));
    assert_eq!((main.total_blocks, main.total_bytes), (1000, 24_000));
    // Workers that saw the stop before their first pair made none.
    assert_eq!(r.threads["worker_site"].len() as u64, active);
}
