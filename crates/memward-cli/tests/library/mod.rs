//! Shared by the CLI test files: where the release build's libmemward.so is.

use std::path::{Path, PathBuf};

/// `$MEMWARD_LIB`, or libmemward.so of the release build beside the `memward` binary
/// under test.
pub fn library() -> PathBuf {
    if let Some(p) = std::env::var_os("MEMWARD_LIB").filter(|p| !p.is_empty()) {
        return PathBuf::from(p).canonicalize().unwrap();
    }
    Path::new(env!("CARGO_BIN_EXE_memward"))
        .ancestors()
        .skip(1)
        .take(3)
        .map(|d| d.join("release/libmemward.so"))
        .find(|p| p.is_file())
        .expect("libmemward.so is missing: run `cargo build --release` first (or set MEMWARD_LIB)")
        .canonicalize()
        .unwrap()
}
