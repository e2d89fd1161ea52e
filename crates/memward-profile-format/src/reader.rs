//! The streaming reader: decodes a profile record by record from any `std::io::Read`,
//! holding only the current record and a refill buffer in memory, so a report over a
//! profile of a hundred million allocations needs no more memory than its own tables.
//!
//! A file that ends inside a record, or without the end marker, is not an error: the
//! program was killed, called `_exit`, or the disk filled. The reader returns every
//! complete record and then reports how the file ended ([`Ending`]). Bytes that cannot
//! be a record (an unknown tag below the extension range, a varint over 64 bits) are an
//! error with their offset.

use crate::record::{End, Header, Module, Record, Segment, StackNode, TimeSample};
use crate::varint::{get_u64, unzigzag};
use crate::writer::Deltas;
use crate::{tag, MAGIC, MAGIC_COMPACT};
use std::fmt;
use std::io::{self, Read};

/// Longest string or byte field the reader accepts (guards against reading garbage as a
/// gigabyte-long length).
const MAX_FIELD: u64 = 1 << 24;
/// Most arguments or segments in one record.
const MAX_ITEMS: u64 = 1 << 20;

/// Why a profile cannot be read.
///
/// ```
/// use memward_profile_format::{ReadError, Reader};
/// let err = Reader::new(&b"not a profile"[..]).unwrap_err();
/// assert!(matches!(err, ReadError::NotAProfile));
/// ```
#[derive(Debug)]
pub enum ReadError {
    /// The input does not start with the profile magic (or is a different major version).
    NotAProfile,
    /// The file ends before its header is complete.
    NoHeader,
    /// The bytes at `offset` are not a valid record.
    Corrupt {
        /// Byte offset of the bad record in the file.
        offset: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// Reading the input failed.
    Io(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::NotAProfile => f.write_str("not a memward profile (bad magic)"),
            ReadError::NoHeader => f.write_str("profile ends before its header is complete"),
            ReadError::Corrupt { offset, what } => {
                write!(f, "corrupt profile at byte {offset}: {what}")
            }
            ReadError::Io(e) => write!(f, "cannot read profile: {e}"),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// How the file ended, once [`Reader::next_record`] has returned `None`.
///
/// ```
/// use memward_profile_format::Ending;
/// assert_ne!(Ending::Complete, Ending::Truncated { offset: 10 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Not at the end yet.
    Reading,
    /// The end marker was read.
    Complete,
    /// The file stops at `offset` without an end marker (possibly inside a record, whose
    /// bytes from `offset` on were ignored).
    Truncated {
        /// Offset just after the last complete record.
        offset: u64,
    },
}

/// Decoding failed for lack of bytes or because they are wrong.
enum Short {
    More,
    Bad(&'static str),
}

/// A cursor over the buffered bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Result<u8, Short> {
        let b = *self.bytes.get(self.pos).ok_or(Short::More)?;
        self.pos += 1;
        Ok(b)
    }

    fn u64(&mut self) -> Result<u64, Short> {
        match get_u64(&self.bytes[self.pos..]) {
            Ok(Some((v, n))) => {
                self.pos += n;
                Ok(v)
            }
            Ok(None) => Err(Short::More),
            Err(()) => Err(Short::Bad("varint longer than 64 bits")),
        }
    }

    fn i64(&mut self) -> Result<i64, Short> {
        self.u64().map(unzigzag)
    }

    fn u32(&mut self) -> Result<u32, Short> {
        u32::try_from(self.u64()?).map_err(|_| Short::Bad("value over 32 bits"))
    }

    fn count(&mut self) -> Result<u64, Short> {
        let n = self.u64()?;
        if n > MAX_ITEMS {
            return Err(Short::Bad("implausible item count"));
        }
        Ok(n)
    }

    fn bytes(&mut self) -> Result<Vec<u8>, Short> {
        let n = self.u64()?;
        if n > MAX_FIELD {
            return Err(Short::Bad("implausible field length"));
        }
        let end = self.pos.checked_add(n as usize).ok_or(Short::More)?;
        let b = self.bytes.get(self.pos..end).ok_or(Short::More)?.to_vec();
        self.pos = end;
        Ok(b)
    }

    fn skip(&mut self, n: u64) -> Result<(), Short> {
        if n > MAX_FIELD {
            return Err(Short::Bad("implausible extension length"));
        }
        let end = self.pos.checked_add(n as usize).ok_or(Short::More)?;
        if end > self.bytes.len() {
            return Err(Short::More);
        }
        self.pos = end;
        Ok(())
    }
}

/// The input: plain, or gzip-compressed (a profile compressed after the run), with the
/// bytes read to sniff the format put back in front.
enum Source<R> {
    Plain(io::Chain<io::Cursor<Vec<u8>>, R>),
    #[cfg(feature = "gzip")]
    Gzip(flate2::read::MultiGzDecoder<io::Chain<io::Cursor<Vec<u8>>, R>>),
}

impl<R: Read> Source<R> {
    fn open(mut src: R) -> io::Result<Source<R>> {
        let mut head = Vec::new();
        (&mut src).take(2).read_to_end(&mut head)?;
        let gzip = head == [0x1f, 0x8b];
        let chained = io::Cursor::new(head).chain(src);
        #[cfg(feature = "gzip")]
        if gzip {
            return Ok(Source::Gzip(flate2::read::MultiGzDecoder::new(chained)));
        }
        let _ = gzip;
        Ok(Source::Plain(chained))
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::Plain(r) => r.read(buf),
            // A compressed file cut short ends where its data ends.
            #[cfg(feature = "gzip")]
            Source::Gzip(r) => match r.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }
}

/// What one decoding step produced.
enum Step {
    Record(Record),
    Header(Header),
    /// An event or site of a compacted file, turned into a record by `Synth`.
    Compact(Op),
    /// A thread switch or an extension record: nothing for the caller.
    Nothing,
}

/// Reads a profile record by record.
///
/// ```
/// use memward_profile_format::{Ending, IoSink, Reader, Record, Writer};
/// let mut w = Writer::new(vec![0u8; 4096], IoSink(Vec::new()));
/// w.header(9, 1, 0, 0, b"/bin/x", [&b"x"[..]]);
/// w.alloc(9, 0x5000, 100, 0);
/// w.flush();
/// let bytes = w.into_sink().0;
/// let mut r = Reader::new(&bytes[..]).unwrap();
/// assert_eq!(r.header().args, [b"x".to_vec()]);
/// assert_eq!(
///     r.next_record().unwrap(),
///     Some(Record::Alloc { thread: 9, ptr: 0x5000, size: 100, stack: 0 })
/// );
/// assert_eq!(r.next_record().unwrap(), None);
/// assert!(matches!(r.ending(), Ending::Truncated { .. })); // no end marker
/// ```
pub struct Reader<R> {
    /// For a compacted (version 2) file: the sites and the made-up addresses of live blocks.
    synth: Option<Synth>,
    src: Source<R>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// File offset of `buf[start]`.
    offset: u64,
    eof: bool,
    deltas: Deltas,
    header: Header,
    ending: Ending,
}

impl<R> fmt::Debug for Reader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("offset", &self.offset)
            .field("header", &self.header)
            .field("ending", &self.ending)
            .finish_non_exhaustive()
    }
}

