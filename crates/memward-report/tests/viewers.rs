//! Every output format read by its real viewer: `ms_print` and massif-visualizer (offscreen)
//! for massif, valgrind's `dh_view.html` in headless Chromium for DHAT, `go tool pprof` for
//! pprof, inferno for folded stacks, Chromium for the HTML report; plus the text summary
//! and the diff. The profile's stacks point into a C program compiled here, so names are
//! symbolised for real.

mod common;

use common::*;
use memward_report::{diff, Format, Metric, Report};
use std::path::{Path, PathBuf};
use std::process::Command;

struct Fixture {
    dir: PathBuf,
    report: Report,
}

fn fixture(name: &str) -> Fixture {
    let dir = scratch(name);
    let bin = compile(&dir);
    let profile = dir.join("profile");
    write_profile(
        &bin,
        &profile,
        &Expect {
            leaks: 1000,
            temporaries: 1000,
        },
    );
    let report = Report::open(&profile).unwrap();
    Fixture { dir, report }
}

fn render(f: &Fixture, format: Format, metric: Metric, file: &str) -> PathBuf {
    let path = f.dir.join(file);
    let mut out = std::fs::File::create(&path).unwrap();
    f.report.write(format, metric, &mut out).unwrap();
    path
}

fn run(cmd: &Path, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        cmd.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn text_summary_names_the_sites() {
    let f = fixture("text");
    let text = f.report.text();
    let section = |title: &str| {
        let start = text
            .find(title)
            .unwrap_or_else(|| panic!("no {title} in\n{text}"));
        let rest = &text[start + title.len()..];
        rest[..rest.find("\n\n").unwrap_or(rest.len())].to_string()
    };
    assert!(
        text.contains("peak heap:       67,156,864 bytes (64.0 MiB) in 1,001 blocks at 10.0 ms"),
        "{text}"
    );
    assert!(
        text.contains("leaked at exit:  48,000 bytes (46.9 KiB) in 1,000 blocks"),
        "{text}"
    );
    let peak = section("PEAK MEMORY CONSUMERS");
    assert!(
        peak.find("big_buffer").unwrap() < peak.find("leak_site").unwrap(),
        "{peak}"
    );
    assert!(
        peak.contains("67,108,864 bytes (64.0 MiB) in 1 block (99.9% of the peak)"),
        "{peak}"
    );
    let leaks = section("LEAKS");
    assert!(
        leaks.contains("48,000 bytes (46.9 KiB) in 1,000 blocks\n      at leak_site (")
            && leaks.contains("prog.c:3)"),
        "{leaks}"
    );
    assert!(!leaks.contains("big_buffer"));
    let temps = section("MOST TEMPORARY ALLOCATIONS");
    assert!(
        temps.contains("1,000 temporary of 1,000 allocations\n      at temporary_site ("),
        "{temps}"
    );
    let _ = std::fs::remove_dir_all(&f.dir);
}

#[test]
fn massif_is_read_by_ms_print() {
    let Some(ms_print) = tool("ms_print") else {
        return;
    };
    let f = fixture("massif");
    let path = render(&f, Format::Massif, Metric::Peak, "massif.out.4242");
    let out = run(&ms_print, &[path.to_str().unwrap()]);
    assert!(out.contains("(peak)"), "{out}");
    // The peak snapshot's tree: 64 MiB from big_buffer called by main.
    let line = out
        .lines()
        .find(|l| l.contains("big_buffer (") && l.contains("prog.c:4)"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("(67,108,864B)"), "{line}");
    assert!(out.contains("67,156,864       67,156,864"), "{out}");
    let _ = std::fs::remove_dir_all(&f.dir);
}

/// What massif-visualizer said about a file it loaded: its parser's debug lines, or the
/// line it rejected.
struct VisualizerLoad {
    snapshots: usize,
    peak_snapshot: usize,
    peak_cost: String,
}

/// Opens `file` in massif-visualizer (offscreen Qt, its own config dir) and reads the
/// parser's messages from stderr until it has loaded the file or rejected a line. The
/// window never closes by itself, so the process is killed once the answer is in.
fn massif_visualizer_load(
    viewer: &Path,
    file: &Path,
    home: &Path,
) -> Result<VisualizerLoad, String> {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    std::fs::create_dir_all(home).unwrap();
    let mut child = Command::new(viewer)
        .arg(file)
        .env("QT_QPA_PLATFORM", "offscreen")
        .env("QT_LOGGING_RULES", "*.debug=false;default.debug=true")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_RUNTIME_DIR", home)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("massif-visualizer starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut snapshots = None;
    let mut peak_snapshot = None;
    let mut seen = Vec::new();
    let answer = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            break Err(format!(
                "no answer from massif-visualizer; it said:\n{}",
                seen.join("\n")
            ));
        };
        if line.starts_with("invalid line") {
            break Err(line);
        }
        if let Some(n) = line.strip_prefix("snapshots: ") {
            snapshots = n.trim().parse().ok();
        } else if let Some(rest) = line.strip_prefix("peak: snapshot # ") {
            peak_snapshot = rest.split_whitespace().next().and_then(|n| n.parse().ok());
        } else if let Some(rest) = line.strip_prefix("peak cost: \"") {
            break Ok(VisualizerLoad {
                snapshots: snapshots.expect("snapshot count before the peak"),
                peak_snapshot: peak_snapshot.expect("peak snapshot before its cost"),
                peak_cost: rest[..rest.find('"').unwrap()].to_string(),
            });
        }
        seen.push(line);
    };
    let _ = child.kill();
    let _ = child.wait();
    answer
}

