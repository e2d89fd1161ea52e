//! The module map: which ELF objects are loaded where, read with `dl_iterate_phdr`.
//!
//! `dl_iterate_phdr` takes the loader's lock, so it is never called from inside an
//! allocation hook except once, at the recorder's start. After that the flusher thread,
//! which holds no recorder lock while it calls it, rescans whenever the loader's
//! add/remove counters (`dlpi_adds`, `dlpi_subs`) change: modules that `dlopen` adds
//! reach the profile and the unwinder within one flush interval.
//!
//! A scan copies what the recorder needs (path, build id, bias, `PT_LOAD` segments, the
//! `.eh_frame_hdr` location) into fixed-size entries of a mapping it owns, so nothing is
//! allocated while the loader's lock is held.

use crate::sys::{read_link, Region, ZeroValid};
use core::ffi::{c_int, c_void, CStr};

/// Most modules a scan records.
pub const MAX_MODULES: usize = 2048;
/// Longest path kept (longer ones are cut).
const MAX_PATH: usize = 472;
/// Most `PT_LOAD` segments kept per module.
const MAX_SEGMENTS: usize = 8;

/// One loaded object, as a scan found it.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct ModuleInfo {
    /// Load bias (`dlpi_addr`).
    pub bias: u64,
    /// Run-time address and length of `.eh_frame_hdr` (`PT_GNU_EH_FRAME`); 0 if none.
    pub eh_frame_hdr: (u64, u64),
    /// `PT_LOAD` segments: run-time start, length, file offset, `PF_*` flags.
    pub segments: [(u64, u64, u64, u32); MAX_SEGMENTS],
    /// How many of `segments` are in use.
    pub segment_count: u32,
    path_len: u32,
    build_id_len: u32,
    path: [u8; MAX_PATH],
    build_id: [u8; 32],
}

// SAFETY: integers and byte arrays only.
unsafe impl ZeroValid for ModuleInfo {}

impl ModuleInfo {
    /// The object's path.
    pub fn path(&self) -> &[u8] {
        &self.path[..self.path_len as usize]
    }

    /// The GNU build id (empty if none).
    pub fn build_id(&self) -> &[u8] {
        &self.build_id[..self.build_id_len as usize]
    }

    /// The segments in use.
    pub fn segments(&self) -> &[(u64, u64, u64, u32)] {
        &self.segments[..self.segment_count as usize]
    }

    /// Lowest and highest run-time address of the segments.
    pub fn range(&self) -> (u64, u64) {
        let lo = self.segments().iter().map(|s| s.0).min().unwrap_or(0);
        let hi = self.segments().iter().map(|s| s.0 + s.1).max().unwrap_or(0);
        (lo, hi)
    }

    /// Whether `addr` is inside one of the segments.
    pub fn contains(&self, addr: u64) -> bool {
        self.segments()
            .iter()
            .any(|s| addr >= s.0 && addr - s.0 < s.1)
    }

    /// Identity across scans: bias and first segment.
    pub fn key(&self) -> (u64, u64) {
        (self.bias, self.segments().first().map_or(0, |s| s.0))
    }
}

/// The result of a scan, in a mapping reused from scan to scan.
pub struct Scan {
    entries: Region,
    count: usize,
    /// The loader's counters at the last complete scan.
    adds: u64,
    subs: u64,
}

struct Visit<'a> {
    entries: &'a mut [ModuleInfo],
    count: usize,
    last: (u64, u64),
    unchanged: bool,
    first: bool,
}

impl Scan {
    /// An empty scan; `None` if memory cannot be mapped.
    pub fn new() -> Option<Scan> {
        Some(Scan {
            entries: Region::map(MAX_MODULES * core::mem::size_of::<ModuleInfo>())?,
            count: 0,
            adds: u64::MAX,
            subs: u64::MAX,
        })
    }

    /// The modules of the last scan.
    pub fn modules(&mut self) -> &[ModuleInfo] {
        let n = self.count;
        &self.entries.slice_of::<ModuleInfo>()[..n]
    }