impl<R: Read> Reader<R> {
    /// Checks the magic and reads the header. A gzip-compressed profile (see
    /// [`compress_file`](crate::compress_file)) is decompressed as it is read.
    ///
    /// ```
    /// use memward_profile_format::{ReadError, Reader, MAGIC};
    /// assert!(matches!(Reader::new(&MAGIC[..]), Err(ReadError::NoHeader)));
    /// ```
    pub fn new(src: R) -> Result<Self, ReadError> {
        let mut r = Reader {
            synth: None,
            src: Source::open(src)?,
            buf: vec![0; 64 * 1024],
            start: 0,
            end: 0,
            offset: 0,
            eof: false,
            deltas: Deltas::default(),
            header: Header::default(),
            ending: Ending::Reading,
        };
        while r.end < MAGIC.len() && !r.eof {
            r.fill()?;
        }
        if r.end < MAGIC.len() {
            return Err(
                if r.buf[..r.end] == MAGIC[..r.end] || r.buf[..r.end] == MAGIC_COMPACT[..r.end] {
                    ReadError::NoHeader
                } else {
                    ReadError::NotAProfile
                },
            );
        }
        if r.buf[..MAGIC.len()] == MAGIC_COMPACT[..] {
            r.synth = Some(Synth::default());
        } else if r.buf[..MAGIC.len()] != MAGIC[..] {
            return Err(ReadError::NotAProfile);
        }
        r.start = MAGIC.len();
        r.offset = MAGIC.len() as u64;
        match r.step()? {
            Some(Step::Header(h)) => r.header = h,
            Some(_) => {
                return Err(ReadError::Corrupt {
                    offset: MAGIC.len() as u64,
                    what: "first record is not the header",
                })
            }
            None => return Err(ReadError::NoHeader),
        }
        Ok(r)
    }

