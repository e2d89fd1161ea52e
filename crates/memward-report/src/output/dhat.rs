//! valgrind DHAT's JSON format, version 2, for `dh_view.html`.
//!
//! One program point per allocation site with DHAT's figures: totals (`tb`, `tbk`),
//! summed lifetimes (`tl`), the most live at once (`mb`, `mbk`), at the global peak
//! (`gb`, `gbk`) and at the end (`eb`, `ebk`). Block accesses are not recorded, so `bkacc`
//! is false and the viewer hides the read/write metrics. Frames are interned in `ftbl`
//! (`[root]` first) as valgrind writes them, `0xADDR: function (file:line)`, one entry per
//! inlined frame, leaf first in each `fs`. The viewer rejects two program points with the
//! same frame sequence; distinct stacks normally differ in some address, but if two do
//! not (identical labels), their figures are merged. Times are in microseconds; the
//! profile's clock ticks every 10 ms, which is therefore also the short-lived threshold.

use super::Report;
use serde::Serialize;
use std::collections::HashMap;
use std::io::{self, Write};

#[derive(Serialize)]
struct File<'a> {
    #[serde(rename = "dhatFileVersion")]
    version: u32,
    mode: &'static str,
    verb: &'static str,
    bklt: bool,
    bkacc: bool,
    tu: &'static str,
    #[serde(rename = "Mtu")]
    mtu: &'static str,
    tuth: u64,
    cmd: &'a str,
    pid: u32,
    te: u64,
    tg: u64,
    pps: Vec<ProgramPoint>,
    ftbl: Vec<String>,
}

#[derive(Serialize, Default)]
struct ProgramPoint {
    tb: u64,
    tbk: u64,
    tl: u64,
    mb: u64,
    mbk: u64,
    gb: u64,
    gbk: u64,
    eb: u64,
    ebk: u64,
    fs: Vec<usize>,
}

pub(super) fn write(r: &Report, out: &mut dyn Write) -> io::Result<()> {
    let a = &r.analysis;
    let mut ftbl = vec!["[root]".to_string()];
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut pps: Vec<ProgramPoint> = Vec::new();
    let mut by_frames: HashMap<Vec<usize>, usize> = HashMap::new();
    for (id, s) in a.active_sites() {
        let mut fs: Vec<usize> = r
            .frames(id)
            .map(|(address, f)| {
                let label = format!("{address:#X}: {}", f.label());
                *index.entry(label.clone()).or_insert_with(|| {
                    ftbl.push(label);
                    ftbl.len() - 1
                })
            })
            .collect();
        if fs.is_empty() {
            let label = "[no stack recorded]".to_string();
            fs.push(*index.entry(label.clone()).or_insert_with(|| {
                ftbl.push(label);
                ftbl.len() - 1
            }));
        }
        let pp = match by_frames.get(&fs) {
            Some(&i) => &mut pps[i],
            None => {
                by_frames.insert(fs.clone(), pps.len());
                pps.push(ProgramPoint {
                    fs,
                    ..Default::default()
                });
                pps.last_mut().expect("just pushed")
            }
        };
        pp.tb += s.total_bytes;
        pp.tbk += s.total_blocks;
        pp.tl += (s.lifetime_nanos / 1000).min(u128::from(u64::MAX)) as u64;
        // Merged points (same labels) can only add their maxima: an upper bound.
        pp.mb += s.max_bytes;
        pp.mbk += s.max_blocks;
        pp.gb += s.peak_bytes;
        pp.gbk += s.peak_blocks;
        pp.eb += s.exit_bytes;
        pp.ebk += s.exit_blocks;
    }
    let cmd = a.process.command();
    let file = File {
        version: 2,
        mode: "heap",
        verb: "Allocated",
        bklt: true,
        bkacc: false,
        tu: "µs",
        mtu: "s",
        tuth: 10_000,
        cmd: &cmd,
        pid: a.process.pid,
        te: a.duration_nanos / 1000,
        tg: a.peak.nanos / 1000,
        pps,
        ftbl,
    };
    let mut w = io::BufWriter::new(out);
    serde_json::to_writer(&mut w, &file).map_err(io::Error::other)?;
    w.write_all(b"\n")?;
    w.flush()
}
