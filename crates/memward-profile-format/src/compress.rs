//! Compression after the run. The recorder writes plain records (it cannot compress
//! inside `malloc`, and a plain stream stays readable when the process is killed);
//! profiles are very repetitive (the same stacks, sizes and nearby pointers), so
//! `memward profile` gzips each file once the program has exited, and the reader
//! decompresses transparently.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

/// Compresses the profile at `path` in place with gzip (fast level), through a temporary
/// file renamed over it; a file already compressed is left alone. Returns the new size.
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("mw-compress-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// use memward_profile_format::{compress_file, IoSink, Reader, Writer};
/// let path = dir.join("p");
/// let mut w = Writer::new(vec![0u8; 4096], IoSink(std::fs::File::create(&path)?));
/// w.header(1, 0, 0, 0, b"/bin/x", [&b"x"[..]]);
/// for i in 0..1000 {
///     w.alloc(1, 0x1000 + i * 16, 16, 0);
/// }
/// w.flush();
/// drop(w);
/// let before = std::fs::metadata(&path)?.len();
/// let after = compress_file(&path)?;
/// assert!(after < before);
/// let mut r = Reader::new(std::fs::File::open(&path)?).unwrap();
/// assert_eq!(r.header().pid, 1);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn compress_file(path: &Path) -> io::Result<u64> {
    let mut input = BufReader::new(File::open(path)?);
    let mut head = [0u8; 2];
    let n = input.read(&mut head)?;
    if n == 2 && head == [0x1f, 0x8b] {
        return Ok(std::fs::metadata(path)?.len());
    }
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".gz-tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let result = (|| {
        let out = BufWriter::new(File::create(&tmp)?);
        let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
        gz.write_all(&head[..n])?;
        io::copy(&mut input, &mut gz)?;
        gz.finish()?
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::metadata(path).map(|m| m.len())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
