//! The writer: encodes records into a buffer the caller owns and hands full buffers to a
//! [`Sink`].
//!
//! It is built for the recorder, which runs inside `malloc`: it never allocates, takes
//! strings as borrowed byte slices, and reports a failing sink once through
//! [`Writer::error`] and then drops further output instead of failing the program. The
//! buffer is any `AsMut<[u8]>` (the recorder passes memory it mapped itself; tests pass a
//! `Vec`). Records may straddle a flush: a file cut anywhere is still a prefix of a valid
//! stream, which the reader reads up to its last complete record.
//!
//! The writer keeps the delta state (previous pointer, previous stack node, last time,
//! current thread) that the reader mirrors; [`Writer::restart`] resets it for a new file
//! (a forked child's).

use crate::varint::{put_u64, zigzag, MAX_VARINT_LEN};
use crate::{tag, MAGIC, MAGIC_COMPACT};

/// Where encoded bytes go. Implementations must not allocate from the profiled heap if
/// the writer runs inside an allocator; `write(2)` on a file descriptor is the intended
/// one.
///
/// ```
/// use memward_profile_format::{Sink, SinkError};
/// struct Count(usize);
/// impl Sink for Count {
///     fn write_all(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
///         self.0 += bytes.len();
///         Ok(())
///     }
/// }
/// ```
pub trait Sink {
    /// Writes all of `bytes`, or fails with an OS error number.
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), SinkError>;
}

/// A sink's failure: the OS error number (`ENOSPC` for a full disk), or 0 if unknown.
///
/// ```
/// let e = memward_profile_format::SinkError { errno: 28 };
/// assert_eq!(e.errno, 28);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkError {
    /// `errno` of the failed write.
    pub errno: i32,
}

/// Any `std::io::Write` as a sink (the file, a `Vec<u8>` in tests). Writing a
/// `std::fs::File` calls `write(2)` and does not allocate.
///
/// ```
/// use memward_profile_format::{IoSink, Sink};
/// let mut s = IoSink(Vec::new());
/// s.write_all(b"abc").unwrap();
/// assert_eq!(s.0, b"abc");
/// ```
#[derive(Debug)]
pub struct IoSink<W>(pub W);

impl<W: std::io::Write> Sink for IoSink<W> {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        self.0.write_all(bytes).map_err(|e| SinkError {
            errno: e.raw_os_error().unwrap_or(0),
        })
    }
}

/// The delta bases the encoder and the decoder share.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Deltas {
    pub ptr: u64,
    pub node_id: u32,
    pub node_addr: u64,
    pub nanos: u64,
    pub thread: u32,
}

/// The longest fixed-size record: a tag and up to five varints.
const MAX_EVENT: usize = 1 + 6 * MAX_VARINT_LEN;

/// The smallest buffer a [`Writer`] accepts.
pub const MIN_BUFFER: usize = 256;

/// Encodes records into `buf` and flushes it to `sink` when full.
///
/// ```
/// use memward_profile_format::{IoSink, Reader, Record, Writer};
/// let mut w = Writer::new(vec![0u8; 4096], IoSink(Vec::new()));
/// w.header(42, 1, 0, 0, b"/bin/true", [&b"true"[..]]);
/// w.stack_node(1, 0, 0x401234);
/// w.alloc(42, 0x1000, 48, 1);
/// w.free(42, 0x1000);
/// w.end(1_000, 1, 1);
/// w.flush();
/// let bytes = w.into_sink().0;
/// let mut r = Reader::new(&bytes[..]).unwrap();
/// assert_eq!(r.header().pid, 42);
/// assert!(matches!(r.next_record().unwrap(), Some(Record::StackNode(_))));
/// ```
#[derive(Debug)]
pub struct Writer<B, S> {
    buf: B,
    len: usize,
    sink: S,
    deltas: Deltas,
    error: Option<SinkError>,
    bytes_written: u64,
    /// Writes a compacted (version 2) file: see `compact.rs`.
    compact: bool,
}

impl<B: AsMut<[u8]>, S: Sink> Writer<B, S> {
    /// A writer that encodes into `buf` (at least [`MIN_BUFFER`] bytes) and flushes into
    /// `sink`. Nothing is written until [`Writer::header`].
    ///
    /// # Panics
    /// If `buf` is shorter than [`MIN_BUFFER`].
    ///
    /// ```
    /// use memward_profile_format::{IoSink, Writer};
    /// let w = Writer::new([0u8; 256], IoSink(std::io::sink()));
    /// assert!(w.error().is_none());
    /// ```
    pub fn new(mut buf: B, sink: S) -> Self {
        assert!(buf.as_mut().len() >= MIN_BUFFER, "profile buffer too small");
        Writer {
            buf,
            len: 0,
            sink,
            deltas: Deltas::default(),
            error: None,
            bytes_written: 0,
            compact: false,
        }
    }

