//! Compaction after the run: a recorded profile rewritten so that events name allocation
//! sites instead of addresses, then gzipped.
//!
//! The recorder has to write addresses: it cannot tell, inside `free`, which allocation a
//! pointer came from without a table it would have to keep for every live block. Once
//! the program has exited, the addresses have done their job: a block can be named by its
//! allocation site (stack and size) and its place among the site's live blocks, counted
//! from the most recent (almost always 0 or 1). heaptrack's trace works in the same
//! spirit (an allocation names an (size, trace) index). Addresses are most of a recorded
//! file, and they differ from run to run and from block to block; sites and places repeat
//! in the program's own rhythm, which a general-purpose compressor turns into very
//! little. Naming the very block (not just any block of its site) keeps everything a
//! report derives from a block exact: its allocation time, its sampling weight, whether
//! it was the latest allocation. A site's list loses a block by moving its last block into
//! the gap (`swap_remove`), so each step costs the same however many blocks are live;
//! sites whose blocks are freed oldest first name places far from the end, which
//! compress less well than the usual most-recent-first frees.
//!
//! The rewrite applies exactly the rules the reports replay a profile with (see
//! `docs/profile-format.md`): a free or realloc of an address the file never allocated
//! becomes an explicit "unknown" free; an allocation at an address still live first frees
//! the block there (the recorder's one race, a realloc recorded late). In that race the
//! late realloc's free, which the reports skip, is written as an unknown free (one more
//! in that count per race), and a realloc onto an address still live frees that block
//! before the old one instead of after (which can move a massif snapshot between them).
//!
//! The compacted file is version 2 (`MWPROF\x02\n`); the [`Reader`] reads it into the same
//! records as the original, with made-up addresses.

use crate::record::Record;
use crate::{tag, IoSink, ReadError, Reader, Writer};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufWriter};
use std::path::Path;

type Out = Writer<Vec<u8>, IoSink<flate2::write::GzEncoder<BufWriter<File>>>>;

/// The rewrite's state: what the reports' replay keeps, with sites and places.
#[derive(Default)]
struct Compactor {
    sites: HashMap<(u64, u32), u64>,
    /// Live blocks per site (index `site - 1`), in the order the reader keeps them.
    lists: Vec<Vec<u64>>,
    /// Live blocks: address to (site, index in its list).
    live: HashMap<u64, (u64, usize)>,
    /// Addresses an allocation took over before the realloc that freed them was written.
    displaced: HashSet<u64>,
}

impl Compactor {
    fn site(&mut self, w: &mut Out, size: u64, stack: u32) -> u64 {
        let next = self.sites.len() as u64 + 1;
        let site = *self.sites.entry((size, stack)).or_insert_with(|| {
            w.site(size, stack);
            next
        });
        if site == next {
            self.lists.push(Vec::new());
        }
        site
    }

    fn insert(&mut self, ptr: u64, site: u64) {
        let list = &mut self.lists[site as usize - 1];
        list.push(ptr);
        self.live.insert(ptr, (site, list.len() - 1));
    }

    /// Removes the live block at `ptr` as the reader will (`swap_remove`): its site and
    /// its place from the end of the site's list.
    fn remove(&mut self, ptr: u64) -> Option<(u64, u64)> {
        let (site, i) = self.live.remove(&ptr)?;
        let list = &mut self.lists[site as usize - 1];
        let back = (list.len() - 1 - i) as u64;
        list.swap_remove(i);
        if let Some(&moved) = list.get(i) {
            if let Some(e) = self.live.get_mut(&moved) {
                e.1 = i;
            }
        }
        Some((site, back))
    }

    /// Makes room for a block at `ptr`: a block still live there is freed first.
    fn take_address(&mut self, w: &mut Out, thread: u32, ptr: u64) {
        if let Some((site, back)) = self.remove(ptr) {
            w.compact_event(thread, tag::FREE_OF, &[site, back]);
            self.displaced.insert(ptr);
        }
    }

