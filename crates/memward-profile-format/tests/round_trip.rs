//! Every record written comes back equal, whatever the buffer size (records straddling
//! flushes), and every prefix of a file reads as the records it fully contains.

use memward_profile_format::{
    End, Ending, IoSink, Module, ReadError, Reader, Record, Segment, StackNode, TimeSample, Writer,
};
use proptest::prelude::*;

fn arb_record() -> impl Strategy<Value = Record> {
    let ptr = prop_oneof![any::<u64>(), 0x5555_0000_0000u64..0x5555_0001_0000];
    prop_oneof![
        (ptr.clone(), any::<u64>(), any::<u32>(), 1u32..5).prop_map(
            |(ptr, size, stack, thread)| {
                Record::Alloc {
                    thread,
                    ptr,
                    size,
                    stack,
                }
            }
        ),
        (ptr.clone(), 1u32..5).prop_map(|(ptr, thread)| Record::Free { thread, ptr }),
        (ptr.clone(), ptr, any::<u64>(), any::<u32>(), 1u32..5).prop_map(
            |(old, new, size, stack, thread)| Record::Realloc {
                thread,
                old,
                new,
                size,
                stack
            }
        ),
        (any::<u32>(), proptest::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(tid, name)| Record::ThreadName { tid, name }),
        (
            1u32..1000,
            proptest::collection::vec(any::<u8>(), 0..600),
            proptest::collection::vec(any::<u8>(), 0..20),
            any::<u64>(),
            proptest::collection::vec((any::<u64>(), any::<u64>(), any::<u64>(), 0u32..8), 0..5)
        )
            .prop_map(|(id, path, build_id, bias, segs)| Record::Module(Module {
                id,
                path,
                build_id,
                bias,
                segments: segs
                    .into_iter()
                    .map(|(start, len, file_offset, flags)| Segment {
                        start,
                        len,
                        file_offset,
                        flags
                    })
                    .collect(),
            })),
    ]
}

/// Writes `records` (with nodes and times interleaved by the test) and returns the bytes.
fn write(records: &[Record], buf: usize) -> Vec<u8> {
    let mut w = Writer::new(vec![0u8; buf], IoSink(Vec::new()));
    w.header(77, 1, 123, 0, b"/bin/prog", [&b"prog"[..], &b"--flag"[..]]);
    for r in records {
        match r {
            Record::Alloc {
                thread,
                ptr,
                size,
                stack,
            } => w.alloc(*thread, *ptr, *size, *stack),
            Record::Free { thread, ptr } => w.free(*thread, *ptr),
            Record::Realloc {
                thread,
                old,
                new,
                size,
                stack,
            } => w.realloc(*thread, *old, *new, *size, *stack),
            Record::ThreadName { tid, name } => w.thread_name(*tid, name),
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
            Record::Time(t) => w.time(t.nanos, t.heap_bytes, t.rss_bytes),
            Record::End(e) => w.end(e.nanos, e.allocs, e.frees),
        }
    }
    w.flush();
    assert!(w.error().is_none());
    w.into_sink().0
}

fn read_all(bytes: &[u8]) -> Result<(Vec<Record>, Ending), ReadError> {
    let mut r = Reader::new(bytes)?;
    assert_eq!(r.header().pid, 77);
    assert_eq!(r.header().args, [b"prog".to_vec(), b"--flag".to_vec()]);
    let mut out = Vec::new();
    while let Some(rec) = r.next_record()? {
        out.push(rec);
    }
    Ok((out, r.ending()))
}

/// Adds stack nodes and times with valid (increasing) values between the records.
fn with_nodes_and_times(mut records: Vec<Record>, addrs: &[u64]) -> Vec<Record> {
    let mut out = Vec::new();
    for (i, &a) in addrs.iter().enumerate() {
        let id = i as u32 + 1;
        out.push(Record::StackNode(StackNode {
            id,
            parent: id / 2,
            address: a,
        }));
        if let Some(r) = records.pop() {
            out.push(r);
        }
        out.push(Record::Time(TimeSample {
            nanos: (i as u64 + 1) * 10_000_000,
            heap_bytes: a >> 3,
            rss_bytes: a >> 2,
        }));
    }
    out.extend(records);
    out
}

