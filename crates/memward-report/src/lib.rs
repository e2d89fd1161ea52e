#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]

mod analysis;
mod error;
mod symbolize;

pub use analysis::{Analysis, Histogram, HistogramBucket, Peak, Process, Site, TimePoint, Totals};
pub use error::Error;
pub use symbolize::{demangle, Frame, Location, ModuleInfo, Symbolizer, Unusable};

/// The text summary of the profile at `path` (what `memward profile` prints at exit).
///
/// ```no_run
/// print!("{}", memward_report::summary("memward-profile.prog.1234".as_ref())?);
/// # Ok::<(), memward_report::Error>(())
/// ```
pub fn summary(path: &std::path::Path) -> Result<String, Error> {
    let a = Analysis::from_path(path)?;
    Ok(format!("peak {} bytes\n", a.peak.bytes))
}
