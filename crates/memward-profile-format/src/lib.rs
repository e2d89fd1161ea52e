#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(feature = "gzip")]
mod compact;
#[cfg(feature = "gzip")]
mod compress;
mod reader;
mod record;
mod tables;
pub mod varint;
mod writer;

#[cfg(feature = "gzip")]
pub use compact::compact_file;
#[cfg(feature = "gzip")]
pub use compress::compress_file;
pub use reader::{Ending, ReadError, Reader};
pub use record::{sample_weight, End, Header, Module, Record, Segment, StackNode, TimeSample};
pub use tables::{BadNode, ModuleMap, StackTable};
pub use writer::{IoSink, Sink, SinkError, Writer, MIN_BUFFER};

/// The first eight bytes of every profile: `MWPROF`, a format major version byte (1) and a
/// newline. A reader rejects other major versions; compatible additions use extension
/// records (tags 0x80 and up), which older readers skip.
pub const MAGIC: &[u8; 8] = b"MWPROF\x01\n";

/// The magic of a compacted profile (version 2, see [`compact_file`]): the same records,
/// except that events name allocation sites instead of addresses.
pub const MAGIC_COMPACT: &[u8; 8] = b"MWPROF\x02\n";

/// Record tags (the first byte of each record). See `docs/profile-format.md`.
pub(crate) mod tag {
    pub const HEADER: u8 = 0x01;
    pub const MODULE: u8 = 0x02;
    pub const STACK_NODE: u8 = 0x03;
    pub const ALLOC: u8 = 0x04;
    pub const FREE: u8 = 0x05;
    pub const REALLOC: u8 = 0x06;
    pub const TIME: u8 = 0x07;
    pub const THREAD_NAME: u8 = 0x08;
    pub const THREAD_SWITCH: u8 = 0x09;
    pub const END: u8 = 0x0a;
    /// Version 2 (compacted) only: the next allocation site, `varint size, varint stack`.
    pub const SITE: u8 = 0x0b;
    /// Version 2: an allocation from site `varint site`.
    pub const ALLOC_AT: u8 = 0x0c;
    /// Version 2: the free of a live block of site `varint site`, `varint back` places
    /// from the end of the site's list of live blocks.
    pub const FREE_OF: u8 = 0x0d;
    /// Version 2: the free of a block the profile does not hold.
    pub const FREE_UNKNOWN: u8 = 0x0e;
    /// Version 2: a realloc of a live block (`varint old_site, varint back` as for
    /// `FREE_OF`) into a block from site `varint site`.
    pub const REALLOC_OF: u8 = 0x0f;
    /// Version 2: a realloc of a block the profile does not hold into `varint site`.
    pub const REALLOC_UNKNOWN: u8 = 0x10;
    /// Tags from here on are followed by a varint length: readers skip the unknown ones.
    pub const FIRST_EXTENSION: u8 = 0x80;
}
