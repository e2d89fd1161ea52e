//! The one error type of the crate: what went wrong, with the file it concerns.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a report could not be made. The message names the file and the reason in one line.
///
/// ```
/// let e = memward_report::summary("/nonexistent/profile".as_ref()).unwrap_err();
/// assert!(e.to_string().contains("/nonexistent/profile"));
/// ```
#[derive(Debug)]
pub struct Error {
    path: Option<PathBuf>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Open(std::io::Error),
    Read(memward_profile_format::ReadError),
    Write(std::io::Error),
}

impl Error {
    pub(crate) fn open(path: &Path, e: std::io::Error) -> Self {
        Error {
            path: Some(path.to_owned()),
            kind: Kind::Open(e),
        }
    }

    pub(crate) fn write(path: Option<&Path>, e: std::io::Error) -> Self {
        Error {
            path: path.map(Path::to_owned),
            kind: Kind::Write(e),
        }
    }

    pub(crate) fn in_file(mut self, path: &Path) -> Self {
        self.path.get_or_insert_with(|| path.to_owned());
        self
    }
}

impl From<memward_profile_format::ReadError> for Error {
    fn from(e: memward_profile_format::ReadError) -> Self {
        Error {
            path: None,
            kind: Kind::Read(e),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.path {
            write!(f, "{}: ", p.display())?;
        }
        match &self.kind {
            Kind::Open(e) => write!(f, "cannot open: {e}"),
            Kind::Read(e) => write!(f, "{e}"),
            Kind::Write(e) => write!(f, "cannot write: {e}"),
        }
    }
}

impl std::error::Error for Error {}