    /// A writer of a compacted (version 2) file, whose events are written with
    /// [`Writer::compact_event`] instead of `alloc`, `free` and `realloc`.
    #[cfg(feature = "gzip")]
    pub(crate) fn new_compact(buf: B, sink: S) -> Self {
        let mut w = Writer::new(buf, sink);
        w.compact = true;
        w
    }

    /// A compacted event: `tag` (one of the version 2 event tags) by `thread`, with its
    /// site numbers.
    #[cfg(feature = "gzip")]
    pub(crate) fn compact_event(&mut self, thread: u32, tag: u8, sites: &[u64]) {
        self.reserve(2 * MAX_EVENT);
        self.thread(thread);
        self.byte(tag);
        for &s in sites {
            self.varint(s);
        }
    }

    /// Defines the next allocation site of a compacted file.
    #[cfg(feature = "gzip")]
    pub(crate) fn site(&mut self, size: u64, stack: u32) {
        self.reserve(MAX_EVENT);
        self.byte(tag::SITE);
        self.varint(size);
        self.varint(u64::from(stack));
    }

    /// Starts a new file on `sink`: drops unflushed bytes (they belong to the old file),
    /// resets the delta state and any error, and returns the old sink. A forked child uses
    /// this; it must then write a header and re-send the stack nodes and modules it uses.
    ///
    /// ```
    /// use memward_profile_format::{IoSink, Writer};
    /// let mut w = Writer::new(vec![0u8; 256], IoSink(Vec::new()));
    /// w.free(1, 8);
    /// let old = w.restart(IoSink(Vec::new()));
    /// assert!(old.0.is_empty());
    /// ```
    pub fn restart(&mut self, sink: S) -> S {
        self.len = 0;
        self.deltas = Deltas::default();
        self.error = None;
        self.bytes_written = 0;
        core::mem::replace(&mut self.sink, sink)
    }

    /// The first failure of the sink, if any; from then on output is dropped.
    ///
    /// ```
    /// # use memward_profile_format::{IoSink, Writer};
    /// assert!(Writer::new(vec![0u8; 256], IoSink(Vec::new())).error().is_none());
    /// ```
    pub fn error(&self) -> Option<SinkError> {
        self.error
    }

    /// Bytes handed to the sink so far (since the last restart).
    ///
    /// ```
    /// # use memward_profile_format::{IoSink, Writer};
    /// let mut w = Writer::new(vec![0u8; 256], IoSink(Vec::new()));
    /// w.free(1, 8);
    /// w.flush();
    /// assert_eq!(w.bytes_written(), 4);
    /// ```
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Bytes encoded but not yet flushed.
    ///
    /// ```
    /// # use memward_profile_format::{IoSink, Writer};
    /// let mut w = Writer::new(vec![0u8; 256], IoSink(Vec::new()));
    /// w.free(1, 8);
    /// assert_eq!(w.pending(), 4);
    /// ```
    pub fn pending(&self) -> usize {
        self.len
    }

    /// The sink, for inspection.
    ///
    /// ```
    /// # use memward_profile_format::{IoSink, Writer};
    /// let w = Writer::new(vec![0u8; 256], IoSink(Vec::<u8>::new()));
    /// assert!(w.sink().0.is_empty());
    /// ```
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// Consumes the writer (without flushing) and returns its sink.
    ///
    /// ```
    /// # use memward_profile_format::{IoSink, Writer};
    /// let w = Writer::new(vec![0u8; 256], IoSink(vec![1u8]));
    /// assert_eq!(w.into_sink().0, [1]);
    /// ```
    pub fn into_sink(self) -> S {
        self.sink
    }

    /// Hands the buffered bytes to the sink.
    ///
    /// ```
    /// # use memward_profile_format::{IoSink, Writer};
    /// let mut w = Writer::new(vec![0u8; 256], IoSink(Vec::new()));
    /// w.free(1, 8);
    /// w.flush();
    /// assert_eq!(w.sink().0.len(), 4);
    /// ```
    pub fn flush(&mut self) {
        if self.len == 0 {
            return;
        }
        let len = self.len;
        self.len = 0;
        if self.error.is_some() {
            return;
        }
        match self.sink.write_all(&self.buf.as_mut()[..len]) {
            Ok(()) => self.bytes_written += len as u64,
            Err(e) => self.error = Some(e),
        }
    }

    /// Makes room for `n` more bytes (`n` at most the buffer's size).
    #[inline]
    fn reserve(&mut self, n: usize) {
        if self.len + n > self.buf.as_mut().len() {
            self.flush();
        }
    }

