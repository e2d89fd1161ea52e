//! What the profiler's CLI tests share: building the C test programs, and a recorded
//! profile loaded whole with the program's symbols, so stacks can be named by function.

use memward_profile_format::{Ending, Header, ModuleMap, Reader, Record, StackTable};
use object::{Object, ObjectSymbol};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A profile file read whole, with the symbols of the program that made it.
pub struct Loaded {
    pub header: Header,
    pub modules: ModuleMap,
    pub stacks: StackTable,
    /// Every record but modules and stack nodes, in file order.
    pub events: Vec<Record>,
    pub ending: Ending,
    /// (address, size, name) of the program's functions.
    pub symbols: Vec<(u64, u64, String)>,
    pub exe: PathBuf,
}

impl Loaded {
    /// Reads `file`, recorded from a run of `exe`.
    pub fn load(file: &Path, exe: &Path) -> Loaded {
        let mut r = Reader::new(std::io::BufReader::new(std::fs::File::open(file).unwrap()))
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
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

    /// Each frame of a stack, innermost first: the program's function holding it,
    /// `<basename>` of the library holding it, or `<unknown>`.
    pub fn frames(&self, stack: u32) -> Vec<String> {
        self.stacks.frames(stack).map(|a| self.name(a)).collect()
    }

    /// The innermost frame's name (as [`Loaded::frames`] gives it).
    pub fn site(&self, stack: u32) -> String {
        self.stacks
            .frames(stack)
            .next()
            .map_or_else(|| "<no stack>".into(), |a| self.name(a))
    }

    fn name(&self, addr: u64) -> String {
        match self.modules.find(addr) {
            Some(m) if Path::new(std::str::from_utf8(&m.path).unwrap()) == self.exe => {
                let rel = m.relative(addr) - 1;
                self.symbols
                    .iter()
                    .find(|(s, z, _)| rel >= *s && rel < s + z)
                    .map_or_else(|| format!("<{rel:#x} in exe>"), |s| s.2.clone())
            }
            Some(m) => {
                let p = String::from_utf8_lossy(&m.path).into_owned();
                format!("<{}>", p.rsplit('/').next().unwrap())
            }
            None => "<unknown>".into(),
        }
    }
}

/// A fresh directory for one test's files.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "memward-profile-test-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Compiles `tests/programs/NAME.c` with -O2 and no frame pointers into `dir`.
pub fn compile(name: &str, dir: &Path) -> PathBuf {
    compile_with(name, dir, &[])
}

/// [`compile`] with more compiler flags.
pub fn compile_with(name: &str, dir: &Path, flags: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/programs/{name}.c"));
    let out = dir.join(name);
    let st = Command::new("cc")
        .args(["-O2", "-fomit-frame-pointer", "-pthread"])
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .expect("a C compiler (cc)");
    assert!(st.success(), "compiling {}", src.display());
    out
}
