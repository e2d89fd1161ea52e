//! Symbolisation at report time: run-time addresses to functions, files and lines.
//!
//! The recorder stores only addresses and the module map (path, build id, load bias), so
//! the profiled program never parses DWARF or takes a lock for it. Here each address is
//! mapped to its module by address range, translated into the file's address space
//! (`address - load_bias`), and looked up with `addr2line`: every inlined frame comes
//! back, innermost first, with the physical function last. Stack entries are return
//! addresses, so the lookup uses `address - 1`, which lies in the call instruction (the
//! return address itself can be the first instruction of the next line, or of another
//! function when the call was the last instruction). A module without DWARF still has a
//! symbol table; a module that cannot be read (deleted, rebuilt, a vDSO) degrades to
//! `name+0xoffset`, and an address outside every module to its hexadecimal value.
//!
//! Every distinct address is resolved once and cached; modules are opened lazily, once.
//! The module map can be replaced ([`Symbolizer::set_modules`], which the in-process
//! refresh uses when the program loads or unloads a library): modules whose identity is
//! unchanged keep their opened files and parsed DWARF.

use crate::demangle::demangle;
use crate::module::{self, ModuleInfo, OpenModule};
use rustc_hash::FxHashMap;

/// One source-level frame at an address: a function, or a function inlined into another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    /// What to show: the demangled function name, or `module+0xoffset` when unknown.
    pub name: String,
    /// The name as the binary spells it (mangled); equal to `name` for C functions and
    /// for unknown frames.
    pub system_name: String,
    /// The source file, when debug information has it.
    pub file: Option<String>,
    /// The source line (0 when unknown).
    pub line: u32,
    /// The source column (0 when unknown).
    pub column: u32,
    /// Whether a function name is known (from DWARF or the symbol table).
    pub resolved: bool,
}

impl Frame {
    /// `name (file:line)`, `name (file)` or `name`: a one-line label.
    ///
    /// ```
    /// use memward_symbolize::Frame;
    /// let f = Frame { name: "main".into(), system_name: "main".into(),
    ///                 file: Some("a.c".into()), line: 3, column: 7, resolved: true };
    /// assert_eq!(f.label(), "main (a.c:3)");
    /// ```
    pub fn label(&self) -> String {
        match (&self.file, self.line) {
            (Some(file), 0) => format!("{} ({file})", self.name),
            (Some(file), line) => format!("{} ({file}:{line})", self.name),
            (None, _) => self.name.clone(),
        }
    }
}

/// What one address symbolises to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The run-time address, as recorded.
    pub address: u64,
    /// Index of its module in the module map, if any contains it.
    pub module: Option<usize>,
    /// The address in the module's file (`address - load_bias`), when a module contains
    /// it: what `module+0xoffset` labels show.
    pub offset: Option<u64>,
    /// The frames at this address, innermost (most deeply inlined) first, the physical
    /// function last; never empty.
    pub frames: Vec<Frame>,
}

/// Resolves addresses against a profile's module map, caching per module and per address.
///
/// ```
/// use memward_symbolize::{ModuleInfo, Symbolizer};
/// let modules = vec![ModuleInfo { path: "/nonexistent/libx.so".into(), build_id: vec![],
///                                 load_bias: 0x7000_0000, ranges: vec![(0x7000_0000, 0x7001_0000)] }];
/// let mut sym = Symbolizer::new(modules);
/// let loc = sym.symbolize(0x7000_1234);
/// assert_eq!(loc.frames[0].name, "libx.so+0x1234");
/// assert_eq!((loc.module, loc.offset), (Some(0), Some(0x1234)));
/// assert_eq!(sym.symbolize(0x10).frames[0].name, "0x10");
/// ```
pub struct Symbolizer {
    modules: Vec<Option<OpenModule>>,
    infos: Vec<ModuleInfo>,
    /// `(start, end, module index)`, sorted by start.
    ranges: Vec<(u64, u64, usize)>,
    /// `reach[i]`: the largest `end` among `ranges[..=i]`, to stop the backward scan.
    reach: Vec<u64>,
    cache: FxHashMap<u64, Location>,
}

impl Symbolizer {
    /// A symbolizer for this module map (nothing is opened yet, except to find the address
    /// ranges of modules the profile recorded without one).
    pub fn new(modules: Vec<ModuleInfo>) -> Self {
        let mut sym = Symbolizer {
            modules: Vec::new(),
            infos: Vec::new(),
            ranges: Vec::new(),
            reach: Vec::new(),
            cache: FxHashMap::default(),
        };
        sym.set_modules(modules);
        sym
    }

