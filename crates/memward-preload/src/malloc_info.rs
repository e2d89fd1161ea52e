//! glibc's `malloc_info`: memward's statistics as glibc's XML, so that a program (or a
//! monitoring hook) that calls it reads memward's real figures instead of glibc's unused
//! arena, which is what it would read if glibc's symbol were bound.
//!
//! The document has glibc's shape (`<malloc version="1">`, one `<heap>`, `<total>`,
//! `<system>` and `<aspace>` elements with glibc's attributes), so existing parsers keep
//! working, filled from [`memward::stats()`]:
//!
//! | element | glibc | memward |
//! |---|---|---|
//! | `<heap nr="0">` | one per arena | one for the whole process (the statistics are process-wide) |
//! | `<sizes>` | free chunks by size | empty: memward does not count free blocks by size |
//! | `<total type="fast">` | fastbin chunks | 0: memward has no fastbins |
//! | `<total type="rest">` | other free chunks | size: mapped bytes not in use (as `mallinfo2`'s `fordblks`); count 0 (not counted) |
//! | `<total type="mmap">` | mmapped chunks | large and huge blocks in use (count, bytes) |
//! | `<system type="current"/"max">` | arena bytes from the OS | mapped bytes, now and at the peak |
//! | `<aspace type="total"/"mprotect">` | address space, accessible part | mapped bytes (all of it is accessible) |
//!
//! One element glibc does not have follows the totals: `<memward>`, with the figures
//! glibc's format has no place for (bytes in use and their peak, resident estimate,
//! allocation and free counts, purges, abandoned segments, heaps, the purge delay in force)
//! and a `<class>` line per size class that was ever used. Everything is written straight
//! to the caller's `FILE` with `fwrite`, without building the document in memory.

use core::ffi::c_int;
use core::fmt::{self, Write};

/// Writes formatted text to a C `FILE`; a short write is an error.
struct FileWriter(*mut libc::FILE);

impl Write for FileWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if s.is_empty() {
            return Ok(());
        }
        // SAFETY: `self.0` is the open stream `malloc_info`'s caller passed (checked
        // non-null there); the pointer and length describe `s`'s bytes.
        let n = unsafe { libc::fwrite(s.as_ptr().cast(), 1, s.len(), self.0) };
        if n == s.len() {
            Ok(())
        } else {
            Err(fmt::Error)
        }
    }
}

/// Bytes and count of large and huge blocks in use: size class 0 counts them; their bytes
/// are the bytes in use that the small classes do not account for.
fn large_blocks(s: &memward::Stats) -> (u64, u64) {
    let small: u64 = s
        .size_classes
        .iter()
        .skip(1)
        .map(|c| c.in_use * c.block_size as u64)
        .sum();
    (
        s.size_classes[0].in_use,
        s.in_use_bytes.saturating_sub(small),
    )
}

fn write_document(out: &mut impl Write, s: &memward::Stats) -> fmt::Result {
    let free_bytes = s.mapped_bytes.saturating_sub(s.in_use_bytes);
    let (large_count, large_bytes) = large_blocks(s);
    let totals = |out: &mut dyn Write| -> fmt::Result {
        writeln!(out, "<total type=\"fast\" count=\"0\" size=\"0\"/>")?;
        writeln!(
            out,
            "<total type=\"rest\" count=\"0\" size=\"{free_bytes}\"/>"
        )
    };
    let system = |out: &mut dyn Write| -> fmt::Result {
        writeln!(
            out,
            "<system type=\"current\" size=\"{}\"/>",
            s.mapped_bytes
        )?;
        writeln!(
            out,
            "<system type=\"max\" size=\"{}\"/>",
            s.peak_mapped_bytes
        )?;
        writeln!(out, "<aspace type=\"total\" size=\"{}\"/>", s.mapped_bytes)?;
        writeln!(
            out,
            "<aspace type=\"mprotect\" size=\"{}\"/>",
            s.mapped_bytes
        )
    };
    writeln!(out, "<malloc version=\"1\">")?;
    writeln!(out, "<heap nr=\"0\">")?;
    writeln!(out, "<sizes>")?;
    writeln!(out, "</sizes>")?;
    totals(out)?;
    system(out)?;
    writeln!(out, "</heap>")?;
    totals(out)?;
    writeln!(
        out,
        "<total type=\"mmap\" count=\"{large_count}\" size=\"{large_bytes}\"/>"
    )?;
    system(out)?;
    writeln!(
        out,
        "<memward in_use=\"{}\" peak_in_use=\"{}\" resident=\"{}\" allocations=\"{}\" \
         frees=\"{}\" purges=\"{}\" abandoned_segments=\"{}\" heaps=\"{}\" \
         purge_delay_ms=\"{}\">",
        s.in_use_bytes,
        s.peak_in_use_bytes,
        s.resident_bytes,
        s.allocations,
        s.frees,
        s.purges,
        s.abandoned_segments,
        s.heaps,
        memward::purge_delay_ms()
    )?;
    for c in s.size_classes.iter().filter(|c| c.allocations > 0) {
        // Block size 0 is the row of large and huge blocks.
        writeln!(
            out,
            "<class size=\"{}\" allocations=\"{}\" in_use=\"{}\"/>",
            c.block_size, c.allocations, c.in_use
        )?;
    }
    writeln!(out, "</memward>")?;
    writeln!(out, "</malloc>")
}

/// # Safety
/// glibc `malloc_info`: `options` must be 0 (else `EINVAL`, as glibc); `stream` an open
/// `FILE`. Returns 0, or -1 with `errno` set when the stream refuses the output (or is
/// NULL).
#[no_mangle]
pub unsafe extern "C" fn malloc_info(options: c_int, stream: *mut libc::FILE) -> c_int {
    if options != 0 {
        return libc::EINVAL;
    }
    if stream.is_null() {
        crate::set_errno(libc::EINVAL);
        return -1;
    }
    let stats = memward::stats();
    match write_document(&mut FileWriter(stream), &stats) {
        Ok(()) => 0,
        // fwrite has set errno.
        Err(fmt::Error) => -1,
    }
}
