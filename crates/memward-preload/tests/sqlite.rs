//! The `sqlite3` command-line shell on a generated workload: 50,000 customers and 250,000
//! orders inserted from recursive CTEs plus 20,000 literal INSERT statements, four indexes
//! (one unique, on long text keys), joins, grouping, window functions, updates, deletes,
//! `VACUUM`, `REINDEX` and two integrity checks, on a WAL-mode file database with a 64 MiB
//! page cache.
//!
//! Why: SQLite allocates constantly and in every size (page cache, sorter buffers, parse
//! trees, prepared statements, large strings from `group_concat`), and validates its own
//! file, so heap corruption tends to show up as wrong results or `integrity_check`
//! failures. The query results must be identical on glibc and memward, and are also
//! checked against values computed independently here.

mod common;

use common::{assert_same, report_times, require, Allocator, Session, TempDir};
use std::fmt::Write;
use std::fs::File;
use std::time::Duration;

const CUSTOMERS: u64 = 50_000;
const ORDERS: u64 = 250_000;
const LITERAL_ROWS: u64 = 20_000;

/// The SQL script. Values come from arithmetic on the row number, never `random()`, so
/// both runs compute the same data.
fn workload() -> String {
    let mut sql = format!(
        "PRAGMA journal_mode = WAL;
PRAGMA cache_size = -65536;
CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT NOT NULL, created INTEGER);
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER NOT NULL REFERENCES customers(id),
                    amount INTEGER, note TEXT);
CREATE TABLE events(id INTEGER PRIMARY KEY, kind TEXT, payload TEXT);
BEGIN;
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {CUSTOMERS})
INSERT INTO customers SELECT x, 'name' || (x * 7919 % 100003), 'city' || (x % 97), x * 13 % 100000 FROM n;
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {ORDERS})
INSERT INTO orders SELECT x, (x * 2654435761) % {CUSTOMERS} + 1, (x * 40503) % 10007,
                          replace(hex(zeroblob(x % 150)), '00', 'ab') FROM n;
COMMIT;
BEGIN;
"
    );
    // Literal statements: parser and prepared-statement churn.
    for i in 0..LITERAL_ROWS {
        let _ = writeln!(
            sql,
            "INSERT INTO events VALUES ({i}, 'kind{}', '{}');",
            i % 13,
            "e".repeat((i % 90) as usize)
        );
    }
    sql.push_str(
        "COMMIT;
CREATE INDEX orders_customer ON orders(customer);
CREATE INDEX orders_amount ON orders(amount, customer);
CREATE INDEX customers_city ON customers(city, name);
CREATE UNIQUE INDEX orders_note_id ON orders(note, id);
SELECT 'orders', count(*), sum(amount), max(length(note)) FROM orders;
SELECT 'events', count(*), sum(length(payload)), count(DISTINCT kind) FROM events;
SELECT c.city, count(*), sum(o.amount) FROM customers c JOIN orders o ON o.customer = c.id
  GROUP BY c.city ORDER BY 3 DESC, 1 LIMIT 10;
UPDATE orders SET amount = amount + 1 WHERE amount % 7 = 0;
DELETE FROM orders WHERE id % 11 = 0;
DELETE FROM events WHERE id % 3 = 0;
SELECT count(*), total(amount) FROM orders WHERE amount BETWEEN 1000 AND 2000;
SELECT customer, amount, r FROM (
  SELECT customer, amount, rank() OVER (PARTITION BY customer ORDER BY amount DESC, id) AS r FROM orders)
  WHERE r <= 2 ORDER BY customer, r LIMIT 12;
SELECT length(group_concat(name, ',')) FROM (SELECT name FROM customers ORDER BY name);
SELECT id, customer, amount FROM orders WHERE customer IN (SELECT id FROM customers WHERE city = 'city5')
  ORDER BY amount DESC, id LIMIT 10;
SELECT length(note), count(*) FROM orders GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5;
SELECT count(DISTINCT note), count(DISTINCT customer) FROM orders;
PRAGMA integrity_check;
VACUUM;
REINDEX;
PRAGMA integrity_check;
SELECT 'final', count(*), sum(amount) FROM orders;
",
    );
    sql
}

/// Figures the script must print, computed here without SQLite.
fn expected_lines() -> Vec<String> {
    let amount = |x: u64| (x * 40503) % 10007;
    let note_len = |x: u64| 2 * (x % 150);
    let orders_sum: u64 = (1..=ORDERS).map(amount).sum();
    let max_note = (1..=ORDERS).map(note_len).max().unwrap();
    let events_len: u64 = (0..LITERAL_ROWS).map(|i| i % 90).sum();
    let kept = |x: &u64| x % 11 != 0;
    let final_count = (1..=ORDERS).filter(kept).count();
    let final_sum: u64 = (1..=ORDERS)
        .filter(kept)
        .map(|x| {
            let a = amount(x);
            if a % 7 == 0 {
                a + 1
            } else {
                a
            }
        })
        .sum();
    vec![
        format!("orders|{ORDERS}|{orders_sum}|{max_note}"),
        format!("events|{LITERAL_ROWS}|{events_len}|13"),
        format!("final|{final_count}|{final_sum}"),
    ]
}

#[test]
fn sqlite3_shell_workload() {
    let sqlite3 = require("sqlite3", "sqlite3");
    let dir = TempDir::new("sqlite");
    let script = dir.path().join("workload.sql");
    std::fs::write(&script, workload()).unwrap();

    let mut outputs = Vec::new();
    let mut sessions = Vec::new();
    for allocator in [Allocator::Glibc, Allocator::Memward] {
        let mut s = Session::new(allocator);
        let db = dir.path().join(format!("{}.db", allocator.name()));
        let mut cmd = s.command(&sqlite3);
        // -bail: stop at the first error, so it shows up as a failed exit status.
        cmd.args(["-batch", "-bail"])
            .arg(&db)
            .stdin(File::open(&script).unwrap());
        let out = s.run("sqlite3 workload", &mut cmd, Duration::from_secs(180));
        out.expect_success(allocator);
        s.expect_summary(out.pid, "sqlite3");
        assert_eq!(
            out.stdout.lines().filter(|l| *l == "ok").count(),
            2,
            "integrity_check did not say ok twice under {}:\n{}",
            allocator.name(),
            out.stdout
        );
        for want in expected_lines() {
            assert!(
                out.stdout.lines().any(|l| l == want),
                "missing {want:?} under {}:\n{}",
                allocator.name(),
                out.stdout
            );
        }
        outputs.push(out.stdout);
        sessions.push(s);
    }
    assert_same("sqlite3", &outputs[0], &outputs[1]);
    report_times("sqlite3", &sessions[0], &sessions[1]);
}
