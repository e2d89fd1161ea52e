//! `redis-server` on loopback under `redis-benchmark`, then a data check through
//! `redis-cli`. The server runs with I/O threads and lazy freeing (frees in a background
//! thread), without persistence, on a free port; the benchmark (two client threads, 20
//! connections, bounded request count) and `redis-cli` run under the same allocator.
//! After the benchmark the server must still answer; the data check then flushes, loads a
//! known dataset (strings up to 64 KiB, lists, hashes, sorted sets, sets; some keys
//! overwritten, appended to and deleted) and reads it back, and the replies must equal
//! the values computed here. Finally `SHUTDOWN NOSAVE` must end the server cleanly.
//!
//! Why: a long-running, multi-threaded server with its own memory accounting (it asks
//! `malloc_usable_size` for every block) and cross-thread frees is a different load from
//! batch programs: heap corruption tends to show up as wrong replies or a crash minutes
//! later. Debian's redis links jemalloc; with the preload memward serves its
//! malloc/free/realloc/malloc_usable_size instead, which must work as well.

mod common;

use common::{
    assert_same, describe, kill_group, report_times, require, tail, wait_with_limit, Allocator,
    Session, TempDir,
};
use std::fmt::Write;
use std::fs::File;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Kills the server if the test fails before shutting it down.
struct ServerGuard {
    child: Child,
    pgid: u32,
    stopped: bool,
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        if !self.stopped {
            kill_group(self.pgid);
            // The server itself too: a group kill that missed it (the group gone, or
            // the server in another one) left this wait hanging for good.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> u16 {
    // Bind port 0 and release it: the kernel picked a port nobody uses right now.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The dataset: commands to load it, commands to read it back, and the expected replies
/// (`redis-cli --raw` prints one line per bulk string or integer).
fn dataset() -> (String, String, String) {
    let mut load = String::from("FLUSHALL\n");
    let mut read = String::new();
    let mut expect = String::new();
    let value = |i: usize, len: usize| -> String {
        (0..len)
            .map(|k| (b'a' + ((i * 7 + k * 13) % 26) as u8) as char)
            .collect()
    };
    for i in 0..2000 {
        let len = 1 + (i * 37) % 3000 + if i % 250 == 0 { 60_000 } else { 0 };
        let _ = writeln!(load, "SET str:{i} {}", value(i, len));
    }
    // Overwrite some with other sizes, append to others, delete a few.
    for i in (0..2000).step_by(7) {
        let _ = writeln!(load, "SET str:{i} {}", value(i + 1, 5 + i % 200));
    }
    for i in (3..2000).step_by(11) {
        let _ = writeln!(load, "APPEND str:{i} {}", value(i + 2, 100));
    }
    for i in (5..2000).step_by(13) {
        let _ = writeln!(load, "DEL str:{i}");
    }
    for i in 0..2000 {
        let deleted = i >= 5 && (i - 5) % 13 == 0;
        let mut v = if i % 7 == 0 {
            value(i + 1, 5 + i % 200)
        } else {
            value(
                i,
                1 + (i * 37) % 3000 + if i % 250 == 0 { 60_000 } else { 0 },
            )
        };
        if i >= 3 && (i - 3) % 11 == 0 {
            v.push_str(&value(i + 2, 100));
        }
        let _ = writeln!(read, "GET str:{i}");
        // A missing key prints an empty line with --raw.
        let _ = writeln!(expect, "{}", if deleted { String::new() } else { v });
    }
    for j in 0..200 {
        let items: Vec<String> = (0..50).map(|k| format!("item{j}-{k}")).collect();
        let _ = writeln!(load, "RPUSH list:{j} {}", items.join(" "));
        let _ = writeln!(read, "LRANGE list:{j} 0 -1");
        for it in &items {
            let _ = writeln!(expect, "{it}");
        }
        let fields: Vec<String> = (0..30)
            .map(|k| format!("f{k} {}", value(j + k, 10 + k)))
            .collect();
        let _ = writeln!(load, "HSET hash:{j} {}", fields.join(" "));
        let _ = writeln!(read, "HLEN hash:{j}");
        let _ = writeln!(read, "HGET hash:{j} f17");
        let _ = writeln!(expect, "30\n{}", value(j + 17, 27));
    }
    for j in 0..100 {
        let members: Vec<String> = (0..60)
            .map(|k| format!("{} m{j}-{k}", (k * 37) % 101))
            .collect();
        let _ = writeln!(load, "ZADD zset:{j} {}", members.join(" "));
        let _ = writeln!(read, "ZRANGE zset:{j} 0 4 WITHSCORES");
        let mut sorted: Vec<(usize, String)> = (0..60)
            .map(|k| ((k * 37) % 101, format!("m{j}-{k}")))
            .collect();
        sorted.sort();
        for (score, m) in sorted.iter().take(5) {
            let _ = writeln!(expect, "{m}\n{score}");
        }
    }
    for j in 0..50 {
        let members: Vec<String> = (0..40).map(|k| format!("s{}", (k * 13 + j) % 97)).collect();
        let _ = writeln!(load, "SADD set:{j} {}", members.join(" "));
        // Set iteration order depends on a per-process hash seed: read back sorted.
        let _ = writeln!(read, "SORT set:{j} ALPHA");
        let mut uniq: Vec<String> = members.clone();
        uniq.sort();
        uniq.dedup();
        for m in uniq {
            let _ = writeln!(expect, "{m}");
        }
    }
    let dbsize = (0..2000)
        .filter(|i| !(*i >= 5 && (*i - 5) % 13 == 0))
        .count()
        + 200 * 2
        + 100
        + 50;
    let _ = writeln!(read, "DBSIZE");
    let _ = writeln!(expect, "{dbsize}");
    (load, read, expect)
}

fn redis_cli(s: &mut Session, port: u16, input: &Path, what: &str) -> String {
    let mut cmd = s.command("redis-cli");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "--raw"])
        .stdin(File::open(input).unwrap());
    let out = s.run(what, &mut cmd, Duration::from_secs(120));
    out.expect_success(s.allocator);
    s.expect_summary(out.pid, what);
    out.stdout
}

