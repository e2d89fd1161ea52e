//! The analyses of a profile, computed in one streaming pass.
//!
//! Everything the reports show comes from here: per allocation site (a recorded stack)
//! the totals, the bytes and blocks live at the moment of the peak and at exit, the
//! largest amount live at any time, temporary allocations and lifetimes; for the whole
//! run the peak and when it happened, the block-size histogram and the timeline.
//!
//! The figure that needs care is "live at the peak" per site, since the peak is only
//! known to be the peak once the run is over. Copying every site's live bytes at each new
//! maximum would cost time proportional to sites × maxima. Instead each new maximum bumps
//! a generation number; a site records its live bytes as "at peak" lazily, the first time
//! it changes after a new maximum (its value then is still the one it had at that
//! maximum), and at the end for sites untouched since. Each event costs O(1) and the
//! result is exact.

mod histogram;
pub(crate) mod pipeline;
pub(crate) mod replay;
mod timeline;

pub use histogram::{Histogram, HistogramBucket};
pub use timeline::TimePoint;

use crate::Error;
use memward_profile_format::{Ending, Module, Reader, StackTable, TimeSample};
use replay::{Block, Heap, Observer, Replay};
use std::io::Read;
use std::path::Path;

/// Figures of one allocation site: one recorded stack.
///
/// Bytes are requested bytes; for a sampled profile, counts and bytes are unbiased
/// estimates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Site {
    /// Allocation calls (allocs and reallocs) recorded from this stack.
    pub calls: u64,
    /// Blocks allocated here over the whole run.
    pub total_blocks: u64,
    /// Bytes allocated here over the whole run.
    pub total_bytes: u64,
    /// Blocks from here live at the moment of the peak.
    pub peak_blocks: u64,
    /// Bytes from here live at the moment of the peak.
    pub peak_bytes: u64,
    /// Blocks from here still live at exit (leaked).
    pub exit_blocks: u64,
    /// Bytes from here still live at exit (leaked).
    pub exit_bytes: u64,
    /// The most bytes from here live at any one time.
    pub max_bytes: u64,
    /// The most blocks from here live at any one time.
    pub max_blocks: u64,
    /// Blocks freed before any other allocation happened (heaptrack's "temporary").
    pub temporary_blocks: u64,
    /// Sum over freed and live blocks of their lifetimes (to exit for live ones), in
    /// nanoseconds at the resolution of the profile's time records.
    pub lifetime_nanos: u128,
    /// Smallest and largest requested size seen here (equal if all blocks had one size).
    pub sizes: Option<(u64, u64)>,
    /// Live now (while replaying); equals `exit_*` at the end.
    curr_bytes: u64,
    curr_blocks: u64,
    /// The peak generation this site's `peak_*` belong to.
    peak_generation: u64,
}

/// The whole run's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Allocation events (allocs and reallocs).
    pub calls: u64,
    /// Blocks allocated (equals `calls` unless sampled).
    pub blocks: u64,
    /// Bytes allocated.
    pub bytes: u64,
    /// Reallocs among the calls.
    pub reallocs: u64,
    /// Frees (and realloc frees) that matched a recorded block.
    pub frees: u64,
    /// Temporary blocks (freed before any other allocation).
    pub temporary_blocks: u64,
    /// Blocks live at exit.
    pub exit_blocks: u64,
    /// Bytes live at exit.
    pub exit_bytes: u64,
    /// Frees of addresses the profile never allocated (ignored; blocks from before
    /// recording started, or not sampled).
    pub unknown_frees: u64,
}

/// The moment the heap was largest (the first time it reached that size).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Peak {
    /// Requested bytes live at the peak.
    pub bytes: u64,
    /// Blocks live at the peak.
    pub blocks: u64,
    /// Nanoseconds since the start (at the resolution of the time records: the last one
    /// before the peak).
    pub nanos: u64,
    /// Allocation events up to and including the one that reached the peak.
    pub allocations: u64,
}

/// The process the profile describes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Process {
    /// Process id.
    pub pid: u32,
    /// Parent process id (for a forked child, the process whose profile has the history
    /// before the fork).
    pub ppid: u32,
    /// The executable.
    pub exe: String,
    /// The command line.
    pub args: Vec<String>,
    /// When recording started, nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// Mean bytes between samples, or 0 when every allocation was recorded.
    pub sample_rate: u64,
}