    fn record(&mut self, w: &mut Out, r: Record) {
        match r {
            Record::Module(m) => w.module(
                m.id,
                &m.path,
                &m.build_id,
                m.bias,
                m.segments
                    .iter()
                    .map(|s| (s.start, s.len, s.file_offset, s.flags)),
            ),
            Record::StackNode(n) => w.stack_node(n.id, n.parent, n.address),
            Record::ThreadName { tid, name } => w.thread_name(tid, &name),
            Record::Time(t) => w.time(t.nanos, t.heap_bytes, t.rss_bytes),
            Record::End(e) => w.end(e.nanos, e.allocs, e.frees),
            Record::Alloc {
                thread,
                ptr,
                size,
                stack,
            } => {
                let site = self.site(w, size, stack);
                self.take_address(w, thread, ptr);
                self.insert(ptr, site);
                w.compact_event(thread, tag::ALLOC_AT, &[site]);
            }
            Record::Free { thread, ptr } => {
                if !self.displaced.is_empty() {
                    self.displaced.remove(&ptr);
                }
                match self.remove(ptr) {
                    Some((site, back)) => w.compact_event(thread, tag::FREE_OF, &[site, back]),
                    None => w.compact_event(thread, tag::FREE_UNKNOWN, &[]),
                }
            }
            Record::Realloc {
                thread,
                old,
                new,
                size,
                stack,
            } => {
                let site = self.site(w, size, stack);
                let skipped = !self.displaced.is_empty() && self.displaced.remove(&old);
                // A block still live at `new` (other than the one this realloc frees) is
                // freed in a record before the realloc, and before the old block as the
                // reader will (the reports free it after the old block).
                let freed = if !skipped && old == new {
                    self.remove(old)
                } else {
                    self.take_address(w, thread, new);
                    if skipped {
                        None
                    } else {
                        self.remove(old)
                    }
                };
                self.insert(new, site);
                match freed {
                    Some((old_site, back)) => {
                        w.compact_event(thread, tag::REALLOC_OF, &[old_site, back, site])
                    }
                    None => w.compact_event(thread, tag::REALLOC_UNKNOWN, &[site]),
                }
            }
        }
    }
}

/// Rewrites the profile at `path` in place into its compacted, gzipped form (through a
/// temporary file renamed over it) and returns the new size. A file that is compacted
/// already is left alone. A profile cut short stays cut short (no end marker), with
/// every complete record kept; a corrupt one is left as it is and the error returned.
///
/// Every report figure of the compacted file equals that of the original (see the module
/// notes for the one count that can differ in a multi-threaded race).
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("mw-compact-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// use memward_profile_format::{compact_file, IoSink, Reader, Record, Writer};
/// let path = dir.join("p");
/// let mut w = Writer::new(vec![0u8; 4096], IoSink(std::fs::File::create(&path)?));
/// w.header(1, 0, 0, 0, b"/bin/x", [&b"x"[..]]);
/// for i in 0..1000 {
///     // A block allocated and freed, at an address that wanders through the heap.
///     w.alloc(1, 0x10_0000 + i * 48, 40, 0);
///     w.free(1, 0x10_0000 + i * 48);
/// }
/// w.flush();
/// drop(w);
/// let before = std::fs::metadata(&path)?.len();
/// let after = compact_file(&path)?;
/// assert!(after * 10 < before);
/// let mut r = Reader::new(std::fs::File::open(&path)?).unwrap();
/// assert!(r.compacted());
/// assert!(matches!(r.next_record().unwrap(), Some(Record::Alloc { size: 40, .. })));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn compact_file(path: &Path) -> io::Result<u64> {
    let to_io = |e: ReadError| match e {
        ReadError::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    };
    let mut reader = Reader::new(io::BufReader::new(File::open(path)?)).map_err(to_io)?;
    if reader.compacted() {
        return std::fs::metadata(path).map(|m| m.len());
    }
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".compact-tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let result = (|| {
        let gz = flate2::write::GzEncoder::new(
            BufWriter::new(File::create(&tmp)?),
            flate2::Compression::best(),
        );
        let mut w: Out = Writer::new_compact(vec![0u8; 64 * 1024], IoSink(gz));
        let h = reader.header().clone();
        w.header(
            h.pid,
            h.ppid,
            h.start_unix_nanos,
            h.sample_rate,
            &h.exe,
            h.args.iter().map(Vec::as_slice),
        );
        let mut c = Compactor::default();
        while let Some(r) = reader.next_record().map_err(to_io)? {
            c.record(&mut w, r);
        }
        w.flush();
        if let Some(e) = w.error() {
            return Err(io::Error::from_raw_os_error(e.errno));
        }
        w.into_sink()
            .0
            .finish()?
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::metadata(path).map(|m| m.len())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