fn run(allocator: Allocator, dir: &Path) -> (String, Session) {
    let mut s = Session::new(allocator);
    let (load, read, expect) = dataset();
    let load_path = dir.join("load.txt");
    let read_path = dir.join("read.txt");
    std::fs::write(&load_path, &load).unwrap();
    std::fs::write(&read_path, &read).unwrap();
    let port = free_port();
    let log_path = dir.join(format!("server-{}.log", allocator.name()));

    let mut cmd = s.command("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .args(["--io-threads", "2", "--io-threads-do-reads", "yes"])
        .args([
            "--lazyfree-lazy-user-del",
            "yes",
            "--lazyfree-lazy-user-flush",
            "yes",
        ])
        .arg("--dir")
        .arg(dir)
        // SORT ... ALPHA compares with strcoll: make it byte order, as the expected data.
        .env("LC_ALL", "C")
        .stdout(File::create(&log_path).unwrap())
        .stderr(Stdio::inherit());
    let start = Instant::now();
    let child = s.spawn("redis-server", &mut cmd);
    let pgid = child.id();
    let mut server = ServerGuard {
        child,
        pgid,
        stopped: false,
    };
    let log = || tail(&std::fs::read_to_string(&log_path).unwrap_or_default(), 30);

    // Wait until it answers PING.
    loop {
        if let Some(st) = server.child.try_wait().unwrap() {
            panic!(
                "redis-server exited at start-up under {} ({}):\n{}",
                allocator.name(),
                describe(st),
                log()
            );
        }
        let ping = s
            .command("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "ping"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&ping.stdout).trim() == "PONG" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "redis-server did not answer within 20 s under {}:\n{}",
            allocator.name(),
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut bench = s.command("redis-benchmark");
    bench
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args([
            "-q",
            "-n",
            "20000",
            "-c",
            "20",
            "-d",
            "200",
            "-r",
            "5000",
            "--threads",
            "2",
        ])
        .args([
            "-t",
            "set,get,incr,lpush,rpop,sadd,hset,spop,zadd,lrange_100,mset",
        ]);
    let out = s.run("redis-benchmark", &mut bench, Duration::from_secs(180));
    if !out.status.success() {
        panic!(
            "redis-benchmark failed under {} ({}):\n{}\n{}\n--- server log ---\n{}",
            allocator.name(),
            describe(out.status),
            tail(&out.stdout, 20),
            tail(&out.stderr, 20),
            log()
        );
    }
    s.expect_summary(out.pid, "redis-benchmark");
    for t in ["SET", "GET", "LPUSH", "HSET", "ZADD", "LRANGE_100", "MSET"] {
        assert!(
            out.stdout.contains(&format!("{t}: ")) || out.stdout.contains(&format!("{t} (")),
            "redis-benchmark did not report {t}:\n{}",
            out.stdout
        );
    }
    if let Some(st) = server.child.try_wait().unwrap() {
        panic!(
            "redis-server died during the benchmark ({}):\n{}",
            describe(st),
            log()
        );
    }

    let loaded = redis_cli(&mut s, port, &load_path, "redis-cli (load)");
    assert!(
        loaded
            .lines()
            .all(|l| l == "OK" || l.parse::<u64>().is_ok()),
        "unexpected replies while loading:\n{}",
        tail(&loaded, 20)
    );
    let replies = redis_cli(&mut s, port, &read_path, "redis-cli (read back)");
    assert_same(
        &format!(
            "redis data check under {} (expected vs replies)",
            allocator.name()
        ),
        &expect,
        &replies,
    );

    let mut shutdown = s.command("redis-cli");
    shutdown.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "shutdown",
        "nosave",
    ]);
    // The connection drops as the server exits; redis-cli's own status does not matter.
    let _ = s.run("redis-cli shutdown", &mut shutdown, Duration::from_secs(30));
    let status = wait_with_limit(&mut server.child, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("redis-server did not exit after SHUTDOWN:\n{}", log()));
    server.stopped = true;
    assert!(
        status.success(),
        "redis-server ended with {} under {}:\n{}",
        describe(status),
        allocator.name(),
        log()
    );
    s.expect_summary(server.pgid, "redis-server");
    // The server's whole life (start-up, benchmark, data check, shutdown) is this run's
    // time, rather than the sum of the client commands.
    s.wall = start.elapsed();
    (replies, s)
}

#[test]
fn redis_server_under_benchmark_then_data_check() {
    require("redis-server", "redis-server");
    require("redis-cli", "redis-tools");
    require("redis-benchmark", "redis-tools");
    let dir = TempDir::new("redis");
    let (glibc, gs) = run(Allocator::Glibc, dir.path());
    let (memward, ms) = run(Allocator::Memward, dir.path());
    assert_same("redis data check", &glibc, &memward);
    report_times("redis", &gs, &ms);
}
