//! The report formats, all written from one [`Report`]: an [`Analysis`] plus the
//! symbols of the stacks it mentions.
//!
//! Symbolisation happens once, up front, for the addresses of the sites that allocated
//! anything (often a small fraction of the recorded stack nodes); every writer then reads
//! frames without mutating anything. A stack's frames come innermost first with inlined
//! frames expanded, each paired with its address, since some formats (massif, DHAT)
//! show addresses and others (folded, pprof) key on names.

mod dhat;
mod diff;
mod folded;
mod html;
mod massif;
mod pprof;
mod text;

pub use diff::diff;

use crate::{Analysis, Error, Frame, ModuleInfo, Site, Symbolizer};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The output formats of `memward report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A text summary: peak and when, top peak consumers, leaks, most allocations, most
    /// temporary allocations, sizes.
    Text,
    /// One self-contained HTML page with an explorable flamegraph and a timeline.
    Html,
    /// valgrind massif's `massif.out` (for `ms_print` and massif-visualizer).
    Massif,
    /// valgrind DHAT's JSON (version 2, for `dh_view.html`).
    Dhat,
    /// pprof's gzipped `profile.proto` (for `go tool pprof`).
    Pprof,
    /// Folded stacks (`root;caller;leaf COUNT`) for flamegraph tools.
    Folded,
    /// A flamegraph SVG (rendered with inferno).
    Flamegraph,
}

impl Format {
    /// The format named on the command line.
    ///
    /// ```
    /// use memward_report::Format;
    /// assert_eq!(Format::from_name("dhat"), Some(Format::Dhat));
    /// assert_eq!(Format::from_name("svg"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Format> {
        Some(match name {
            "text" => Format::Text,
            "html" => Format::Html,
            "massif" => Format::Massif,
            "dhat" => Format::Dhat,
            "pprof" => Format::Pprof,
            "folded" => Format::Folded,
            "flamegraph" => Format::Flamegraph,
            _ => return None,
        })
    }
}

/// What a flamegraph or folded output weighs stacks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Bytes live at the moment of the peak (the default).
    Peak,
    /// Bytes allocated over the whole run.
    Allocated,
    /// Bytes still live at exit.
    Leaked,
    /// Allocation calls.
    Allocations,
    /// Temporary allocations.
    Temporary,
}

impl Metric {
    /// The metric named on the command line.
    ///
    /// ```
    /// use memward_report::Metric;
    /// assert_eq!(Metric::from_name("leaked"), Some(Metric::Leaked));
    /// ```
    pub fn from_name(name: &str) -> Option<Metric> {
        Some(match name {
            "peak" => Metric::Peak,
            "allocated" => Metric::Allocated,
            "leaked" => Metric::Leaked,
            "allocations" => Metric::Allocations,
            "temporary" => Metric::Temporary,
            _ => return None,
        })
    }

    /// The site's figure for this metric.
    ///
    /// ```
    /// use memward_report::{Metric, Site};
    /// let mut s = Site::default();
    /// s.total_bytes = 10;
    /// s.total_blocks = 2;
    /// assert_eq!(Metric::Allocated.of(&s), 10);
    /// assert_eq!(Metric::Allocations.of(&s), 2);
    /// ```
    pub fn of(self, site: &Site) -> u64 {
        match self {
            Metric::Peak => site.peak_bytes,
            Metric::Allocated => site.total_bytes,
            Metric::Leaked => site.exit_bytes,
            Metric::Allocations => site.total_blocks,
            Metric::Temporary => site.temporary_blocks,
        }
    }

    /// What the figure counts ("bytes" or "allocations").
    pub(crate) fn unit(self) -> &'static str {
        match self {
            Metric::Peak | Metric::Allocated | Metric::Leaked => "bytes",
            Metric::Allocations | Metric::Temporary => "allocations",
        }
    }
}

/// A profile ready to be written in any format: its analysis and the symbols of its
/// allocation sites.
pub struct Report {
    /// The figures.
    pub analysis: Analysis,
    symbols: Symbolizer,
    /// The profile file (massif's snapshots replay it a second time).
    path: Option<PathBuf>,
}

