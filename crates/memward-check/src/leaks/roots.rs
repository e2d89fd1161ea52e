//! The roots: every place a program can keep a pointer outside the heap.
//!
//! LeakSanitizer scans the writable segments of each module, the thread stacks, the
//! registers and the thread-local storage. Here the memory roots are wider: every
//! readable, writable mapping of `/proc/self/maps` that the backing allocator does not
//! own. That covers the modules' data and bss (the loader maps them writable; the part
//! of bss past the file is an anonymous mapping), the static TLS blocks (a non-main
//! thread's sits at the top of its stack mapping, above its stack pointer; the main
//! thread's lies in memory the loader mapped), the loader's own data, and also memory
//! the program mapped itself: arenas of an interpreter (CPython's `pymalloc` keeps its
//! objects, which point to `malloc` blocks, in `mmap`ed arenas), custom pools. A block
//! referenced only from such memory is still reachable, and must not be reported.
//!
//! A thread stack is scanned from its thread's stack pointer up (minus the 128-byte red
//! zone a leaf function may use below it), not from the mapping's start, so that dead
//! frames do not hide leaks. Memory the backing owns is skipped page by page: the heap,
//! whose blocks count only when reached, and the checker's own tables, which point to
//! every block. A stack pointer inside backing memory (a coroutine or signal stack
//! allocated with `malloc`) makes the live block around it a root instead.
//!
//! Skipped: mappings of device files (`/dev/*` except `/dev/zero` and `/dev/shm/*`),
//! whose reads may have side effects, and without `process_vm_readv` the part of a file
//! mapping past the end of its file, which would raise `SIGBUS`.

use super::mark::Visit;
use super::memory::RootReader;
use memward_symbolize::{parse_maps, Mapping};

const PAGE: usize = 4096;
/// Below the stack pointer, the x86-64 System V ABI lets a leaf function keep data.
pub(crate) const RED_ZONE: usize = 128;

/// Scans the memory roots listed in `maps` (the text of `/proc/self/maps`).
///
/// `stack_floors` holds, for each thread whose stack pointer is known, the lowest address
/// of its stack to scan (and for each stack of a thread that has exited, its thread
/// descriptor: `dead_stacks`); in a mapping holding some, only the lowest and above are
/// read.
pub(crate) fn scan_memory_roots(
    maps: &[u8],
    stack_floors: &[usize],
    owns: &dyn Fn(usize) -> bool,
    reader: &mut RootReader,
    visit: &mut dyn Visit,
) -> usize {
    let mut scanned = 0;
    for m in parse_maps(maps) {
        if !is_root(&m) {
            continue;
        }
        let (start, end) = (m.start as usize, m.end as usize);
        let floor = stack_floors
            .iter()
            .copied()
            .filter(|&f| f >= start && f < end)
            .min();
        let lo = floor.unwrap_or(start);
        let hi = if reader.detects_faults() {
            end
        } else {
            match safe_end(&m) {
                Some(hi) => hi.min(end),
                None => continue,
            }
        };
        scanned += scan_unowned(lo, hi, owns, reader, visit);
    }
    scanned
}

/// Is this mapping root memory?
fn is_root(m: &Mapping<'_>) -> bool {
    if !m.readable() || !m.writable() {
        return false;
    }
    let device = m.path.starts_with(b"/dev/")
        && !m.path.starts_with(b"/dev/zero")
        && !m.path.starts_with(b"/dev/shm/");
    !device
}

/// Without fault detection: the end of what can be read without `SIGBUS` (the file's
/// extent for a file mapping), or `None` to skip the mapping.
fn safe_end(m: &Mapping<'_>) -> Option<usize> {
    if m.inode == 0 || !m.path.starts_with(b"/") {
        return Some(m.end as usize);
    }
    let mut path = [0u8; 4096];
    if m.path.len() >= path.len() || m.path.ends_with(b" (deleted)") {
        return None;
    }
    path[..m.path.len()].copy_from_slice(m.path);
    // SAFETY: an all-zero stat is a valid value for the kernel to fill in.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated (zero-filled past the copied bytes); `st` is valid.
    if unsafe { libc::stat(path.as_ptr().cast(), &mut st) } != 0 {
        return None;
    }
    let in_file = (st.st_size as u64).saturating_sub(m.offset);
    let in_file = (in_file as usize).next_multiple_of(PAGE);
    Some((m.start as usize).saturating_add(in_file))
}