    /// The header.
    ///
    /// ```
    /// # use memward_profile_format::{IoSink, Reader, Writer};
    /// let mut w = Writer::new(vec![0u8; 256], IoSink(Vec::new()));
    /// w.header(1, 0, 0, 4096, b"", [&b""[..]; 0]);
    /// w.flush();
    /// let bytes = w.into_sink().0;
    /// assert_eq!(Reader::new(&bytes[..]).unwrap().header().sample_rate, 4096);
    /// ```
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Whether the file is a compacted one (version 2, written by
    /// [`compact_file`](crate::compact_file)). Its records read as those of the original,
    /// except that block addresses are made up: each block gets an address of its own,
    /// never reused, and a free names the same block as in the original.
    ///
    /// ```
    /// # use memward_profile_format::{IoSink, Reader, Writer};
    /// let mut w = Writer::new(vec![0u8; 256], IoSink(Vec::new()));
    /// w.header(1, 0, 0, 0, b"", [&b""[..]; 0]);
    /// w.flush();
    /// let bytes = w.into_sink().0;
    /// assert!(!Reader::new(&bytes[..]).unwrap().compacted());
    /// ```
    pub fn compacted(&self) -> bool {
        self.synth.is_some()
    }

    /// How the file ended; [`Ending::Reading`] until `next_record` returned `None`.
    ///
    /// ```
    /// # use memward_profile_format::{Ending, IoSink, Reader, Writer};
    /// let mut w = Writer::new(vec![0u8; 256], IoSink(Vec::new()));
    /// w.header(1, 0, 0, 0, b"", [&b""[..]; 0]);
    /// w.end(5, 0, 0);
    /// w.flush();
    /// let bytes = w.into_sink().0;
    /// let mut r = Reader::new(&bytes[..]).unwrap();
    /// assert_eq!(r.ending(), Ending::Reading);
    /// while r.next_record().unwrap().is_some() {}
    /// assert_eq!(r.ending(), Ending::Complete);
    /// ```
    pub fn ending(&self) -> Ending {
        self.ending
    }

    /// The next record, or `None` at the end of the file (see [`Reader::ending`]). After
    /// the end marker, or after a truncated record, it keeps returning `None`.
    ///
    /// ```
    /// # use memward_profile_format::{IoSink, Reader, Record, Writer};
    /// let mut w = Writer::new(vec![0u8; 256], IoSink(Vec::new()));
    /// w.header(1, 0, 0, 0, b"", [&b""[..]; 0]);
    /// w.time(10, 20, 30);
    /// w.flush();
    /// let bytes = w.into_sink().0;
    /// let mut r = Reader::new(&bytes[..]).unwrap();
    /// assert!(matches!(r.next_record().unwrap(), Some(Record::Time(t)) if t.heap_bytes == 20));
    /// ```
    pub fn next_record(&mut self) -> Result<Option<Record>, ReadError> {
        loop {
            if self.ending != Ending::Reading {
                return Ok(None);
            }
            match self.step()? {
                Some(Step::Record(r)) => {
                    if let Record::End(_) = r {
                        self.ending = Ending::Complete;
                    }
                    return Ok(Some(r));
                }
                Some(Step::Header(_)) => {
                    return Err(ReadError::Corrupt {
                        offset: self.offset,
                        what: "a second header",
                    })
                }
                Some(Step::Nothing) => {}
                Some(Step::Compact(op)) => {
                    let offset = self.offset;
                    let synth = self.synth.as_mut().ok_or(ReadError::Corrupt {
                        offset,
                        what: "a compacted record in an uncompacted profile",
                    })?;
                    match synth.apply(op) {
                        Ok(Some(r)) => return Ok(Some(r)),
                        Ok(None) => {}
                        Err(what) => return Err(ReadError::Corrupt { offset, what }),
                    }
                }
                None => {
                    self.ending = Ending::Truncated {
                        offset: self.offset,
                    };
                    return Ok(None);
                }
            }
        }
    }

    /// Reads more input after the buffered bytes; sets `eof` at the end.
    fn fill(&mut self) -> Result<(), ReadError> {
        if self.start > 0 && self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let n = self.buf.len() * 2;
                self.buf.resize(n, 0);
            }
        }
        loop {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Decodes one record, refilling as needed; `None` at the end of the input (clean or
    /// inside a record).
    fn step(&mut self) -> Result<Option<Step>, ReadError> {
        loop {
            let mut deltas = self.deltas;
            let mut c = Cursor {
                bytes: &self.buf[self.start..self.end],
                pos: 0,
            };
            match decode(&mut c, &mut deltas) {
                Ok(step) => {
                    self.start += c.pos;
                    self.offset += c.pos as u64;
                    self.deltas = deltas;
                    return Ok(Some(step));
                }
                Err(Short::Bad(what)) => {
                    return Err(ReadError::Corrupt {
                        offset: self.offset,
                        what,
                    })
                }
                Err(Short::More) => {
                    if self.eof {
                        return Ok(None);
                    }
                    self.fill()?;
                }
            }
        }
    }
}

fn decode(c: &mut Cursor<'_>, d: &mut Deltas) -> Result<Step, Short> {
    let t = c.byte()?;
    let rec = match t {
        tag::HEADER => {
            let pid = c.u32()?;
            let ppid = c.u32()?;
            let start_unix_nanos = c.u64()?;
            let sample_rate = c.u64()?;
            let exe = c.bytes()?;
            let n = c.count()?;
            let mut args = Vec::new();
            for _ in 0..n {
                args.push(c.bytes()?);
            }
            return Ok(Step::Header(Header {
                pid,
                ppid,
                start_unix_nanos,
                sample_rate,
                exe,
                args,
            }));
        }
        tag::MODULE => {
            let id = c.u32()?;
            let path = c.bytes()?;
            let build_id = c.bytes()?;
            let bias = c.u64()?;
            let n = c.count()?;
            let mut segments = Vec::new();
            for _ in 0..n {
                let start = bias.wrapping_add(c.i64()? as u64);
                let len = c.u64()?;
                let file_offset = c.u64()?;
                let flags = c.u32()?;
                segments.push(Segment {
                    start,
                    len,
                    file_offset,
                    flags,
                });
            }
            Record::Module(Module {
                id,
                path,
                build_id,
                bias,
                segments,
            })
        }
        tag::STACK_NODE => {
            let id = i64::from(d.node_id) + 1 + c.i64()?;
            let id = u32::try_from(id).map_err(|_| Short::Bad("stack node id out of range"))?;
            let parent = i64::from(id) - c.i64()?;
            let parent =
                u32::try_from(parent).map_err(|_| Short::Bad("stack node parent out of range"))?;
            let address = d.node_addr.wrapping_add(c.i64()? as u64);
            d.node_id = id;
            d.node_addr = address;
            Record::StackNode(StackNode {
                id,
                parent,
                address,
            })
        }
        tag::THREAD_NAME => {
            let tid = c.u32()?;
            let name = c.bytes()?;
            Record::ThreadName { tid, name }
        }
        tag::THREAD_SWITCH => {
            d.thread = c.u32()?;
            return Ok(Step::Nothing);
        }
        tag::ALLOC => {
            let ptr = d.ptr.wrapping_add(c.i64()? as u64);
            let size = c.u64()?;
            let stack = c.u32()?;
            d.ptr = ptr;
            Record::Alloc {
                thread: d.thread,
                ptr,
                size,
                stack,
            }
        }
        tag::FREE => {
            let ptr = d.ptr.wrapping_add(c.i64()? as u64);
            d.ptr = ptr;
            Record::Free {
                thread: d.thread,
                ptr,
            }
        }
        tag::REALLOC => {
            let old = d.ptr.wrapping_add(c.i64()? as u64);
            let new = old.wrapping_add(c.i64()? as u64);
            let size = c.u64()?;
            let stack = c.u32()?;
            d.ptr = new;
            Record::Realloc {
                thread: d.thread,
                old,
                new,
                size,
                stack,
            }
        }
        tag::TIME => {
            let nanos = d
                .nanos
                .checked_add(c.u64()?)
                .ok_or(Short::Bad("time overflows"))?;
            let heap_bytes = c.u64()?;
            let rss_bytes = c.u64()?;
            d.nanos = nanos;
            Record::Time(TimeSample {
                nanos,
                heap_bytes,
                rss_bytes,
            })
        }
        tag::END => {
            let nanos = d
                .nanos
                .checked_add(c.u64()?)
                .ok_or(Short::Bad("time overflows"))?;
            let allocs = c.u64()?;
            let frees = c.u64()?;
            d.nanos = nanos;
            Record::End(End {
                nanos,
                allocs,
                frees,
            })
        }
        tag::SITE => {
            let size = c.u64()?;
            let stack = c.u32()?;
            return Ok(Step::Compact(Op::Site { size, stack }));
        }
        tag::ALLOC_AT => {
            let site = c.u64()?;
            return Ok(Step::Compact(Op::Alloc {
                thread: d.thread,
                site,
            }));
        }
        tag::FREE_OF => {
            let site = c.u64()?;
            let back = c.u64()?;
            return Ok(Step::Compact(Op::Free {
                thread: d.thread,
                old: Some((site, back)),
            }));
        }
        tag::FREE_UNKNOWN => {
            return Ok(Step::Compact(Op::Free {
                thread: d.thread,
                old: None,
            }))
        }
        tag::REALLOC_OF => {
            let old_site = c.u64()?;
            let back = c.u64()?;
            let site = c.u64()?;
            return Ok(Step::Compact(Op::Realloc {
                thread: d.thread,
                old: Some((old_site, back)),
                site,
            }));
        }
        tag::REALLOC_UNKNOWN => {
            let site = c.u64()?;
            return Ok(Step::Compact(Op::Realloc {
                thread: d.thread,
                old: None,
                site,
            }));
        }
        t if t >= tag::FIRST_EXTENSION => {
            let n = c.u64()?;
            c.skip(n)?;
            return Ok(Step::Nothing);
        }
        _ => return Err(Short::Bad("unknown record tag")),
    };
    Ok(Step::Record(rec))
}

/// An event of a compacted file, as decoded (applied to `Synth` only once complete). A
/// block is named by its site and its place from the end of the site's live blocks;
/// `None`: a block the profile does not hold.
#[derive(Debug, Clone, Copy)]
enum Op {
    Site {
        size: u64,
        stack: u32,
    },
    Alloc {
        thread: u32,
        site: u64,
    },
    Free {
        thread: u32,
        old: Option<(u64, u64)>,
    },
    Realloc {
        thread: u32,
        old: Option<(u64, u64)>,
        site: u64,
    },
}

/// Turns a compacted file's events back into records with addresses: each allocation
/// gets a new made-up address (16, 32, 48, ...; never reused, never 0) at the end of its
/// site's list of live blocks, and a free names its block by site and place in that list
/// (removed as by `Vec::swap_remove`, which the writer mirrors), so every block is the
/// same block as in the original file: its size, stack, time and sampling weight, and
/// whether it was the latest allocation. A block the profile does not hold reads as
/// address 0, which no allocation has.
#[derive(Debug, Default)]
struct Synth {
    /// Size and stack per site (site `n` is `sites[n - 1]`).
    sites: Vec<(u64, u32)>,
    /// Made-up addresses of the live blocks, per site.
    live: Vec<Vec<u64>>,
    next: u64,
}

impl Synth {
    fn site(&self, site: u64) -> Result<usize, &'static str> {
        let i = (site as usize).wrapping_sub(1);
        if i < self.sites.len() {
            Ok(i)
        } else {
            Err("an event names an undefined allocation site")
        }
    }

    fn alloc(&mut self, i: usize) -> u64 {
        self.next += 16;
        self.live[i].push(self.next);
        self.next
    }

    fn take(&mut self, old: Option<(u64, u64)>) -> Result<u64, &'static str> {
        let Some((site, back)) = old else {
            return Ok(0);
        };
        let i = self.site(site)?;
        let pool = &mut self.live[i];
        let n = pool.len() as u64;
        if back >= n {
            return Err("a free of a block its site does not hold");
        }
        Ok(pool.swap_remove((n - 1 - back) as usize))
    }

    fn apply(&mut self, op: Op) -> Result<Option<Record>, &'static str> {
        Ok(Some(match op {
            Op::Site { size, stack } => {
                self.sites.push((size, stack));
                self.live.push(Vec::new());
                return Ok(None);
            }
            Op::Alloc { thread, site } => {
                let i = self.site(site)?;
                let (size, stack) = self.sites[i];
                Record::Alloc {
                    thread,
                    ptr: self.alloc(i),
                    size,
                    stack,
                }
            }
            Op::Free { thread, old } => Record::Free {
                thread,
                ptr: self.take(old)?,
            },
            Op::Realloc { thread, old, site } => {
                let i = self.site(site)?;
                let old = self.take(old)?;
                let (size, stack) = self.sites[i];
                Record::Realloc {
                    thread,
                    old,
                    new: self.alloc(i),
                    size,
                    stack,
                }
            }
        }))
    }
}