    /// Rescans if the loader's module set changed since the last scan; returns whether it
    /// did. Takes the loader's lock: never call it while holding a lock an allocating
    /// thread may wait for.
    pub fn refresh(&mut self) -> bool {
        let mut v = Visit {
            entries: self.entries.slice_of::<ModuleInfo>(),
            count: 0,
            last: (self.adds, self.subs),
            unchanged: false,
            first: true,
        };
        // SAFETY: the callback matches dl_iterate_phdr's signature and only uses `data`
        // as the `Visit` passed here, which outlives the call.
        unsafe { libc::dl_iterate_phdr(Some(visit), (&mut v as *mut Visit<'_>).cast()) };
        if v.unchanged {
            return false;
        }
        self.count = v.count;
        (self.adds, self.subs) = v.last;
        true
    }
}

unsafe extern "C" fn visit(info: *mut libc::dl_phdr_info, size: usize, data: *mut c_void) -> c_int {
    // SAFETY: `data` is the `Visit` that `refresh` passed, alive and not otherwise
    // borrowed during the iteration; `info` is valid for this call (the loader's
    // contract), and its counters exist when `size` covers them.
    let (v, info) = unsafe { (&mut *data.cast::<Visit<'_>>(), &*info) };
    if v.first {
        v.first = false;
        if size >= core::mem::size_of::<libc::dl_phdr_info>() {
            let now = (info.dlpi_adds, info.dlpi_subs);
            if now == v.last {
                v.unchanged = true;
                return 1;
            }
            v.last = now;
        }
    }
    if v.count == v.entries.len() {
        return 1;
    }
    let name = if info.dlpi_name.is_null() {
        &b""[..]
    } else {
        // SAFETY: the loader gives a NUL-terminated name (possibly empty) or null.
        unsafe { CStr::from_ptr(info.dlpi_name) }.to_bytes()
    };
    // SAFETY: dlpi_phdr points at dlpi_phnum program headers (the loader's contract).
    let phdrs =
        unsafe { core::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
    let m = &mut v.entries[v.count];
    // SAFETY: the headers and the notes they point at are those of a loaded object.
    unsafe { fill(m, info.dlpi_addr, name, v.count == 0, phdrs) };
    if m.segment_count > 0 {
        v.count += 1;
    }
    0
}

/// Describes the loaded object with load bias `bias`, loader name `name` (empty for the
/// executable, which is then named by `/proc/self/exe` when `main`) and program headers
/// `phdrs` in `m`.
///
/// # Safety
/// `phdrs` are the program headers of an object loaded at `bias`, which stays loaded
/// during the call (its `PT_NOTE` segments are read).
unsafe fn fill(m: &mut ModuleInfo, bias: u64, name: &[u8], main: bool, phdrs: &[libc::Elf64_Phdr]) {
    *m = ModuleInfo {
        bias,
        eh_frame_hdr: (0, 0),
        segments: [(0, 0, 0, 0); MAX_SEGMENTS],
        segment_count: 0,
        path_len: 0,
        build_id_len: 0,
        path: [0; MAX_PATH],
        build_id: [0; 32],
    };
    let mut exe = [0u8; MAX_PATH];
    let path = if name.is_empty() && main {
        read_link(c"/proc/self/exe", &mut exe)
    } else {
        name
    };
    let n = path.len().min(MAX_PATH);
    m.path[..n].copy_from_slice(&path[..n]);
    m.path_len = n as u32;
    for ph in phdrs {
        let start = bias.wrapping_add(ph.p_vaddr);
        match ph.p_type {
            libc::PT_LOAD if (m.segment_count as usize) < MAX_SEGMENTS => {
                m.segments[m.segment_count as usize] = (start, ph.p_memsz, ph.p_offset, ph.p_flags);
                m.segment_count += 1;
            }
            libc::PT_GNU_EH_FRAME => m.eh_frame_hdr = (start, ph.p_memsz),
            libc::PT_NOTE if m.build_id_len == 0 => {
                // SAFETY: a PT_NOTE segment of a loaded object is mapped (it lies in a
                // PT_LOAD segment) and readable for p_memsz bytes.
                let notes =
                    unsafe { core::slice::from_raw_parts(start as *const u8, ph.p_memsz as usize) };
                if let Some(id) = gnu_build_id(notes) {
                    let n = id.len().min(32);
                    m.build_id[..n].copy_from_slice(&id[..n]);
                    m.build_id_len = n as u32;
                }
            }
            _ => {}
        }
    }
}

/// glibc's `struct dl_find_object` (2.35 and later).
#[repr(C)]
struct DlFindObject {
    flags: u64,
    map_start: *mut c_void,
    map_end: *mut c_void,
    link_map: *const LinkMap,
    eh_frame: *mut c_void,
    reserved: [u64; 7],
}

/// The public head of glibc's `struct link_map`.
#[repr(C)]
struct LinkMap {
    addr: u64,
    name: *const core::ffi::c_char,
}

extern "C" {
    /// Finds the object holding an address without the loader's lock (glibc 2.35).
    fn _dl_find_object(address: *mut c_void, result: *mut DlFindObject) -> c_int;
}

/// glibc's answer for the object holding `pc`, if one does (its link map is then set).
fn find_object(pc: u64) -> Option<DlFindObject> {
    let mut found = DlFindObject {
        flags: 0,
        map_start: core::ptr::null_mut(),
        map_end: core::ptr::null_mut(),
        link_map: core::ptr::null(),
        eh_frame: core::ptr::null_mut(),
        reserved: [0; 7],
    };
    // SAFETY: `found` is a writable `struct dl_find_object`; the address is only looked up.
    let status = unsafe { _dl_find_object(pc as *mut c_void, &mut found) };
    (status == 0 && !found.link_map.is_null()).then_some(found)
}

/// Where the loaded object holding `pc` is: the start of its mapping that holds `pc`, and
/// its load bias; `None` if no loaded object holds it. Takes no lock and allocates nothing
/// (glibc's `_dl_find_object`, made for unwinders), so it is safe inside an allocation
/// hook. The mapping is the whole object where its segments are contiguous, but only the
/// segment holding `pc` where they are not (an executable whose segments the linker left
/// a page apart): glibc then describes each segment on its own.
pub fn object_at(pc: u64) -> Option<(u64, u64)> {
    let found = find_object(pc)?;
    // SAFETY: a found object's link map is the loader's, valid while the object is loaded.
    let bias = unsafe { (*found.link_map).addr };
    Some((found.map_start as u64, bias))
}

/// The program headers of the object `found` describes: the executable's from the
/// auxiliary vector (its segments may not be contiguous, so the mapping glibc found may
/// not start with its ELF header), another object's from the ELF header at the start of
/// its mapping (the loader maps a shared object whole). `None` if they cannot be read.
fn program_headers(found: &DlFindObject, main: bool) -> Option<&'static [libc::Elf64_Phdr]> {
    let ph_size = core::mem::size_of::<libc::Elf64_Phdr>();
    if main {
        // SAFETY: getauxval reads the process's auxiliary vector; no preconditions.
        let (at, n) = unsafe {
            (
                libc::getauxval(libc::AT_PHDR),
                libc::getauxval(libc::AT_PHNUM),
            )
        };
        if at == 0 || n == 0 || at % 8 != 0 {
            return None;
        }
        // SAFETY: the kernel (or the loader, for a program it was asked to run) points
        // AT_PHDR at the executable's program headers, loaded with it (PT_PHDR) and
        // readable while the process lives; AT_PHNUM counts them.
        return Some(unsafe {
            core::slice::from_raw_parts(at as *const libc::Elf64_Phdr, n as usize)
        });
    }
    let (start, end) = (found.map_start as u64, found.map_end as u64);
    let header = core::mem::size_of::<libc::Elf64_Ehdr>() as u64;
    if end < start + header {
        return None;
    }
    // SAFETY: a shared object's mapping starts with its first PT_LOAD segment, which holds
    // the ELF header (file offset 0) and is readable; checked for size above.
    let ehdr = unsafe { &*(start as *const libc::Elf64_Ehdr) };
    if ehdr.e_ident[..4] != *b"\x7fELF" {
        return None;
    }
    let ph_end = ehdr
        .e_phoff
        .checked_add(u64::from(ehdr.e_phnum) * ph_size as u64)?;
    if usize::from(ehdr.e_phentsize) != ph_size || start + ph_end > end {
        return None;
    }
    // SAFETY: the program headers lie inside the mapped first segment (checked above).
    Some(unsafe {
        core::slice::from_raw_parts(
            (start + ehdr.e_phoff) as *const libc::Elf64_Phdr,
            usize::from(ehdr.e_phnum),
        )
    })
}

/// The loaded object holding `pc`, described as a scan would, without the loader's lock
/// (see [`object_at`]). `None` if no object holds `pc` or its headers cannot be read.
pub fn module_at(pc: u64) -> Option<ModuleInfo> {
    let found = find_object(pc)?;
    // SAFETY: the link map is the loader's, valid while the object is loaded; its name is
    // NUL-terminated (empty for the executable).
    let (bias, name) = unsafe {
        let map = &*found.link_map;
        let name = if map.name.is_null() {
            &b""[..]
        } else {
            CStr::from_ptr(map.name).to_bytes()
        };
        (map.addr, name)
    };
    // The executable is the object the loader names with an empty string.
    let main = name.is_empty();
    let phdrs = program_headers(&found, main)?;
    // SAFETY: an extant ModuleInfo is overwritten whole by `fill`.
    let mut m: ModuleInfo = unsafe { core::mem::zeroed() };
    // SAFETY: `phdrs` are the loaded object's own headers, and it is loaded now.
    unsafe { fill(&mut m, bias, name, main, phdrs) };
    (m.segment_count > 0 && m.contains(pc)).then_some(m)
}

/// Finds the `NT_GNU_BUILD_ID` note's descriptor in a note segment.
pub fn gnu_build_id(mut notes: &[u8]) -> Option<&[u8]> {
    let word = |b: &[u8], at: usize| -> Option<usize> {
        Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    let align4 = |n: usize| (n + 3) & !3;
    while notes.len() >= 12 {
        let namesz = word(notes, 0)?;
        let descsz = word(notes, 4)?;
        let kind = word(notes, 8)?;
        let name_end = 12 + align4(namesz);
        let desc_end = name_end.checked_add(align4(descsz))?;
        if desc_end > notes.len() {
            return None;
        }
        if kind == 3 && namesz == 4 && &notes[12..16] == b"GNU\0" {
            return Some(&notes[name_end..name_end + descsz]);
        }
        notes = &notes[desc_end..];
    }
    None
}

/// The run-time address of `.eh_frame`, read from the `.eh_frame_hdr` at `hdr` (its
/// `eh_frame_ptr` field, in the encodings linkers use).
pub fn eh_frame_address(hdr: &[u8], hdr_addr: u64) -> Option<u64> {
    if hdr.len() < 12 || hdr[0] != 1 {
        return None;
    }
    let enc = hdr[1];
    let field_addr = hdr_addr + 4;
    let raw: u64 = match enc & 0x0f {
        0x03 => u64::from(u32::from_ne_bytes(hdr[4..8].try_into().ok()?)),
        0x0b => i64::from(i32::from_ne_bytes(hdr[4..8].try_into().ok()?)) as u64,
        0x04 | 0x0c => u64::from_ne_bytes(hdr.get(4..12)?.try_into().ok()?),
        _ => return None,
    };
    match enc & 0x70 {
        0x00 => Some(raw),
        0x10 => Some(field_addr.wrapping_add(raw)),
        0x30 => Some(hdr_addr.wrapping_add(raw)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_this_test_binary_and_libc() {
        let mut s = Scan::new().unwrap();
        assert!(s.refresh());
        let here = finds_this_test_binary_and_libc as fn() as usize as u64;
        let mods = s.modules();
        let me = mods.iter().find(|m| m.contains(here)).expect("own module");
        assert!(!me.path().is_empty());
        assert!(me.eh_frame_hdr.0 != 0);
        assert!(mods
            .iter()
            .any(|m| m.path().windows(4).any(|w| w == b"libc")));
        // Nothing changed: no rescan.
        assert!(!s.refresh());
    }

    #[test]
    fn module_at_describes_objects_as_a_scan_does() {
        let mut s = Scan::new().unwrap();
        s.refresh();
        let here = module_at_describes_objects_as_a_scan_does as fn() as usize as u64;
        let in_libc = libc::getpid as *const () as usize as u64;
        for pc in [here, in_libc] {
            let scanned = *s.modules().iter().find(|m| m.contains(pc)).unwrap();
            let found = module_at(pc).expect("a loaded object");
            assert_eq!(found.path(), scanned.path());
            assert_eq!(found.build_id(), scanned.build_id());
            assert_eq!(found.segments(), scanned.segments());
            assert_eq!(found.eh_frame_hdr, scanned.eh_frame_hdr);
            assert_eq!(found.key(), scanned.key());
            let (start, bias) = object_at(pc).unwrap();
            assert_eq!(bias, found.bias);
            // The object's first page, or the first page of the segment holding `pc`.
            assert!(
                start == found.range().0 & !4095
                    || found
                        .segments()
                        .iter()
                        .any(|s| start == s.0 && pc >= s.0 && pc - s.0 < s.1),
                "{start:#x} for {pc:#x}"
            );
        }
        let on_stack = &s as *const Scan as u64;
        assert!(module_at(on_stack).is_none());
        assert!(object_at(on_stack).is_none());
    }

    #[test]
    fn parses_build_id_notes() {
        let mut n = Vec::new();
        n.extend_from_slice(&4u32.to_ne_bytes());
        n.extend_from_slice(&3u32.to_ne_bytes());
        n.extend_from_slice(&1u32.to_ne_bytes());
        n.extend_from_slice(b"ABI\0\x01\x02\x03\0");
        n.extend_from_slice(&4u32.to_ne_bytes());
        n.extend_from_slice(&2u32.to_ne_bytes());
        n.extend_from_slice(&3u32.to_ne_bytes());
        n.extend_from_slice(b"GNU\0\xab\xcd\0\0");
        assert_eq!(gnu_build_id(&n), Some(&[0xab, 0xcd][..]));
        assert_eq!(gnu_build_id(&n[..20]), None);
    }

    #[test]
    fn decodes_eh_frame_pointers() {
        let mut hdr = vec![1, 0x1b, 0x03, 0x3b];
        hdr.extend_from_slice(&(-0x100i32).to_ne_bytes());
        hdr.extend_from_slice(&[0; 4]);
        assert_eq!(eh_frame_address(&hdr, 0x10000), Some(0x10004 - 0x100));
        hdr[1] = 0x03;
        hdr[4..8].copy_from_slice(&0x5000u32.to_ne_bytes());
        assert_eq!(eh_frame_address(&hdr, 0x10000), Some(0x5000));
        hdr[0] = 2;
        assert_eq!(eh_frame_address(&hdr, 0x10000), None);
    }
}
