"""Python's sqlite3 module under load, for allocators.

CPython's own sqlite3 tests (test.test_sqlite3) are not in every distribution's test
package (Debian's libpython3.11-testsuite leaves them out), so this script always covers
the module: connections and cursors, executemany, Python callbacks that SQLite calls
(functions, aggregates, collations, progress handler), row factories, blobs, the backup
API, iterdump, and one connection per thread. Prints deterministic results only; any
mismatch raises, so the exit status is non-zero.
"""

import hashlib
import sqlite3
import threading


def digest(rows):
    h = hashlib.sha256()
    for row in rows:
        h.update(repr(tuple(row)).encode())
    return h.hexdigest()[:16]


def main():
    con = sqlite3.connect(":memory:")
    con.row_factory = sqlite3.Row
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB)")
    rows = [
        (i, "name%05d" % (i * 7919 % 20011), (i * 37 % 1000) / 7.0, bytes([i % 256]) * (i % 300))
        for i in range(1, 40001)
    ]
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
    con.execute("CREATE INDEX t_name ON t(name)")
    con.commit()

    # Python functions, aggregates and collations called back from SQLite.
    con.create_function("rev", 1, lambda s: s[::-1] if s is not None else None, deterministic=True)

    class Spread:
        def __init__(self):
            self.values = []

        def step(self, v):
            self.values.append(v)

        def finalize(self):
            return max(self.values) - min(self.values) if self.values else None

    con.create_aggregate("spread", 1, Spread)
    con.create_collation("bylen", lambda a, b: (len(a) > len(b)) - (len(a) < len(b)) or (a > b) - (a < b))
    ticks = []
    con.set_progress_handler(lambda: ticks.append(1) and 0, 1000)

    r = con.execute("SELECT count(*), sum(length(data)), spread(score) FROM t").fetchone()
    print("rows", r[0], "blob bytes", r[1], "spread %.4f" % r[2])
    top = con.execute("SELECT rev(name) AS r, score FROM t ORDER BY r LIMIT 5").fetchall()
    print("reversed", [(row["r"], round(row["score"], 3)) for row in top])
    grouped = con.execute(
        "SELECT substr(name, 1, 6) AS p, count(*), spread(id) FROM t GROUP BY p ORDER BY p COLLATE bylen, p"
    ).fetchall()
    print("groups", len(grouped), digest(grouped))
    con.set_progress_handler(None, 0)
    if not ticks:
        raise SystemExit("progress handler never ran")

    # Updates, deletes, and a big text column.
    con.execute("UPDATE t SET name = name || '-' || hex(id) WHERE id % 3 = 0")
    con.execute("DELETE FROM t WHERE id % 5 = 0")
    con.execute("ALTER TABLE t ADD COLUMN note TEXT")
    con.executemany("UPDATE t SET note = ? WHERE id = ?", (("x" * (i % 500), i) for i in range(1, 40001, 4)))
    con.commit()
    print("after updates", digest(con.execute("SELECT id, name, note FROM t ORDER BY id")))

    # Incremental blob I/O.
    with con.blobopen("t", "data", 299) as blob:
        head = blob.read(10)
    print("blob", head.hex())

    # Backup to a second database, and a text dump.
    copy = sqlite3.connect(":memory:")
    con.backup(copy)
    print("backup", copy.execute("SELECT count(*), sum(id) FROM t").fetchone())
    dump = "\n".join(con.iterdump())
    print("dump lines", dump.count("\n") + 1, "sha", hashlib.sha256(dump.encode()).hexdigest()[:16])
    copy.close()

    # One connection per thread, each building and querying its own database.
    results = [None] * 6

    def worker(k):
        c = sqlite3.connect(":memory:")
        c.execute("CREATE TABLE w(k INTEGER, v TEXT)")
        c.executemany("INSERT INTO w VALUES (?, ?)", ((i, str(i * k) * (i % 20)) for i in range(20000)))
        results[k] = c.execute("SELECT count(*), sum(length(v)), max(v) FROM w").fetchone()
        c.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("threads", results)
    con.close()


if __name__ == "__main__":
    main()