    #[inline]
    fn byte(&mut self, b: u8) {
        self.reserve(1);
        self.buf.as_mut()[self.len] = b;
        self.len += 1;
    }

    #[inline]
    fn varint(&mut self, v: u64) {
        self.reserve(MAX_VARINT_LEN);
        self.put_varint(v);
    }

    /// [`byte`](Self::byte) and [`varint`](Self::varint) after the caller reserved room
    /// for the whole record: the event records, written once per event, check once.
    #[inline]
    fn put_byte(&mut self, b: u8) {
        self.buf.as_mut()[self.len] = b;
        self.len += 1;
    }

    #[inline]
    fn put_varint(&mut self, v: u64) {
        let len = self.len;
        self.len += put_u64(&mut self.buf.as_mut()[len..], v);
    }

    fn bytes(&mut self, mut data: &[u8]) {
        self.varint(data.len() as u64);
        while !data.is_empty() {
            if self.len == self.buf.as_mut().len() {
                self.flush();
            }
            let len = self.len;
            let room = &mut self.buf.as_mut()[len..];
            let n = room.len().min(data.len());
            room[..n].copy_from_slice(&data[..n]);
            self.len += n;
            data = &data[n..];
        }
    }

    /// Emits a thread switch when `thread` differs from the current one.
    #[inline(always)]
    fn thread(&mut self, thread: u32) {
        if thread != self.deltas.thread {
            self.deltas.thread = thread;
            self.reserve(1 + MAX_VARINT_LEN);
            self.byte(tag::THREAD_SWITCH);
            self.varint(u64::from(thread));
        }
    }

    #[inline]
    fn ptr_delta(&mut self, ptr: u64) -> u64 {
        let d = zigzag(ptr.wrapping_sub(self.deltas.ptr) as i64);
        self.deltas.ptr = ptr;
        d
    }

