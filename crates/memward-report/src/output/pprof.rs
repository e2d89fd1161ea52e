//! pprof's `profile.proto`, gzipped, as `go tool pprof` and the continuous profilers
//! (Parca, Pyroscope) read it.
//!
//! The messages are declared here with prost's derive rather than generated from the
//! `.proto` file: code generation would need `protoc` at build time for eight small
//! messages whose field numbers are fixed forever. Sample types follow the heap
//! convention of Go, gperftools and jemalloc: `alloc_objects`, `alloc_space`,
//! `inuse_objects`, `inuse_space` (in use = at exit, when the profile ends), then
//! memward's `peak_objects` and `peak_space` (live at the moment of the peak);
//! `default_sample_type` is `inuse_space`, as pprof assumes for heap profiles. Frames are
//! already symbolised, so mappings say so (`has_functions` ...) and pprof does not try
//! again; each location lists its inlined frames callee first. Function names are
//! demangled, with the mangled `system_name` beside them. A site whose blocks all had one
//! size gets Go's numeric `bytes` label.

use super::Report;
use flate2::{write::GzEncoder, Compression};
use prost::Message;
use std::collections::HashMap;
use std::io::{self, Write};

#[derive(Clone, PartialEq, Message)]
struct Profile {
    #[prost(message, repeated, tag = "1")]
    sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    sample: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    mapping: Vec<Mapping>,
    #[prost(message, repeated, tag = "4")]
    location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    string_table: Vec<String>,
    #[prost(int64, tag = "9")]
    time_nanos: i64,
    #[prost(int64, tag = "10")]
    duration_nanos: i64,
    #[prost(message, optional, tag = "11")]
    period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    period: i64,
    #[prost(int64, repeated, tag = "13")]
    comment: Vec<i64>,
    #[prost(int64, tag = "14")]
    default_sample_type: i64,
}

#[derive(Clone, PartialEq, Message)]
struct ValueType {
    #[prost(int64, tag = "1")]
    r#type: i64,
    #[prost(int64, tag = "2")]
    unit: i64,
}

#[derive(Clone, PartialEq, Message)]
struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    label: Vec<Label>,
}

#[derive(Clone, PartialEq, Message)]
struct Label {
    #[prost(int64, tag = "1")]
    key: i64,
    #[prost(int64, tag = "2")]
    str: i64,
    #[prost(int64, tag = "3")]
    num: i64,
    #[prost(int64, tag = "4")]
    num_unit: i64,
}

#[derive(Clone, PartialEq, Message)]
struct Mapping {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(uint64, tag = "2")]
    memory_start: u64,
    #[prost(uint64, tag = "3")]
    memory_limit: u64,
    #[prost(uint64, tag = "4")]
    file_offset: u64,
    #[prost(int64, tag = "5")]
    filename: i64,
    #[prost(int64, tag = "6")]
    build_id: i64,
    #[prost(bool, tag = "7")]
    has_functions: bool,
    #[prost(bool, tag = "8")]
    has_filenames: bool,
    #[prost(bool, tag = "9")]
    has_line_numbers: bool,
    #[prost(bool, tag = "10")]
    has_inline_frames: bool,
}

#[derive(Clone, PartialEq, Message)]
struct Location {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(uint64, tag = "2")]
    mapping_id: u64,
    #[prost(uint64, tag = "3")]
    address: u64,
    #[prost(message, repeated, tag = "4")]
    line: Vec<Line>,
}

#[derive(Clone, PartialEq, Message)]
struct Line {
    #[prost(uint64, tag = "1")]
    function_id: u64,
    #[prost(int64, tag = "2")]
    line: i64,
}

#[derive(Clone, PartialEq, Message)]
struct Function {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(int64, tag = "2")]
    name: i64,
    #[prost(int64, tag = "3")]
    system_name: i64,
    #[prost(int64, tag = "4")]
    filename: i64,
}

