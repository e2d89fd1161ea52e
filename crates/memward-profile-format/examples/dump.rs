//! Prints a profile's records, one per line: `cargo run --example dump -- FILE`.

use memward_profile_format::{Reader, Record};
use std::io::{BufWriter, Write};

fn main() {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: dump FILE");
        std::process::exit(2);
    };
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("dump: {}: {e}", path.to_string_lossy());
            std::process::exit(1);
        }
    };
    let mut r = match Reader::new(std::io::BufReader::new(file)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dump: {e}");
            std::process::exit(1);
        }
    };
    let out = std::io::stdout();
    let mut out = BufWriter::new(out.lock());
    let h = r.header();
    let _ = writeln!(
        out,
        "header pid={} ppid={} sample_rate={} exe={} args={:?}",
        h.pid,
        h.ppid,
        h.sample_rate,
        String::from_utf8_lossy(&h.exe),
        h.args
            .iter()
            .map(|a| String::from_utf8_lossy(a))
            .collect::<Vec<_>>()
    );
    loop {
        match r.next_record() {
            Ok(Some(Record::Module(m))) => {
                let _ = writeln!(
                    out,
                    "module {} {} bias={:#x} build_id={} segments={:x?}",
                    m.id,
                    String::from_utf8_lossy(&m.path),
                    m.bias,
                    m.build_id
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>(),
                    m.segments
                        .iter()
                        .map(|s| (s.start, s.len))
                        .collect::<Vec<_>>()
                );
            }
            Ok(Some(Record::ThreadName { tid, name })) => {
                let _ = writeln!(out, "thread {tid} {}", String::from_utf8_lossy(&name));
            }
            Ok(Some(rec)) => {
                let _ = writeln!(out, "{rec:x?}");
            }
            Ok(None) => break,
            Err(e) => {
                let _ = writeln!(out, "error: {e}");
                std::process::exit(1);
            }
        }
    }
    let _ = writeln!(out, "ending {:?}", r.ending());
}