    /// Writes the magic and the header record (the fields of [`Header`](crate::Header),
    /// borrowed); call it first, once per file.
    ///
    /// ```
    /// # use memward_profile_format::{IoSink, Writer, MAGIC};
    /// let mut w = Writer::new(vec![0u8; 256], IoSink(Vec::new()));
    /// w.header(1, 0, 0, 0, b"/bin/sh", [&b"sh"[..], &b"-c"[..]]);
    /// w.flush();
    /// assert!(w.sink().0.starts_with(MAGIC));
    /// ```
    pub fn header<'a>(
        &mut self,
        pid: u32,
        ppid: u32,
        start_unix_nanos: u64,
        sample_rate: u64,
        exe: &[u8],
        args: impl IntoIterator<Item = &'a [u8]> + Clone,
    ) {
        self.reserve(MAGIC.len());
        let len = self.len;
        let magic = if self.compact { MAGIC_COMPACT } else { MAGIC };
        self.buf.as_mut()[len..len + MAGIC.len()].copy_from_slice(magic);
        self.len += MAGIC.len();
        self.byte(tag::HEADER);
        self.varint(u64::from(pid));
        self.varint(u64::from(ppid));
        self.varint(start_unix_nanos);
        self.varint(sample_rate);
        self.bytes(exe);
        self.varint(args.clone().into_iter().count() as u64);
        for a in args {
            self.bytes(a);
        }
    }

    /// Describes a loaded module; `segments` are (start, len, file offset, flags).
    ///
    /// ```
    /// # use memward_profile_format::{IoSink, Writer, Segment};
    /// let mut w = Writer::new(vec![0u8; 256], IoSink(Vec::new()));
    /// w.module(1, b"/bin/true", &[0xab], 0x400000, [(0x401000, 0x2000, 0x1000, Segment::READ | Segment::EXEC)]);
    /// ```
    pub fn module(
        &mut self,
        id: u32,
        path: &[u8],
        build_id: &[u8],
        bias: u64,
        segments: impl IntoIterator<Item = (u64, u64, u64, u32)> + Clone,
    ) {
        self.byte(tag::MODULE);
        self.varint(u64::from(id));
        self.bytes(path);
        self.bytes(build_id);
        self.varint(bias);
        self.varint(segments.clone().into_iter().count() as u64);
        for (start, len, file_offset, flags) in segments {
            self.varint(zigzag(start.wrapping_sub(bias) as i64));
            self.varint(len);
            self.varint(file_offset);
            self.varint(u64::from(flags));
        }
    }

    /// Adds a node to the stack trie. Ids are the recorder's; the encoding is shortest
    /// when each id is one more than the previous node's and parents are recent.
    ///
    /// ```
    /// # use memward_profile_format::{IoSink, Writer};
    /// let mut w = Writer::new(vec![0u8; 256], IoSink(Vec::new()));
    /// w.stack_node(1, 0, 0x401000);
    /// w.stack_node(2, 1, 0x401100);
    /// ```
    #[inline]
    pub fn stack_node(&mut self, id: u32, parent: u32, address: u64) {
        self.reserve(MAX_EVENT);
        self.byte(tag::STACK_NODE);
        self.varint(zigzag(i64::from(id) - i64::from(self.deltas.node_id) - 1));
        self.varint(zigzag(i64::from(id) - i64::from(parent)));
        self.varint(zigzag(address.wrapping_sub(self.deltas.node_addr) as i64));
        self.deltas.node_id = id;
        self.deltas.node_addr = address;
    }

    /// Names a thread.
    ///
    /// ```
    /// # use memward_profile_format::{IoSink, Writer};
    /// let mut w = Writer::new(vec![0u8; 256], IoSink(Vec::new()));
    /// w.thread_name(1234, b"worker-1");
    /// ```
    pub fn thread_name(&mut self, tid: u32, name: &[u8]) {
        self.byte(tag::THREAD_NAME);
        self.varint(u64::from(tid));
        self.bytes(name);
    }

    /// `size` bytes allocated at `ptr` by `thread` from stack `stack`.
    ///
    /// ```
    /// # use memward_profile_format::{IoSink, Writer};
    /// let mut w = Writer::new(vec![0u8; 256], IoSink(Vec::new()));
    /// w.alloc(1, 0x10000, 48, 0);
    /// ```
    #[inline]
    pub fn alloc(&mut self, thread: u32, ptr: u64, size: u64, stack: u32) {
        self.thread(thread);
        self.reserve(MAX_EVENT);
        self.put_byte(tag::ALLOC);
        let d = self.ptr_delta(ptr);
        self.put_varint(d);
        self.put_varint(size);
        self.put_varint(u64::from(stack));
    }

    /// The block at `ptr` freed by `thread`.
    ///
    /// ```
    /// # use memward_profile_format::{IoSink, Writer};
    /// let mut w = Writer::new(vec![0u8; 256], IoSink(Vec::new()));
    /// w.free(1, 0x10000);
    /// ```
    #[inline]
    pub fn free(&mut self, thread: u32, ptr: u64) {
        self.thread(thread);
        self.reserve(MAX_EVENT);
        self.put_byte(tag::FREE);
        let d = self.ptr_delta(ptr);
        self.put_varint(d);
    }

    /// The block at `old` resized to `size` bytes at `new`.
    ///
    /// ```
    /// # use memward_profile_format::{IoSink, Writer};
    /// let mut w = Writer::new(vec![0u8; 256], IoSink(Vec::new()));
    /// w.realloc(1, 0x10000, 0x20000, 4096, 0);
    /// ```
    #[inline]
    pub fn realloc(&mut self, thread: u32, old: u64, new: u64, size: u64, stack: u32) {
        self.thread(thread);
        self.reserve(MAX_EVENT);
        self.put_byte(tag::REALLOC);
        let d = self.ptr_delta(old);
        self.put_varint(d);
        let d = self.ptr_delta(new);
        self.put_varint(d);
        self.put_varint(size);
        self.put_varint(u64::from(stack));
    }

    /// A memory sample at `nanos` since the start (clamped to be non-decreasing).
    ///
    /// ```
    /// # use memward_profile_format::{IoSink, Writer};
    /// let mut w = Writer::new(vec![0u8; 256], IoSink(Vec::new()));
    /// w.time(10_000_000, 1 << 20, 8 << 20);
    /// ```
    pub fn time(&mut self, nanos: u64, heap_bytes: u64, rss_bytes: u64) {
        self.reserve(MAX_EVENT);
        let nanos = nanos.max(self.deltas.nanos);
        self.byte(tag::TIME);
        self.varint(nanos - self.deltas.nanos);
        self.varint(heap_bytes);
        self.varint(rss_bytes);
        self.deltas.nanos = nanos;
    }

    /// The end marker, with the counts of events written; flush after it.
    ///
    /// ```
    /// # use memward_profile_format::{IoSink, Writer};
    /// let mut w = Writer::new(vec![0u8; 256], IoSink(Vec::new()));
    /// w.end(1_000, 0, 0);
    /// w.flush();
    /// ```
    pub fn end(&mut self, nanos: u64, allocs: u64, frees: u64) {
        self.reserve(MAX_EVENT);
        let nanos = nanos.max(self.deltas.nanos);
        self.byte(tag::END);
        self.varint(nanos - self.deltas.nanos);
        self.varint(allocs);
        self.varint(frees);
        self.deltas.nanos = nanos;
    }
}
