//! The module map of the running process, for symbolising in-process (the checker's
//! reports) rather than from a recorded profile.
//!
//! The map is read from `/proc/self/maps`, not with `dl_iterate_phdr`: the checker
//! symbolises at exit and from its SIGSEGV handler, where another thread may be stopped
//! or interrupted while it holds the loader's lock (inside `dlopen`), and
//! `dl_iterate_phdr` would then wait forever. Reading a `/proc` file takes no user-space
//! lock and never calls into the loader. Each file mapping gives a path, its device and
//! inode, the file offset and the run-time range; the file's own program headers (read
//! from disk with `object`, headers only) turn a mapping into a load bias, and give the
//! build id that selects a separate debug file. A file whose device and inode differ
//! from the mapped one (replaced on disk since it was loaded), or that is deleted, keeps
//! its range but no usable path, so its frames fall back to `name+0xoffset` rather than
//! to wrong lines.
//!
//! Everything here allocates (strings, vectors, the file headers): it is meant for the
//! checker's unchecked section, where allocation goes straight to the backing allocator.

use crate::module::ModuleInfo;
use crate::Symbolizer;
use object::{Object, ObjectSegment};
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One line of `/proc/self/maps`, borrowed from the text it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping<'a> {
    /// Run-time range `[start, end)`.
    pub start: u64,
    /// End of the range (exclusive).
    pub end: u64,
    /// `r`, `w`, `x` and `p` (private) or `s` (shared), as the kernel prints them.
    pub perms: [u8; 4],
    /// Offset in the mapped file (0 for anonymous memory).
    pub offset: u64,
    /// Device (major, minor) of the mapped file.
    pub device: (u32, u32),
    /// Inode of the mapped file (0 for anonymous memory).
    pub inode: u64,
    /// The path or pseudo-name (`[stack]`, `[heap]`, `[vdso]`); empty when anonymous.
    pub path: &'a [u8],
}

impl Mapping<'_> {
    /// Readable?
    pub fn readable(&self) -> bool {
        self.perms[0] == b'r'
    }

    /// Writable?
    pub fn writable(&self) -> bool {
        self.perms[1] == b'w'
    }

    /// Private (copy-on-write) rather than shared?
    pub fn private(&self) -> bool {
        self.perms[3] == b'p'
    }
}

/// Parses the text of a `/proc/PID/maps` file, line by line, without allocating (the
/// leak scan parses it while other threads are stopped); lines that do not parse are
/// skipped.
///
/// ```
/// let text = b"55d0c0a00000-55d0c0a01000 r--p 00000000 fd:01 1234  /usr/bin/true\n\
///              7ffd1c000000-7ffd1c021000 rw-p 00000000 00:00 0    [stack]\n";
/// let maps: Vec<_> = memward_symbolize::parse_maps(text).collect();
/// assert_eq!(maps.len(), 2);
/// assert_eq!((maps[0].start, maps[0].device, maps[0].inode), (0x55d0c0a00000, (0xfd, 1), 1234));
/// assert_eq!(maps[0].path, b"/usr/bin/true");
/// assert!(maps[1].writable() && maps[1].private());
/// ```
pub fn parse_maps(text: &[u8]) -> impl Iterator<Item = Mapping<'_>> {
    text.split(|&b| b == b'\n').filter_map(parse_line)
}

fn parse_line(line: &[u8]) -> Option<Mapping<'_>> {
    let mut fields = line.splitn(6, |&b| b == b' ');
    let range = fields.next()?;
    let dash = range.iter().position(|&b| b == b'-')?;
    let perms: [u8; 4] = fields.next()?.try_into().ok()?;
    let offset = hex(fields.next()?)?;
    let device = fields.next()?;
    let colon = device.iter().position(|&b| b == b':')?;
    let inode = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
    let path = fields.next().unwrap_or(b"");
    let blank = path.iter().take_while(|&&b| b == b' ').count();
    Some(Mapping {
        start: hex(&range[..dash])?,
        end: hex(&range[dash + 1..])?,
        perms,
        offset,
        device: (
            u32::try_from(hex(&device[..colon])?).ok()?,
            u32::try_from(hex(&device[colon + 1..])?).ok()?,
        ),
        inode,
        path: &path[blank..],
    })
}