#[test]
fn massif_is_read_by_massif_visualizer() {
    let Some(viewer) = tool("massif-visualizer") else {
        return;
    };
    let f = fixture("massif-visualizer");
    let path = render(&f, Format::Massif, Metric::Peak, "massif.out.4243");
    let text = std::fs::read_to_string(&path).unwrap();
    // What the file says, to hold the viewer's reading against.
    let snapshots = text.lines().filter(|l| l.starts_with("snapshot=")).count();
    let peak_snapshot = text
        .split("#-----------\nsnapshot=")
        .skip(1)
        .find(|s| s.contains("heap_tree=peak"))
        .and_then(|s| s.lines().next()?.parse::<usize>().ok())
        .expect("a peak snapshot");
    let home = f.dir.join("home");
    let load = massif_visualizer_load(&viewer, &path, &home).unwrap();
    assert_eq!(load.snapshots, snapshots);
    assert_eq!(load.peak_snapshot, peak_snapshot);
    // 67,156,864 bytes, as the viewer rounds them.
    assert_eq!(load.peak_cost, "64.0 MiB");
    // The same reading rejects a damaged copy, so the checks above can fail.
    let bad = f.dir.join("massif.out.damaged");
    std::fs::write(&bad, text.replacen("mem_heap_B=", "mem_heap_B=x", 1)).unwrap();
    let err = massif_visualizer_load(&viewer, &bad, &home)
        .err()
        .expect("a damaged file is rejected");
    assert!(err.contains("mem_heap_B=x"), "{err}");
    let _ = std::fs::remove_dir_all(&f.dir);
}