    /// Replaces the module map (a library was loaded or unloaded). Modules present in
    /// both maps (same path, build id and load bias) keep their opened files; resolved
    /// addresses are forgotten, since an address may now belong to another module.
    ///
    /// ```
    /// use memward_symbolize::{ModuleInfo, Symbolizer};
    /// let lib = |bias| ModuleInfo { path: "/nonexistent/liby.so".into(), build_id: vec![],
    ///                               load_bias: bias, ranges: vec![(bias, bias + 0x1000)] };
    /// let mut sym = Symbolizer::new(vec![lib(0x10000)]);
    /// assert_eq!(sym.symbolize(0x10010).frames[0].name, "liby.so+0x10");
    /// sym.set_modules(vec![lib(0x20000)]);
    /// assert_eq!(sym.symbolize(0x10010).frames[0].name, "0x10010");
    /// assert_eq!(sym.symbolize(0x20010).frames[0].name, "liby.so+0x10");
    /// ```
    pub fn set_modules(&mut self, modules: Vec<ModuleInfo>) {
        let mut opened: Vec<OpenModule> = self.modules.drain(..).flatten().collect();
        self.modules = modules
            .iter()
            .map(|m| {
                let i = opened.iter().position(|o| o.info == *m)?;
                Some(opened.swap_remove(i))
            })
            .collect();
        let mut ranges: Vec<(u64, u64, usize)> = modules
            .iter()
            .enumerate()
            .flat_map(|(i, m)| {
                module::runtime_ranges(m)
                    .into_iter()
                    .map(move |(lo, hi)| (lo, hi, i))
            })
            .collect();
        ranges.sort_unstable();
        let reach = ranges
            .iter()
            .scan(0u64, |max, r| {
                *max = (*max).max(r.1);
                Some(*max)
            })
            .collect();
        self.reach = reach;
        self.infos = modules;
        self.ranges = ranges;
        self.cache.clear();
    }

    /// The module map this symbolizer was built from.
    pub fn modules(&self) -> &[ModuleInfo] {
        &self.infos
    }

    /// The module containing `address`, if any (of overlapping ones, the one the profile
    /// listed last: a library loaded where an unloaded one was).
    pub fn module_of(&self, address: u64) -> Option<usize> {
        let mut best = None;
        let mut i = self.ranges.partition_point(|r| r.0 <= address);
        while i > 0 && self.reach[i - 1] > address {
            i -= 1;
            let (_, end, module) = self.ranges[i];
            if address < end && best.is_none_or(|b| module > b) {
                best = Some(module);
            }
        }
        best
    }

    /// The frames at a return address (cached).
    pub fn symbolize(&mut self, address: u64) -> &Location {
        if !self.cache.contains_key(&address) {
            let loc = self.resolve(address);
            self.cache.insert(address, loc);
        }
        &self.cache[&address]
    }

    /// The frames at `address` if [`Symbolizer::symbolize`] has resolved it.
    ///
    /// ```
    /// let mut sym = memward_symbolize::Symbolizer::new(vec![]);
    /// assert!(sym.cached(0x10).is_none());
    /// sym.symbolize(0x10);
    /// assert!(sym.cached(0x10).is_some());
    /// ```
    pub fn cached(&self, address: u64) -> Option<&Location> {
        self.cache.get(&address)
    }

    fn resolve(&mut self, address: u64) -> Location {
        let Some(index) = self.module_of(address) else {
            return Location {
                address,
                module: None,
                offset: None,
                frames: vec![unknown_frame(format!("{address:#x}"))],
            };
        };
        let info = &self.infos[index];
        let open = self.modules[index].get_or_insert_with(|| OpenModule::open(info.clone()));
        let file_address = address.wrapping_sub(open.info.load_bias);
        let fallback = format!("{}+{file_address:#x}", open.short_name);
        let frames = match &open.loader {
            Ok(loader) => frames_at(loader, file_address.saturating_sub(1), &fallback),
            Err(_) => vec![unknown_frame(fallback)],
        };
        Location {
            address,
            module: Some(index),
            offset: Some(file_address),
            frames,
        }
    }
}

fn unknown_frame(label: String) -> Frame {
    Frame {
        system_name: label.clone(),
        name: label,
        file: None,
        line: 0,
        column: 0,
        resolved: false,
    }
}

/// DWARF frames at `probe` (innermost first); the symbol table's name where DWARF has no
/// function; `fallback` where neither knows the address.
fn frames_at(loader: &addr2line::Loader, probe: u64, fallback: &str) -> Vec<Frame> {
    let mut frames = Vec::new();
    if let Ok(mut iter) = loader.find_frames(probe) {
        while let Ok(Some(f)) = iter.next() {
            let raw = f
                .function
                .as_ref()
                .and_then(|n| n.raw_name().ok())
                .map(|n| n.into_owned());
            let (file, line, column) = match f.location {
                Some(l) => (
                    l.file.map(str::to_owned),
                    l.line.unwrap_or(0),
                    l.column.unwrap_or(0),
                ),
                None => (None, 0, 0),
            };
            frames.push(match raw {
                Some(raw) => Frame {
                    name: demangle(&raw).into_owned(),
                    system_name: raw,
                    file,
                    line,
                    column,
                    resolved: true,
                },
                None => Frame {
                    file,
                    line,
                    column,
                    ..unknown_frame(String::new())
                },
            });
        }
    }
    // DWARF without a function entry (or no DWARF at all): name the physical frame from
    // the symbol table, keeping the line DWARF may have given.
    let symbol = loader.find_symbol(probe);
    match frames.last_mut() {
        Some(last) if !last.resolved => match symbol {
            Some(sym) => {
                last.name = demangle(sym).into_owned();
                last.system_name = sym.to_owned();
                last.resolved = true;
            }
            None => {
                last.name = fallback.to_owned();
                last.system_name = fallback.to_owned();
            }
        },
        Some(_) => {}
        None => frames.push(match symbol {
            Some(sym) => Frame {
                name: demangle(sym).into_owned(),
                system_name: sym.to_owned(),
                file: None,
                line: 0,
                column: 0,
                resolved: true,
            },
            None => unknown_frame(fallback.to_owned()),
        }),
    }
    // Unnamed inlined frames (rare; broken DWARF) get the fallback rather than "".
    for f in &mut frames {
        if f.name.is_empty() {
            f.name = fallback.to_owned();
            f.system_name = fallback.to_owned();
        }
    }
    frames
}