/// The string table (`""` first, as pprof requires).
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Self {
        Strings {
            table: vec![String::new()],
            index: HashMap::from([(String::new(), 0)]),
        }
    }

    fn get(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }
}

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn write(r: &Report, out: &mut dyn Write) -> io::Result<()> {
    let a = &r.analysis;
    let mut strings = Strings::new();
    let vt = |s: &mut Strings, t: &str, u: &str| ValueType {
        r#type: s.get(t),
        unit: s.get(u),
    };
    let sample_type = vec![
        vt(&mut strings, "alloc_objects", "count"),
        vt(&mut strings, "alloc_space", "bytes"),
        vt(&mut strings, "inuse_objects", "count"),
        vt(&mut strings, "inuse_space", "bytes"),
        vt(&mut strings, "peak_objects", "count"),
        vt(&mut strings, "peak_space", "bytes"),
    ];
    let period_type = Some(vt(&mut strings, "space", "bytes"));

    // One mapping per loaded segment (ids from 1), in module order.
    let mut mapping = Vec::new();
    for m in &a.modules {
        let filename = strings.get(&String::from_utf8_lossy(&m.path));
        let build_id: String = m.build_id.iter().map(|b| format!("{b:02x}")).collect();
        let build_id = strings.get(&build_id);
        for s in &m.segments {
            mapping.push(Mapping {
                id: mapping.len() as u64 + 1,
                memory_start: s.start,
                memory_limit: s.start.saturating_add(s.len),
                file_offset: s.file_offset,
                filename,
                build_id,
                has_functions: true,
                has_filenames: true,
                has_line_numbers: true,
                has_inline_frames: true,
            });
        }
    }
    let mapping_of = |address: u64| {
        mapping
            .iter()
            .rev()
            .find(|m| address >= m.memory_start && address < m.memory_limit)
            .map_or(0, |m| m.id)
    };

    let mut functions: Vec<Function> = Vec::new();
    let mut function_ids: HashMap<(i64, i64, i64), u64> = HashMap::new();
    let mut locations: Vec<Location> = Vec::new();
    let mut location_ids: HashMap<u64, u64> = HashMap::new();
    let mut samples = Vec::new();
    let bytes_key = strings.get("bytes");
    for (id, s) in a.active_sites() {
        let mut location_id = Vec::new();
        for address in a.stacks.frames(id) {
            if let Some(&l) = location_ids.get(&address) {
                location_id.push(l);
                continue;
            }
            let mut line = Vec::new();
            for (_, f) in r.frames_at(address) {
                let key = (
                    strings.get(&f.name),
                    strings.get(&f.system_name),
                    strings.get(f.file.as_deref().unwrap_or("")),
                );
                let function_id = *function_ids.entry(key).or_insert_with(|| {
                    functions.push(Function {
                        id: functions.len() as u64 + 1,
                        name: key.0,
                        system_name: key.1,
                        filename: key.2,
                    });
                    functions.len() as u64
                });
                line.push(Line {
                    function_id,
                    line: i64::from(f.line),
                });
            }
            let lid = locations.len() as u64 + 1;
            locations.push(Location {
                id: lid,
                mapping_id: mapping_of(address),
                address,
                line,
            });
            location_ids.insert(address, lid);
            location_id.push(lid);
        }
        let label = match s.sizes {
            Some((lo, hi)) if lo == hi => vec![Label {
                key: bytes_key,
                num: signed(lo),
                ..Default::default()
            }],
            _ => Vec::new(),
        };
        samples.push(Sample {
            location_id,
            value: [
                s.total_blocks,
                s.total_bytes,
                s.exit_blocks,
                s.exit_bytes,
                s.peak_blocks,
                s.peak_bytes,
            ]
            .map(signed)
            .to_vec(),
            label,
        });
    }
    let comment = vec![strings.get(&format!("memward profile of {}", a.process.command()))];
    let default_sample_type = strings.get("inuse_space");
    let profile = Profile {
        sample_type,
        sample: samples,
        mapping,
        location: locations,
        function: functions,
        time_nanos: signed(a.process.start_unix_nanos),
        duration_nanos: signed(a.duration_nanos),
        period_type,
        period: signed(a.process.sample_rate.max(1)),
        comment,
        default_sample_type,
        string_table: strings.table,
    };
    let mut gz = GzEncoder::new(out, Compression::default());
    gz.write_all(&profile.encode_to_vec())?;
    gz.finish()?.flush()
}