#[test]
fn dhat_json_is_read_by_dh_view() {
    let Some(chromium) = tool("chromium") else {
        return;
    };
    let viewer = Path::new("/usr/libexec/valgrind");
    assert!(
        viewer.join("dh_view.html").is_file(),
        "valgrind's dh_view.html is missing"
    );
    let f = fixture("dhat");
    let path = render(&f, Format::Dhat, Metric::Peak, "dhat.json");
    let json = std::fs::read_to_string(&path).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    // No two program points share a frame sequence (dh_view rejects that).
    let pps = parsed["pps"].as_array().unwrap();
    let mut seqs: Vec<_> = pps.iter().map(|p| p["fs"].to_string()).collect();
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), pps.len());
    // dh_view.html loads files through a file picker; this page runs the viewer's own
    // load steps (parse, buildTree, displayTree) on the embedded file instead.
    for file in ["dh_view.js", "dh_view.css"] {
        std::fs::copy(viewer.join(file), f.dir.join(file)).unwrap();
    }
    let page = f.dir.join("dh_view_test.html");
    std::fs::write(
        &page,
        format!(
            "<!DOCTYPE html><html><head><meta charset=\"UTF-8\"><link rel=\"stylesheet\" href=\"dh_view.css\">\
             <script src=\"dh_view.js\"></script></head><body onload=\"onLoad(); tryFunc(() => {{ \
             gData = JSON.parse(document.getElementById('dhat').textContent); buildTree(); displayTree(0, 0, 0); }});\">\
             <script type=\"application/json\" id=\"dhat\">{}</script></body></html>",
            json.replace('<', "\\u003c")
        ),
    )
    .unwrap();
    let dom = chromium_dom(&chromium, &format!("file://{}", page.display()), &f.dir);
    assert!(
        !dom.contains("class=\"error\""),
        "dh_view reported an error:\n{dom}"
    );
    assert!(dom.contains("Total:"), "{dom}");
    assert!(
        dom.contains("67,156,864 bytes"),
        "the global maximum:\n{dom}"
    );
    for name in [
        "big_buffer",
        "leak_site",
        "temporary_site",
        "grow_buffer",
        "main",
    ] {
        assert!(dom.contains(name), "{name} missing:\n{dom}");
    }
    let _ = std::fs::remove_dir_all(&f.dir);
}