impl Report {
    /// Reads, analyses and symbolises the profile at `path`.
    ///
    /// ```no_run
    /// let report = memward_report::Report::open("memward-profile.prog.1234".as_ref())?;
    /// println!("{} bytes at the peak", report.analysis.peak.bytes);
    /// # Ok::<(), memward_report::Error>(())
    /// ```
    pub fn open(path: &Path) -> Result<Report, Error> {
        let analysis = Analysis::from_path(path)?;
        let mut r = Report::from_analysis(analysis);
        r.path = Some(path.to_owned());
        Ok(r)
    }

    /// Symbolises an analysis made elsewhere (massif output then needs [`Report::open`]).
    ///
    /// ```
    /// use memward_profile_format::{IoSink, Writer};
    /// let mut w = Writer::new(vec![0u8; 4096], IoSink(Vec::new()));
    /// w.header(7, 1, 0, 0, b"/bin/prog", [&b"prog"[..]]);
    /// w.stack_node(1, 0, 0x401000);
    /// w.alloc(7, 0x1000, 48, 1);
    /// w.flush();
    /// let a = memward_report::Analysis::from_reader(&w.into_sink().0[..]).unwrap();
    /// let r = memward_report::Report::from_analysis(a);
    /// assert_eq!(r.frames(1).next().unwrap().1.name, "0x401000");
    /// ```
    pub fn from_analysis(analysis: Analysis) -> Report {
        let modules = analysis.modules.iter().map(ModuleInfo::from).collect();
        let mut symbols = Symbolizer::new(modules);
        for (id, _) in analysis.active_sites() {
            for address in analysis.stacks.frames(id) {
                symbols.symbolize(address);
            }
        }
        Report {
            analysis,
            symbols,
            path: None,
        }
    }

    /// The frames of stack `id`, innermost first, inlined frames expanded, each with its
    /// return address.
    pub fn frames(&self, id: u32) -> impl Iterator<Item = (u64, &Frame)> + '_ {
        self.analysis
            .stacks
            .frames(id)
            .flat_map(move |address| self.frames_at(address))
    }

    /// The frames at one return address (innermost first), with that address.
    pub(crate) fn frames_at(&self, address: u64) -> impl Iterator<Item = (u64, &Frame)> + '_ {
        self.symbols
            .cached(address)
            .map(|l| l.frames.as_slice())
            .unwrap_or(&[])
            .iter()
            .map(move |f| (address, f))
    }

    /// Writes the report in `format` to `out`; `metric` weighs folded stacks and the
    /// flamegraph SVG (other formats carry every metric).
    ///
    /// ```no_run
    /// use memward_report::{Format, Metric, Report};
    /// let report = Report::open("memward-profile.prog.1234".as_ref())?;
    /// report.write(Format::Dhat, Metric::Peak, &mut std::fs::File::create("dhat.json").unwrap())?;
    /// # Ok::<(), memward_report::Error>(())
    /// ```
    pub fn write(&self, format: Format, metric: Metric, out: &mut dyn Write) -> Result<(), Error> {
        let io = |e| Error::write(None, e);
        match format {
            Format::Text => out.write_all(text::summary(self).as_bytes()).map_err(io),
            Format::Folded => folded::write_folded(self, metric, out).map_err(io),
            Format::Flamegraph => folded::write_svg(self, metric, out),
            Format::Massif => massif::write(self, out),
            Format::Dhat => dhat::write(self, out).map_err(io),
            Format::Pprof => pprof::write(self, out).map_err(io),
            Format::Html => html::write(self, out).map_err(io),
        }
    }

    /// The text summary.
    ///
    /// ```no_run
    /// let report = memward_report::Report::open("memward-profile.prog.1234".as_ref())?;
    /// print!("{}", report.text());
    /// # Ok::<(), memward_report::Error>(())
    /// ```
    pub fn text(&self) -> String {
        text::summary(self)
    }
}