impl Process {
    /// The command line as one string (arguments joined by spaces).
    ///
    /// ```
    /// let p = memward_report::Process { args: vec!["ls".into(), "-l".into()], ..Default::default() };
    /// assert_eq!(p.command(), "ls -l");
    /// ```
    pub fn command(&self) -> String {
        if self.args.is_empty() {
            return self.exe.clone();
        }
        self.args.join(" ")
    }
}

/// Everything the reports need from one profile.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The process.
    pub process: Process,
    /// Whether the profile has its end marker (else it was cut short: `_exit`, a signal,
    /// a full disk; the figures cover what was recorded).
    pub complete: bool,
    /// Nanoseconds from start to the end marker (or the last time record).
    pub duration_nanos: u64,
    /// Run totals.
    pub totals: Totals,
    /// The peak.
    pub peak: Peak,
    /// Per stack id (index); ids that allocated nothing have all-zero figures.
    pub sites: Vec<Site>,
    /// The recorded stacks (id to return addresses).
    pub stacks: StackTable,
    /// The module map, for symbolisation.
    pub modules: Vec<Module>,
    /// Block sizes.
    pub histogram: Histogram,
    /// Heap and RSS over time.
    pub timeline: Vec<TimePoint>,
    /// The latest memory sample (RSS, allocator bytes), if any.
    pub last_sample: Option<TimeSample>,
    /// The largest RSS in the time records.
    pub max_rss_bytes: u64,
    /// Thread ids and names.
    pub threads: Vec<(u32, String)>,
    /// Bytes allocated plus bytes freed over the run (massif's `B` clock).
    pub churn_bytes: u64,
}

impl Analysis {
    /// Reads and analyses the profile at `path`.
    ///
    /// ```no_run
    /// let a = memward_report::Analysis::from_path("memward-profile.prog.1234".as_ref())?;
    /// println!("peak: {} bytes", a.peak.bytes);
    /// # Ok::<(), memward_report::Error>(())
    /// ```
    pub fn from_path(path: &Path) -> Result<Analysis, Error> {
        let file = std::fs::File::open(path).map_err(|e| Error::open(path, e))?;
        Self::from_reader(std::io::BufReader::with_capacity(1 << 20, file))
            .map_err(|e| e.in_file(path))
    }

    /// Reads and analyses a profile from any reader.
    ///
    /// ```
    /// use memward_profile_format::{IoSink, Writer};
    /// let mut w = Writer::new(vec![0u8; 4096], IoSink(Vec::new()));
    /// w.header(7, 1, 0, 0, b"/bin/prog", [&b"prog"[..]]);
    /// w.stack_node(1, 0, 0x401000);
    /// w.alloc(7, 0x1000, 48, 1);
    /// w.end(10, 1, 0);
    /// w.flush();
    /// let a = memward_report::Analysis::from_reader(&w.into_sink().0[..]).unwrap();
    /// assert_eq!((a.peak.bytes, a.totals.exit_bytes, a.sites[1].exit_blocks), (48, 48, 1));
    /// ```
    pub fn from_reader<R: Read + Send>(input: R) -> Result<Analysis, Error> {
        let reader = Reader::new(input)?;
        let header = reader.header().clone();
        let mut replay = Replay::new(header.sample_rate);
        let mut builder = Builder::default();
        let ending =
            pipeline::for_each_record(reader, |record| replay.apply(record, &mut builder))?;
        let complete = ending == Ending::Complete;
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let process = Process {
            pid: header.pid,
            ppid: header.ppid,
            exe: text(&header.exe),
            args: header.args.iter().map(|a| text(a)).collect(),
            start_unix_nanos: header.start_unix_nanos,
            sample_rate: header.sample_rate,
        };
        Ok(builder.finish(replay, process, complete))
    }

    /// Stack ids that allocated something, in id order.
    ///
    /// ```
    /// # let a = memward_report::Analysis::from_reader(&b""[..]);
    /// # assert!(a.is_err());
    /// ```
    pub fn active_sites(&self) -> impl Iterator<Item = (u32, &Site)> {
        self.sites
            .iter()
            .enumerate()
            .filter(|(_, s)| s.calls > 0)
            .map(|(i, s)| (i as u32, s))
    }
}

