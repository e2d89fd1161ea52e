#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]

mod analysis;
mod error;
mod output;

pub use analysis::{Analysis, Histogram, HistogramBucket, Peak, Process, Site, TimePoint, Totals};
pub use error::Error;
pub use memward_symbolize::{demangle, Frame, Location, ModuleInfo, Symbolizer, Unusable};
pub use output::{diff, Format, Metric, Report};

/// The text summary of the profile at `path` (what `memward profile` prints at exit).
///
/// ```no_run
/// eprint!("{}", memward_report::summary("memward-profile.prog.1234".as_ref())?);
/// # Ok::<(), memward_report::Error>(())
/// ```
pub fn summary(path: &std::path::Path) -> Result<String, Error> {
    Ok(Report::open(path)?.text())
}

/// Writes the self-contained HTML report of the profile at `path` to the file `out`.
///
/// ```no_run
/// memward_report::write_html("p".as_ref(), "p.html".as_ref())?;
/// # Ok::<(), memward_report::Error>(())
/// ```
pub fn write_html(path: &std::path::Path, out: &std::path::Path) -> Result<(), Error> {
    write_file(path, Format::Html, Metric::Peak, out)
}

/// Writes the report of the profile at `path` in `format` to the file `out`.
///
/// ```no_run
/// use memward_report::{write_file, Format, Metric};
/// write_file("p".as_ref(), Format::Pprof, Metric::Peak, "p.pb.gz".as_ref())?;
/// # Ok::<(), memward_report::Error>(())
/// ```
pub fn write_file(
    path: &std::path::Path,
    format: Format,
    metric: Metric,
    out: &std::path::Path,
) -> Result<(), Error> {
    let report = Report::open(path)?;
    let mut file = std::fs::File::create(out).map_err(|e| Error::write(Some(out), e))?;
    report
        .write(format, metric, &mut file)
        .map_err(|e| e.in_file(out))?;
    std::io::Write::flush(&mut file).map_err(|e| Error::write(Some(out), e))
}
