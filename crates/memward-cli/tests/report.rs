//! `memward report` as a user runs it: every format through the binary, the diff, and
//! the errors for bad input. The ignored test `report_on_100_million_allocations` is the
//! scale check run by hand (see memward-report's README):
//! `cargo test --release -p memward-cli --test report -- --ignored --nocapture`.

use memward_profile_format::{IoSink, Sink, SinkError, Writer};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn memward() -> Command {
    Command::new(env!("CARGO_BIN_EXE_memward"))
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("memward-cli-report-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A small profile: `leaks` leaked 48-byte blocks and a temporary 32-byte one.
fn small_profile(path: &Path, leaks: u64) {
    let mut w = Writer::new(vec![0u8; 4096], IoSink(Vec::new()));
    w.header(9, 1, 0, 0, b"/bin/prog", [&b"prog"[..]]);
    w.stack_node(1, 0, 0x401000);
    w.stack_node(2, 1, 0x402000);
    for i in 0..leaks {
        w.alloc(9, 0x1000 + i * 64, 48, 2);
    }
    w.alloc(9, 0x9_0000, 32, 1);
    w.free(9, 0x9_0000);
    w.end(1_000_000, 0, 0);
    w.flush();
    std::fs::write(path, w.into_sink().0).unwrap();
}

#[test]
fn every_format_through_the_binary() {
    let dir = scratch("formats");
    let profile = dir.join("profile");
    small_profile(&profile, 10);
    let out = memward().arg("report").arg(&profile).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("leaked at exit:  480 bytes in 10 blocks"),
        "{text}"
    );
    for (format, start) in [
        ("html", &b"<!DOCTYPE html>"[..]),
        ("massif", b"desc: "),
        ("dhat", b"{\"dhatFileVersion\":2"),
        ("pprof", &[0x1f, 0x8b]),
        ("folded", b"0x401000 32\n0x401000;0x402000 480\n"),
        ("flamegraph", b"<?xml"),
        ("text", b"memward profile of `prog`"),
    ] {
        let file = dir.join(format!("out.{format}"));
        let st = memward()
            .args(["report", "--format", format, "-o"])
            .arg(&file)
            .arg(&profile)
            .status()
            .unwrap();
        assert!(st.success(), "{format}");
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            bytes.starts_with(start),
            "{format}: {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
        );
    }
    let other = dir.join("other");
    small_profile(&other, 30);
    let out = memward()
        .args(["report", "--diff"])
        .arg(&profile)
        .arg(&other)
        .output()
        .unwrap();
    assert!(out.status.success());
    let d = String::from_utf8(out.stdout).unwrap();
    assert!(d.contains("leaked +960 bytes"), "{d}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_gets_a_clear_answer() {
    let dir = scratch("bad");
    let junk = dir.join("junk");
    std::fs::write(&junk, b"not a profile at all").unwrap();
    let out = memward().arg("report").arg(&junk).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("junk: not a memward profile"), "{err}");
    let out = memward()
        .args(["report", "/nonexistent/p"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/p: cannot open"));
    let out = memward()
        .args(["report", "--format", "svg", "p"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // A truncated profile is reported for what it holds, and says so.
    let profile = dir.join("profile");
    small_profile(&profile, 5);
    let bytes = std::fs::read(&profile).unwrap();
    std::fs::write(&profile, &bytes[..bytes.len() - 3]).unwrap();
    let out = memward().arg("report").arg(&profile).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("cut short"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes straight to a file, counting bytes.
struct FileSink(std::io::BufWriter<std::fs::File>);

impl Sink for FileSink {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        std::io::Write::write_all(&mut self.0, bytes).map_err(|e| SinkError {
            errno: e.raw_os_error().unwrap_or(0),
        })
    }
}

/// A profile of `n` allocations shaped like a busy program: 2,000 stacks of depth 12,
/// sizes from 8 bytes to 64 KiB, 100,000 blocks live at a time (each allocation frees the
/// block allocated 100,000 allocations earlier), one realloc in 16, 4 threads, a time
/// record every 100,000 allocations.
fn big_profile(path: &Path, n: u64) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = Writer::new(vec![0u8; 1 << 20], FileSink(std::io::BufWriter::new(file)));
    w.header(1, 0, 0, 0, b"/bin/busy", [&b"busy"[..]]);
    let depth = 12u32;
    let stacks = 2000u32;
    let mut id = 0;
    for s in 0..stacks {
        for d in 0..depth {
            id += 1;
            let parent = if d == 0 { 0 } else { id - 1 };
            w.stack_node(id, parent, 0x40_0000 + u64::from(s) * 0x100 + u64::from(d));
        }
    }
    const WINDOW: usize = 100_000;
    let mut ring = vec![0u64; WINDOW];
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut addr = 0x1000_0000u64;
    for i in 0..n {
        let r = next();
        let thread = (r & 3) as u32 + 1;
        let stack = ((r >> 8) % u64::from(stacks)) as u32 * depth + depth;
        let size = 8u64 << ((r >> 24) % 14);
        let slot = (i % WINDOW as u64) as usize;
        addr += 64;
        if ring[slot] != 0 {
            if (r >> 40) % 16 == 0 {
                w.realloc(thread, ring[slot], addr, size, stack);
                ring[slot] = addr;
                continue;
            }
            w.free(thread, ring[slot]);
        }
        w.alloc(thread, addr, size, stack);
        ring[slot] = addr;
        if i % 100_000 == 0 {
            w.time(i * 100, 0, 0);
        }
    }
    w.end(n * 100, 0, 0);
    w.flush();
    assert!(w.error().is_none());
    let FileSink(mut buf) = w.into_sink();
    std::io::Write::flush(&mut buf).unwrap();
}

#[test]
#[ignore = "scale check, minutes long; run by hand with --release"]
fn report_on_100_million_allocations() {
    let n: u64 = std::env::var("MEMWARD_SCALE_ALLOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000_000);
    let dir = scratch("scale");
    let profile = dir.join("profile");
    let t = Instant::now();
    big_profile(&profile, n);
    let size = std::fs::metadata(&profile).unwrap().len();
    eprintln!(
        "profile of {n} allocations: {size} bytes ({:.2} bytes per allocation), written in {:.1} s",
        size as f64 / n as f64,
        t.elapsed().as_secs_f64()
    );
    for format in [
        "text",
        "html",
        "folded",
        "flamegraph",
        "dhat",
        "pprof",
        "massif",
    ] {
        let out = dir.join(format!("out.{format}"));
        let t = Instant::now();
        let run = Command::new("/usr/bin/time")
            .args(["-f", "%M"])
            .arg(env!("CARGO_BIN_EXE_memward"))
            .args(["report", "--format", format, "-o"])
            .arg(&out)
            .arg(&profile)
            .output()
            .expect("/usr/bin/time (Debian package `time`)");
        let secs = t.elapsed().as_secs_f64();
        assert!(
            run.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let kib: u64 = String::from_utf8_lossy(&run.stderr)
            .trim()
            .lines()
            .last()
            .unwrap()
            .parse()
            .unwrap();
        eprintln!(
            "memward report --format {format}: {secs:.1} s, max RSS {:.0} MiB",
            kib as f64 / 1024.0
        );
        assert!(secs < 60.0, "{format} took {secs:.1} s");
        assert!(kib < 1024 * 1024, "{format} used {kib} KiB");
    }
    if std::env::var_os("MEMWARD_SCALE_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