#[test]
fn pprof_is_read_by_go_tool_pprof() {
    let Some(go) = tool("go") else { return };
    let f = fixture("pprof");
    let path = render(&f, Format::Pprof, Metric::Peak, "heap.pb.gz");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzipped");
    let p = path.to_str().unwrap();
    // The four heap sample types by name; values exact with -unit=B.
    let top = |index: &str| {
        run(
            &go,
            &[
                "tool",
                "pprof",
                "-top",
                "-nodefraction=0",
                "-unit=B",
                &format!("-sample_index={index}"),
                p,
            ],
        )
    };
    let inuse = top("inuse_space");
    let row = |out: &str, name: &str| {
        out.lines()
            .find(|l| l.trim_end().ends_with(name))
            .unwrap_or_else(|| panic!("{name} not in\n{out}"))
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(row(&inuse, "leak_site"), "48000B");
    assert!(!inuse.contains("big_buffer ") || row(&inuse, "big_buffer") == "0");
    let alloc = top("alloc_space");
    assert_eq!(row(&alloc, "big_buffer"), "67108864B");
    assert_eq!(row(&alloc, "temporary_site"), "32000B");
    let objects = run(
        &go,
        &[
            "tool",
            "pprof",
            "-top",
            "-nodefraction=0",
            "-sample_index=alloc_objects",
            p,
        ],
    );
    assert_eq!(row(&objects, "temporary_site"), "1000");
    let inuse_objects = run(
        &go,
        &[
            "tool",
            "pprof",
            "-top",
            "-nodefraction=0",
            "-sample_index=inuse_objects",
            p,
        ],
    );
    assert_eq!(row(&inuse_objects, "leak_site"), "1000");
    // The default sample type is inuse_space.
    let default = run(&go, &["tool", "pprof", "-top", "-unit=B", p]);
    assert_eq!(row(&default, "leak_site"), "48000B");
    let _ = std::fs::remove_dir_all(&f.dir);
}

#[test]
fn folded_stacks_and_the_flamegraph_svg() {
    let f = fixture("folded");
    let mut folded = Vec::new();
    f.report
        .write(Format::Folded, Metric::Leaked, &mut folded)
        .unwrap();
    assert_eq!(String::from_utf8(folded).unwrap(), "main;leak_site 48000\n");
    let mut folded = Vec::new();
    f.report
        .write(Format::Folded, Metric::Allocations, &mut folded)
        .unwrap();
    assert_eq!(
        String::from_utf8(folded).unwrap(),
        "main;big_buffer 1\nmain;grow_buffer 9\nmain;leak_site 1000\nmain;temporary_site 1000\n"
    );
    let mut svg = Vec::new();
    f.report
        .write(Format::Flamegraph, Metric::Peak, &mut svg)
        .unwrap();
    let svg = String::from_utf8(svg).unwrap();
    assert!(svg.starts_with("<?xml") && svg.contains("<svg"));
    assert!(
        svg.contains("big_buffer (67,108,864 bytes, 99.93%)"),
        "{svg}"
    );
    let _ = std::fs::remove_dir_all(&f.dir);
}

#[test]
fn the_html_report_renders_in_chromium() {
    let Some(chromium) = tool("chromium") else {
        return;
    };
    let f = fixture("html");
    let path = render(&f, Format::Html, Metric::Peak, "report.html");
    let html = std::fs::read_to_string(&path).unwrap();
    assert!(
        !html.contains("http://") || !html.contains("src=\"http"),
        "no network"
    );
    assert!(
        !html.contains("<script src") && !html.contains("<link"),
        "self-contained"
    );
    let url = format!("file://{}", path.display());
    let dom = chromium_dom(&chromium, &url, &f.dir);
    let rendered = dom
        .split("data-rendered=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("the script did not finish:\n{dom}"));
    let nodes: usize = rendered.split_whitespace().next().unwrap()["flame:".len()..]
        .parse()
        .unwrap();
    // all, main, big_buffer; leak_site's 0.07% of the peak is under a pixel wide.
    assert_eq!(nodes, 3, "{rendered}");
    assert!(!rendered.ends_with("timeline:0"), "{rendered}");
    assert!(
        dom.contains("class=\"fg-node\"") && dom.contains(">big_buffer ("),
        "{dom}"
    );
    assert!(dom.contains("<polyline class=\"heap\" points=\""), "{dom}");
    assert!(dom.contains("peak 64.0 MiB"), "{dom}");
    // Another view through the URL: leaked bytes only show leak_site.
    let dom = chromium_dom(&chromium, &format!("{url}#metric=leaked"), &f.dir);
    assert!(dom.contains("data-metric=\"leaked\""), "{dom}");
    let flame = &dom[dom.find("id=\"flame\"").unwrap()..];
    let flame = &flame[..flame.find("id=\"tip\"").unwrap()];
    assert!(
        flame.contains("leak_site") && !flame.contains("big_buffer"),
        "{flame}"
    );
    let _ = std::fs::remove_dir_all(&f.dir);
}

#[test]
fn diff_shows_what_grew() {
    let dir = scratch("diff");
    let bin = compile(&dir);
    let (old, new) = (dir.join("old"), dir.join("new"));
    write_profile(
        &bin,
        &old,
        &Expect {
            leaks: 1000,
            temporaries: 10,
        },
    );
    write_profile(
        &bin,
        &new,
        &Expect {
            leaks: 3000,
            temporaries: 10,
        },
    );
    let d = diff(&Report::open(&old).unwrap(), &Report::open(&new).unwrap());
    assert!(d.contains("(+96,000)"), "{d}");
    let first = d.split("SITES THAT CHANGED MOST").nth(1).unwrap();
    assert!(first.contains("peak +96,000 bytes, leaked +96,000 bytes, allocated +96,000 bytes in +2,000 allocations\n      at leak_site\n      at main"), "{d}");
    let same = diff(&Report::open(&old).unwrap(), &Report::open(&old).unwrap());
    assert!(same.contains("(no site changed)"), "{same}");
    let _ = std::fs::remove_dir_all(&dir);
}