fn hex(digits: &[u8]) -> Option<u64> {
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

/// The modules (executable, shared libraries, vDSO) loaded in the running process, built
/// from its mappings: every file mapped at least once, with its load bias, build id and
/// run-time ranges.
///
/// ```
/// let modules = memward_symbolize::process_modules().unwrap();
/// let here = memward_symbolize::process_modules as fn() -> _ as usize as u64;
/// let me = modules.iter().find(|m| m.ranges.iter().any(|r| r.0 <= here && here < r.1)).unwrap();
/// assert!(me.path.is_file());
/// ```
pub fn process_modules() -> io::Result<Vec<ModuleInfo>> {
    let text = std::fs::read("/proc/self/maps")?;
    let maps: Vec<Mapping<'_>> = parse_maps(&text).collect();
    Ok(modules_of(&maps))
}

impl Symbolizer {
    /// A symbolizer for the running process's modules (see [`process_modules`]). Keep it
    /// for the life of the process: opened modules and resolved addresses are cached.
    ///
    /// ```
    /// let mut sym = memward_symbolize::Symbolizer::for_this_process().unwrap();
    /// let here = memward_symbolize::Symbolizer::for_this_process as fn() -> _ as usize as u64;
    /// let loc = sym.symbolize(here + 1).clone();
    /// assert!(loc.frames.last().unwrap().name.ends_with("for_this_process"));
    /// assert_eq!(loc.offset.unwrap() + sym.modules()[loc.module.unwrap()].load_bias, here + 1);
    /// ```
    pub fn for_this_process() -> io::Result<Symbolizer> {
        Ok(Symbolizer::new(process_modules()?))
    }

    /// Re-reads the running process's module map and adopts it if a library was loaded
    /// or unloaded since (returns whether it changed); unchanged modules stay open.
    ///
    /// ```
    /// let mut sym = memward_symbolize::Symbolizer::for_this_process().unwrap();
    /// assert!(!sym.refresh_this_process().unwrap());
    /// ```
    pub fn refresh_this_process(&mut self) -> io::Result<bool> {
        let now = process_modules()?;
        if now.as_slice() == self.modules() {
            return Ok(false);
        }
        self.set_modules(now);
        Ok(true)
    }
}

/// Groups file mappings into modules (see [`process_modules`]).
pub(crate) fn modules_of(maps: &[Mapping<'_>]) -> Vec<ModuleInfo> {
    let mut modules: Vec<ModuleInfo> = Vec::new();
    // (device, inode, path) of each module, and whether it has an executable mapping,
    // parallel to `modules`.
    let mut keys: Vec<((u32, u32), u64, &[u8])> = Vec::new();
    let mut code: Vec<bool> = Vec::new();
    for m in maps {
        let named = m.path.starts_with(b"/") || m.path == b"[vdso]";
        if !named || !m.readable() {
            continue;
        }
        let key = (m.device, m.inode, m.path);
        let executable = m.perms[2] == b'x';
        // A module starts at the mapping of its first bytes (offset 0); a later mapping
        // of a file not seen from its start (a data file mapped in pieces) is no module.
        if m.offset != 0 {
            if let Some(i) = keys.iter().rposition(|k| *k == key) {
                modules[i].ranges.push((m.start, m.end));
                code[i] |= executable;
            }
            continue;
        }
        keys.push(key);
        code.push(executable);
        modules.push(describe(m));
    }
    // A file mapped whole for reading (a symbolizer reading a library's debug
    // information, this one included) looks like a module of its own: where a file is
    // also loaded as code, only the loaded copy is its module.
    let mut i = 0;
    modules.retain(|_| {
        let keep = code[i] || !keys.iter().zip(&code).any(|(k, &c)| c && *k == keys[i]);
        i += 1;
        keep
    });
    modules
}

/// The module that starts with mapping `m`.
fn describe(m: &Mapping<'_>) -> ModuleInfo {
    let path = Path::new(OsStr::from_bytes(m.path));
    let unusable = |path: PathBuf| ModuleInfo {
        // A path that names nothing: its frames show `name+0xoffset`.
        path,
        build_id: Vec::new(),
        load_bias: m.start,
        ranges: vec![(m.start, m.end)],
    };
    if m.path == b"[vdso]" || m.path.ends_with(b" (deleted)") {
        return unusable(path.to_owned());
    }
    match std::fs::metadata(path) {
        Ok(meta) if split_dev(meta.dev()) == m.device && meta.ino() == m.inode => {}
        // Replaced since it was loaded: the file on disk describes other code.
        _ => {
            let mut replaced = path.as_os_str().to_owned();
            replaced.push(" (replaced)");
            return unusable(replaced.into());
        }
    }
    let (bias, build_id) = headers(path, m.start).unwrap_or((m.start, Vec::new()));
    ModuleInfo {
        path: path.to_owned(),
        build_id,
        load_bias: bias,
        ranges: vec![(m.start, m.end)],
    }
}

/// Load bias and build id of the file at `path`, whose first page is mapped at `start`:
/// the loadable segment at file offset 0 lies at `bias + page_down(p_vaddr)`.
fn headers(path: &Path, start: u64) -> Option<(u64, Vec<u8>)> {
    let cache = object::ReadCache::new(std::fs::File::open(path).ok()?);
    let file = object::File::parse(&cache).ok()?;
    let first = file.segments().find(|s| s.file_range().0 < PAGE)?.address();
    let bias = start.wrapping_sub(first & !(PAGE - 1));
    let build_id = file.build_id().ok().flatten().unwrap_or(&[]).to_vec();
    Some((bias, build_id))
}

/// The smallest page size the loader aligns segments to (x86-64 and aarch64 4 KiB
/// kernels); larger pages keep offset-0 segments at the same rounded address.
const PAGE: u64 = 4096;

/// (major, minor) of a `st_dev`, glibc's `gnu_dev_major` / `gnu_dev_minor` encoding.
fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_anonymous_and_odd_lines() {
        let maps: Vec<_> = parse_maps(
            b"7f00-7f10 rw-p 00000000 00:00 0 \n\
              garbage\n\
              7f10-7f20 r-xp 00001000 08:02 99 /opt/a b/lib x.so (deleted)\n",
        )
        .collect();
        assert_eq!(maps.len(), 2);
        assert_eq!(maps[0].path, b"");
        assert_eq!(maps[1].path, b"/opt/a b/lib x.so (deleted)");
        assert_eq!((maps[1].offset, maps[1].device), (0x1000, (8, 2)));
    }

    #[test]
    fn groups_mappings_by_file_and_skips_replaced_ones() {
        let exe = std::env::current_exe().unwrap();
        let meta = std::fs::metadata(&exe).unwrap();
        let line = |start: u64, off: u64, ino: u64, path: &'static str| Mapping {
            start,
            end: start + 0x1000,
            perms: *b"r--p",
            offset: off,
            device: split_dev(meta.dev()),
            inode: ino,
            path: path.as_bytes(),
        };
        let p: &'static str = exe.to_str().unwrap().to_owned().leak();
        let maps = [
            line(0x10000, 0, meta.ino(), p),
            line(0x11000, 0x1000, meta.ino(), p),
            line(0x20000, 0, meta.ino() + 1, p),
            line(0x30000, 0x5000, 7, "/data/file"),
        ];
        let mods = modules_of(&maps);
        assert_eq!(mods.len(), 2);
        assert_eq!(mods[0].path, exe);
        assert_eq!(mods[0].ranges, vec![(0x10000, 0x11000), (0x11000, 0x12000)]);
        assert!(!mods[0].build_id.is_empty());
        assert!(mods[1].path.to_str().unwrap().ends_with("(replaced)"));
        assert_eq!(mods[1].load_bias, 0x20000);
    }

    #[test]
    fn a_loaded_library_is_its_module_not_a_copy_mapped_for_reading() {
        let lib = std::env::current_exe().unwrap();
        let meta = std::fs::metadata(&lib).unwrap();
        let p: &'static str = lib.to_str().unwrap().to_owned().leak();
        let line = |start: u64, off: u64, perms: &[u8; 4]| Mapping {
            start,
            end: start + 0x1000,
            perms: *perms,
            offset: off,
            device: split_dev(meta.dev()),
            inode: meta.ino(),
            path: p.as_bytes(),
        };
        // The copy mapped for reading lies below the loaded library.
        let maps = [
            line(0x10000, 0, b"r--p"),
            line(0x40000, 0, b"r--p"),
            line(0x41000, 0x1000, b"r-xp"),
            line(0x42000, 0x2000, b"r--p"),
        ];
        let mods = modules_of(&maps);
        assert_eq!(mods.len(), 1);
        assert_eq!(
            mods[0].ranges,
            vec![(0x40000, 0x41000), (0x41000, 0x42000), (0x42000, 0x43000)]
        );
        // A data file mapped from its start, and nothing else of it: kept.
        let mods = modules_of(&maps[..1]);
        assert_eq!(mods.len(), 1);
    }

    #[test]
    fn device_numbers_split_like_glibc() {
        // makedev(0xfd, 1) and makedev(0x103, 0x1234).
        assert_eq!(split_dev(0xfd01), (0xfd, 1));
        assert_eq!(
            split_dev((0x103 << 8) | 0x34 | (0x12 << 20)),
            (0x103, 0x1234)
        );
    }
}