proptest! {
    #[test]
    fn records_round_trip(
        records in proptest::collection::vec(arb_record(), 0..60),
        addrs in proptest::collection::vec(any::<u64>(), 0..20),
        buf in prop_oneof![Just(256usize), Just(300), Just(4096)],
    ) {
        let mut records = with_nodes_and_times(records, &addrs);
        records.push(Record::End(End { nanos: u64::MAX / 2, allocs: 3, frees: 4 }));
        let bytes = write(&records, buf);
        let (back, ending) = read_all(&bytes).unwrap();
        prop_assert_eq!(back, records);
        prop_assert_eq!(ending, Ending::Complete);
    }

    #[test]
    fn every_prefix_reads_its_complete_records(
        records in proptest::collection::vec(arb_record(), 1..12),
    ) {
        let bytes = write(&records, 4096);
        // Offsets where each record ends: the prefix up to them holds exactly that many.
        let header_len = write(&[], 4096).len();
        let mut prev = 0;
        for cut in header_len..=bytes.len() {
            let (back, ending) = read_all(&bytes[..cut]).unwrap();
            prop_assert!(back.len() >= prev);
            prev = back.len();
            prop_assert_eq!(&back[..], &records[..back.len()]);
            match ending {
                Ending::Truncated { offset } => prop_assert!(offset as usize <= cut),
                other => prop_assert!(false, "ending {:?}", other),
            }
        }
        prop_assert_eq!(prev, records.len());
        for cut in 0..header_len {
            prop_assert!(matches!(Reader::new(&bytes[..cut]), Err(ReadError::NoHeader)));
        }
    }
}

#[test]
fn garbage_is_an_error_with_its_offset() {
    let mut bytes = write(&[Record::Free { thread: 1, ptr: 8 }], 4096);
    let at = bytes.len();
    bytes.push(0x33);
    let mut r = Reader::new(&bytes[..]).unwrap();
    assert!(r.next_record().unwrap().is_some());
    match r.next_record() {
        Err(ReadError::Corrupt { offset, .. }) => assert_eq!(offset as usize, at),
        other => panic!("{other:?}"),
    }
    // Version 2 is the compacted form; a later major version is not read.
    assert!(matches!(
        Reader::new(&b"MWPROF\x03\nxxxx"[..]),
        Err(ReadError::NotAProfile)
    ));
}

#[test]
fn extension_records_are_skipped() {
    let mut bytes = write(&[Record::Free { thread: 1, ptr: 8 }], 4096);
    bytes.extend_from_slice(&[0x90, 3, 1, 2, 3]);
    bytes.extend_from_slice(&[0x05, 2]); // free of ptr 8 + 1
    let (back, _) = read_all(&bytes).unwrap();
    assert_eq!(back.len(), 2);
    assert_eq!(back[1], Record::Free { thread: 1, ptr: 9 });
}

#[test]
fn a_failing_sink_is_reported_once_and_output_dropped() {
    use memward_profile_format::{Sink, SinkError};
    struct Full(usize);
    impl Sink for Full {
        fn write_all(&mut self, _: &[u8]) -> Result<(), SinkError> {
            self.0 += 1;
            Err(SinkError { errno: 28 })
        }
    }
    let mut w = Writer::new(vec![0u8; 256], Full(0));
    for i in 0..1000 {
        w.alloc(1, i * 16, 16, 0);
    }
    w.flush();
    assert_eq!(w.error(), Some(SinkError { errno: 28 }));
    assert_eq!(w.sink().0, 1);
}

#[test]
fn a_million_allocations_take_a_few_bytes_each() {
    // Typical traffic: nearby pointers, small sizes, a handful of stacks.
    let mut w = Writer::new(vec![0u8; 1 << 16], IoSink(Vec::new()));
    w.header(1, 0, 0, 0, b"", [&b""[..]; 0]);
    let base = 0x7f12_3400_0000u64;
    for i in 0..1_000_000u64 {
        let p = base + (i * 7919 % 4096) * 48;
        w.alloc(1, p, 48, (i % 13) as u32 + 1);
        w.free(1, p);
    }
    w.flush();
    let per_pair = w.bytes_written() as f64 / 1e6;
    assert!(per_pair < 12.0, "{per_pair} bytes per alloc+free");
}

#[test]
fn realloc_and_stack_nodes_decode_to_their_values() {
    let recs = vec![
        Record::StackNode(StackNode {
            id: 1,
            parent: 0,
            address: 0x400000,
        }),
        Record::StackNode(StackNode {
            id: 2,
            parent: 1,
            address: 0x7fff_0000_0000,
        }),
        Record::StackNode(StackNode {
            id: 10,
            parent: 1,
            address: 1,
        }),
        Record::Realloc {
            thread: 3,
            old: 0,
            new: u64::MAX,
            size: 1,
            stack: 2,
        },
    ];
    let (back, _) = read_all(&write(&recs, 256)).unwrap();
    assert_eq!(back, recs);
}

#[test]
fn compressed_profiles_read_the_same_even_when_cut() {
    use std::io::Write;
    let records: Vec<Record> = (0..5000u64)
        .map(|i| Record::Alloc {
            thread: 1,
            ptr: 0x5000 + i * 32,
            size: 24,
            stack: 0,
        })
        .collect();
    let plain = write(&records, 4096);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let packed = gz.finish().unwrap();
    assert!(packed.len() * 10 < plain.len());
    let (back, ending) = read_all(&packed).unwrap();
    assert_eq!(back, records);
    assert!(matches!(ending, Ending::Truncated { .. }));
    // A compressed file cut short reads up to where its data stops.
    let (back, _) = read_all(&packed[..packed.len() / 2]).unwrap();
    assert!(!back.is_empty() && back.len() < records.len());
    assert_eq!(&back[..], &records[..back.len()]);
}
