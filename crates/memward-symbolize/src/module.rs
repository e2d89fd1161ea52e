//! One module (executable or shared library) of the profiled process, opened lazily at
//! report time.
//!
//! The profile records each module's path, GNU build id and load bias; nothing is looked
//! up while the program runs. Here the file is opened once, the first time an address in
//! it is symbolised, and kept: an `addr2line` [`Loader`] parses DWARF units on demand and
//! caches them, so a module costs only what its addresses need. The build id decides
//! which file is trusted: a separate debug file under `/usr/lib/debug/.build-id/` (how
//! Debian ships debug information) is preferred, and a file on disk whose build id
//! differs from the recorded one (rebuilt since the run) is not used at all, since its
//! lines would be wrong; the frames then fall back to `module+offset`.

use addr2line::Loader;
use object::{Object, ObjectSegment};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A module as the profile recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// The path the loader mapped it from.
    pub path: PathBuf,
    /// The GNU build id (empty if the module had none).
    pub build_id: Vec<u8>,
    /// Run-time address minus the address in the file (0 for non-PIE executables).
    pub load_bias: u64,
    /// The run-time address ranges `[start, end)` of its segments as the profile recorded
    /// them; when empty they are read from the file's program headers.
    pub ranges: Vec<(u64, u64)>,
}

impl From<&memward_profile_format::Module> for ModuleInfo {
    fn from(m: &memward_profile_format::Module) -> Self {
        ModuleInfo {
            path: PathBuf::from(std::ffi::OsStr::from_bytes(&m.path)),
            build_id: m.build_id.clone(),
            load_bias: m.bias,
            ranges: m
                .segments
                .iter()
                .map(|s| (s.start, s.start.saturating_add(s.len)))
                .collect(),
        }
    }
}

/// Why a module's debug information could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// The file could not be read or parsed.
    Unreadable(String),
    /// The file on disk has another build id than the one that ran.
    BuildIdMismatch,
}

/// A module with its file opened (or the reason it could not be).
pub(crate) struct OpenModule {
    pub(crate) info: ModuleInfo,
    /// The file name shown in `module+offset` labels.
    pub(crate) short_name: String,
    pub(crate) loader: Result<Loader, Unusable>,
}

impl OpenModule {
    pub(crate) fn open(info: ModuleInfo) -> Self {
        let short_name = info
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| info.path.to_string_lossy().into_owned());
        let loader = open_loader(&info);
        OpenModule {
            info,
            short_name,
            loader,
        }
    }
}

/// The file whose DWARF and symbols describe `info`: the build-id debug file if there is
/// one, else the module itself if its build id matches.
fn open_loader(info: &ModuleInfo) -> Result<Loader, Unusable> {
    if let Some(debug) = debug_file_for(&info.build_id) {
        if let Ok(loader) = Loader::new(&debug) {
            return Ok(loader);
        }
    }
    if !info.build_id.is_empty() {
        let handle =
            std::fs::File::open(&info.path).map_err(|e| Unusable::Unreadable(e.to_string()))?;
        let cache = object::ReadCache::new(handle);
        let file = object::File::parse(&cache).map_err(|e| Unusable::Unreadable(e.to_string()))?;
        match file.build_id() {
            Ok(Some(id)) if id == info.build_id.as_slice() => {}
            _ => return Err(Unusable::BuildIdMismatch),
        }
    }
    Loader::new(&info.path).map_err(|e| Unusable::Unreadable(e.to_string()))
}

/// `/usr/lib/debug/.build-id/ab/cdef....debug`, if it exists.
fn debug_file_for(build_id: &[u8]) -> Option<PathBuf> {
    let (first, rest) = build_id.split_first()?;
    if rest.is_empty() {
        return None;
    }
    let hex: String = rest.iter().map(|b| format!("{b:02x}")).collect();
    let path = Path::new("/usr/lib/debug/.build-id")
        .join(format!("{first:02x}"))
        .join(format!("{hex}.debug"));
    path.is_file().then_some(path)
}

/// The run-time address ranges of a module: the recorded ones, else the span of its
/// loadable segments from the file plus the load bias; empty if neither is known.
pub(crate) fn runtime_ranges(info: &ModuleInfo) -> Vec<(u64, u64)> {
    if !info.ranges.is_empty() {
        return info.ranges.clone();
    }
    file_range(info).into_iter().collect()
}

fn file_range(info: &ModuleInfo) -> Option<(u64, u64)> {
    // Only the headers are read, not the whole (possibly huge) file.
    let cache = object::ReadCache::new(std::fs::File::open(&info.path).ok()?);
    let file = object::File::parse(&cache).ok()?;
    let mut lo = u64::MAX;
    let mut hi = 0u64;
    for seg in file.segments() {
        lo = lo.min(seg.address());
        hi = hi.max(seg.address().saturating_add(seg.size()));
    }
    (lo < hi).then(|| {
        (
            lo.wrapping_add(info.load_bias),
            hi.wrapping_add(info.load_bias),
        )
    })
}