/// The first-pass observer.
#[derive(Default)]
struct Builder {
    sites: Vec<Site>,
    peak: Peak,
    generation: u64,
    temporary: u64,
    blocks: u64,
    bytes: u64,
    histogram: Histogram,
    timeline: Option<timeline::TimelineBuilder>,
    max_rss: u64,
}

impl Builder {
    fn site(&mut self, stack: u32) -> &mut Site {
        let i = stack as usize;
        if i >= self.sites.len() {
            self.sites.resize(i + 1, Site::default());
        }
        let generation = self.generation;
        let site = &mut self.sites[i];
        // The site's live figures have not changed since the latest peak: they are its
        // figures at the peak.
        if site.peak_generation != generation {
            site.peak_bytes = site.curr_bytes;
            site.peak_blocks = site.curr_blocks;
            site.peak_generation = generation;
        }
        site
    }

    fn timeline(&mut self) -> &mut timeline::TimelineBuilder {
        self.timeline
            .get_or_insert_with(timeline::TimelineBuilder::new)
    }

    fn finish(mut self, replay: Replay, process: Process, complete: bool) -> Analysis {
        let end = replay.heap.nanos;
        // Lifetimes of blocks still live run to the end.
        for block in replay.live() {
            if let Some(site) = self.sites.get_mut(block.stack as usize) {
                site.lifetime_nanos += u128::from(end - block.nanos) * u128::from(block.blocks);
            }
        }
        let generation = self.generation;
        let mut totals = Totals {
            calls: replay.heap.allocations,
            blocks: self.blocks,
            bytes: self.bytes,
            reallocs: replay.reallocs,
            frees: replay.frees,
            temporary_blocks: self.temporary,
            exit_blocks: replay.heap.blocks,
            exit_bytes: replay.heap.bytes,
            unknown_frees: replay.unknown_frees,
        };
        for site in &mut self.sites {
            if site.peak_generation != generation {
                site.peak_bytes = site.curr_bytes;
                site.peak_blocks = site.curr_blocks;
                site.peak_generation = generation;
            }
            site.exit_bytes = site.curr_bytes;
            site.exit_blocks = site.curr_blocks;
        }
        totals.exit_blocks = replay.heap.blocks;
        let timeline = self.timeline.take().map(|t| t.finish()).unwrap_or_default();
        Analysis {
            process,
            complete,
            duration_nanos: end,
            totals,
            peak: self.peak,
            sites: self.sites,
            modules: replay.modules(),
            histogram: self.histogram,
            timeline,
            last_sample: replay.last_sample,
            max_rss_bytes: self.max_rss,
            threads: replay.threads.clone(),
            churn_bytes: replay.heap.churn,
            stacks: replay.stacks,
        }
    }
}

impl Observer for Builder {
    fn alloc(&mut self, heap: &Heap, block: &Block, size: u64) {
        let blocks = u64::from(block.blocks);
        self.blocks += blocks;
        self.bytes += block.bytes;
        self.histogram.add(size, blocks, block.bytes);
        let site = self.site(block.stack);
        site.calls += 1;
        site.total_blocks += blocks;
        site.total_bytes += block.bytes;
        site.curr_blocks += blocks;
        site.curr_bytes += block.bytes;
        if site.curr_bytes > site.max_bytes {
            site.max_bytes = site.curr_bytes;
            site.max_blocks = site.curr_blocks;
        }
        site.sizes = Some(match site.sizes {
            Some((lo, hi)) => (lo.min(size), hi.max(size)),
            None => (size, size),
        });
        if heap.bytes > self.peak.bytes {
            self.generation += 1;
            self.peak = Peak {
                bytes: heap.bytes,
                blocks: heap.blocks,
                nanos: heap.nanos,
                allocations: heap.allocations,
            };
        }
        self.timeline().heap(heap);
    }

    fn free(&mut self, heap: &Heap, block: &Block, temporary: bool) {
        let blocks = u64::from(block.blocks);
        let site = self.site(block.stack);
        site.curr_blocks -= blocks;
        site.curr_bytes -= block.bytes;
        site.lifetime_nanos += u128::from(heap.nanos - block.nanos) * u128::from(blocks);
        if temporary {
            site.temporary_blocks += blocks;
            self.temporary += blocks;
        }
        self.timeline().heap(heap);
    }

    fn time(&mut self, heap: &Heap, sample: &TimeSample) {
        self.max_rss = self.max_rss.max(sample.rss_bytes);
        self.timeline().rss(heap, sample.rss_bytes);
    }
}