/// Scans the pages of `[lo, hi)` the backing does not own; returns the bytes read.
fn scan_unowned(
    lo: usize,
    hi: usize,
    owns: &dyn Fn(usize) -> bool,
    reader: &mut RootReader,
    visit: &mut dyn Visit,
) -> usize {
    let mut scanned = 0;
    let mut run: Option<usize> = None;
    let mut page = lo & !(PAGE - 1);
    while page < hi {
        let owned = owns(page);
        match (run, owned) {
            (None, false) => run = Some(page.max(lo)),
            (Some(from), true) => {
                reader.scan(from, page, |w| visit.visit(w));
                scanned += page - from;
                run = None;
            }
            _ => {}
        }
        page += PAGE;
    }
    if let Some(from) = run {
        reader.scan(from, hi, |w| visit.visit(w));
        scanned += hi - from;
    }
    scanned
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Vec<usize>);
    impl Visit for Collect {
        fn visit(&mut self, w: usize) {
            if w != 0 {
                self.0.push(w);
            }
        }
    }

    #[test]
    fn owned_pages_are_skipped_and_the_floor_clips_a_mapping() {
        let mut mem = vec![0usize; 4 * PAGE / 8 + PAGE / 8];
        let origin = mem.as_ptr() as usize;
        let base = origin.next_multiple_of(PAGE);
        let at = |i: usize| (base - origin) / 8 + i * PAGE / 8;
        for i in 0..4 {
            let k = at(i);
            mem[k] = 100 + i;
            mem[k + 1] = 200 + i;
        }
        let owned_page = base + PAGE;
        let owns = move |p: usize| p >= owned_page && p < owned_page + PAGE;
        let mut reader = RootReader::new();
        let mut seen = Collect(Vec::new());
        let n = scan_unowned(base + 8, base + 4 * PAGE, &owns, &mut reader, &mut seen);
        assert_eq!(seen.0, vec![200, 102, 202, 103, 203]);
        assert_eq!(n, 3 * PAGE - 8);
    }

    #[test]
    fn without_fault_detection_a_file_mapping_is_read_only_up_to_its_file() {
        // A one-page file mapped over two pages: the second page would raise SIGBUS.
        let path = std::env::temp_dir().join(format!("memward-roots-{}", std::process::id()));
        std::fs::write(&path, [7u8; 8]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: a private mapping of our own file; unmapped below.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                2 * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        let maps = std::fs::read("/proc/self/maps").unwrap();
        let mut reader = RootReader::direct();
        let mut seen = Collect(Vec::new());
        let start = p as usize;
        let in_file = |a: usize| a >= start && a < start + 2 * PAGE;
        // Everything else counts as owned: only this mapping is scanned.
        let owns = move |a: usize| !in_file(a);
        let n = scan_memory_roots(&maps, &[], &owns, &mut reader, &mut seen);
        assert_eq!(n, PAGE, "only the page the file covers");
        assert_eq!(seen.0, vec![0x0707_0707_0707_0707]);
        // SAFETY: our mapping, no longer used.
        unsafe { libc::munmap(p, 2 * PAGE) };
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn device_mappings_are_not_roots() {
        let maps: Vec<_> = parse_maps(
            b"1000-2000 rw-s 00000000 00:05 7 /dev/dri/card0\n\
              2000-3000 rw-s 00000000 00:01 8 /dev/zero (deleted)\n\
              3000-4000 r--p 00000000 00:00 0 \n\
              4000-5000 rw-p 00000000 00:00 0 \n",
        )
        .collect();
        let roots: Vec<bool> = maps.iter().map(is_root).collect();
        assert_eq!(roots, vec![false, true, false, true]);
    }
}
