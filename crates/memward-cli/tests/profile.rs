//! `memward profile` on real C programs built with `-O2 -fomit-frame-pointer`: the
//! profile is read back with the format crate's reader, each allocation is attributed to
//! the function holding its innermost return address (resolved through the module map
//! stored in the profile and the program's symbol table), and every figure is checked
//! against what the program is known to do. Also: fork, exec, threads, `_exit`, SIGKILL,
//! and stdio/exit status pass-through.
//!
//! Needs the release library (`cargo build --release`) and a C compiler (`cc`).

use memward_profile_format::{Ending, Header, ModuleMap, Reader, Record, StackTable};
use object::{Object, ObjectSymbol};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn library() -> PathBuf {
    if let Some(p) = std::env::var_os("MEMWARD_LIB").filter(|p| !p.is_empty()) {
        return PathBuf::from(p).canonicalize().unwrap();
    }
    let tool = Path::new(env!("CARGO_BIN_EXE_memward"));
    tool.ancestors()
        .skip(1)
        .take(3)
        .map(|d| d.join("release/libmemward.so"))
        .find(|p| p.is_file())
        .expect("libmemward.so is missing: run `cargo build --release` first (or set MEMWARD_LIB)")
        .canonicalize()
        .unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "memward-profile-test-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Compiles `tests/programs/NAME.c` with -O2 and no frame pointers into `dir`.
fn compile(name: &str, dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/programs/{name}.c"));
    let out = dir.join(name);
    let st = Command::new("cc")
        .args(["-O2", "-fomit-frame-pointer", "-pthread", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("a C compiler (cc)");
    assert!(st.success(), "compiling {}", src.display());
    out
}

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
struct Loaded {
    header: Header,
    modules: ModuleMap,
    stacks: StackTable,
    events: Vec<Record>,
    ending: Ending,
    symbols: Vec<(u64, u64, String)>,
    exe: PathBuf,
}

fn load(file: &Path, exe: &Path) -> Loaded {
    let mut r = Reader::new(std::io::BufReader::new(std::fs::File::open(file).unwrap())).unwrap();
    let header = r.header().clone();
    let mut modules = ModuleMap::default();
    let mut stacks = StackTable::default();
    let mut events = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        match rec {
            Record::Module(m) => modules.insert(m),
            Record::StackNode(n) => stacks.insert(n).unwrap(),
            other => events.push(other),
        }
    }
    let data = std::fs::read(exe).unwrap();
    let obj = object::File::parse(&*data).unwrap();
    let symbols = obj
        .symbols()
        .filter(|s| s.kind() == object::SymbolKind::Text && s.size() > 0)
        .map(|s| (s.address(), s.size(), s.name().unwrap_or("").to_string()))
        .collect();
    Loaded {
        header,
        modules,
        stacks,
        events,
        ending: r.ending(),
        symbols,
        exe: exe.canonicalize().unwrap(),
    }
}

impl Loaded {
    /// The function of the program holding the stack's innermost return address, or
    /// `<basename of the module>` when it lies in a library.
    fn site(&self, stack: u32) -> String {
        let Some(addr) = self.stacks.frames(stack).next() else {
            return "<no stack>".into();
        };
        let Some(m) = self.modules.find(addr) else {
            return format!("<unknown {addr:#x}>");
        };
        if Path::new(std::str::from_utf8(&m.path).unwrap()) != self.exe {
            let path = String::from_utf8_lossy(&m.path);
            return format!("<{}>", path.rsplit('/').next().unwrap());
        }
        let rel = m.relative(addr) - 1;
        self.symbols
            .iter()
            .find(|(start, size, _)| rel >= *start && rel < start + size)
            .map_or_else(|| format!("<{rel:#x} in exe>"), |s| s.2.clone())
    }

    /// Whether every frame of some stack of `site` resolves to a module (the unwinder
    /// got past the program into libc's start code).
    fn full_stack(&self, stack: u32) -> Vec<String> {
        self.stacks
            .frames(stack)
            .map(|a| match self.modules.find(a) {
                Some(m) if Path::new(std::str::from_utf8(&m.path).unwrap()) == self.exe => {
                    let rel = m.relative(a) - 1;
                    self.symbols
                        .iter()
                        .find(|(s, z, _)| rel >= *s && rel < s + z)
                        .map_or("?".into(), |s| s.2.clone())
                }
                Some(m) => {
                    let p = String::from_utf8_lossy(&m.path).into_owned();
                    format!("<{}>", p.rsplit('/').next().unwrap())
                }
                None => "<unknown>".into(),
            })
            .collect()
    }
}

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
                free(ptr, &mut live, &mut current, &mut sites, &last_alloc);
                last_alloc = None;
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
    let p = load(&file, &exe);
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
    assert_eq!(
        f("big_site"),
        Figures {
            total_blocks: 64,
            total_bytes: 64 * mib,
            peak_blocks: 64,
            peak_bytes: 64 * mib,
            exit_blocks: 0,
            exit_bytes: 0,
            temporary: 0
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
    let stack = p
        .events
        .iter()
        .find_map(|e| match e {
            Record::Alloc { stack, .. } if p.site(*stack) == "leak_site" => Some(*stack),
            _ => None,
        })
        .unwrap();
    let frames = p.full_stack(stack);
    assert_eq!(frames[..2], ["leak_site", "main"], "{frames:?}");
    assert!(
        frames[2..].iter().any(|f| f.starts_with("<libc")),
        "{frames:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
