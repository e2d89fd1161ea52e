#!/usr/bin/env python3
"""Overhead of `memward profile` against `memward run`, heaptrack and valgrind's massif and
DHAT, on Debian's own sqlite3, python3 and git (built without frame pointers), in one run,
interleaved (round robin over tools within each repetition), medians with min and max.

    cargo build --release -p memward-cli -p memward-preload
    python3 bench/profile/overhead.py [--reps N] [--quick]
    MEMWARD_BENCH_BEFORE_LIB=old/libmemward.so python3 bench/profile/overhead.py  # + before columns
    python3 bench/profile/overhead.py --workload sqlite3 --tool "memward run" \
        --tool "memward profile --sample-rate 512KiB"   # a subset (the sizes table needs
                                                        # memward profile and heaptrack)

Prints a Markdown table (wall seconds and ratio to `memward run`) and the profile sizes
per million allocations (memward's profile as recorded and as `memward profile` leaves it,
compacted and gzipped, against heaptrack's trace of the same run).
The profiler's own report step (`memward profile` writing FILE.html and the summary) is
timed apart: the recording overhead is LD_PRELOAD + MEMWARD_PROFILE, as `memward profile`
sets them.
"""

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Overridable, to benchmark copies while the tree is rebuilt.
LIB = os.environ.get("MEMWARD_BENCH_LIB", os.path.join(ROOT, "target/release/libmemward.so"))
MEMWARD = os.environ.get("MEMWARD_BENCH_BIN", os.path.join(ROOT, "target/release/memward"))
# Another build of the library (say, main's) whose recording runs are timed in the same
# interleaved rounds, for before/after ratios.
BEFORE = os.environ.get("MEMWARD_BENCH_BEFORE_LIB")

SQL = """
CREATE TABLE t(a INTEGER, b TEXT, c TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
INSERT INTO t SELECT i, hex(randomblob(12)), printf('%08d-%s', i * 7919 % 100003, hex(randomblob(4))) FROM n;
CREATE INDEX tb ON t(b);
CREATE INDEX tc ON t(c);
SELECT count(*), max(b) FROM t WHERE c > '0005';
"""

PY = """
import json
d = [{{"key%d" % i: "v" * (i % 50), "n": [i, i * 2, str(i)]}} for i in range({n})]
s = json.dumps(d)
e = json.loads(s)
print(len(s), len(e))
"""


def workloads(quick):
    rows = 20000 if quick else 60000
    n = 20000 if quick else 60000
    return [
        ("sqlite3 (indexes)", ["/usr/bin/sqlite3", ":memory:"], SQL.format(rows=rows)),
        ("python3 (json)", ["/usr/bin/python3", "-c", PY.format(n=n)], None),
        ("git (log -p)", ["/usr/bin/git", "-C", ROOT, "log", "-p", "-n", "150" if quick else "400"], None),
    ]


def tools(tmp):
    pre = {"LD_PRELOAD": LIB}
    return [
        ("memward run", lambda cmd, out: (cmd, pre)),
        ("memward profile", lambda cmd, out: (cmd, dict(pre, MEMWARD_PROFILE=out))),
        (
            "memward profile --sample-rate 512KiB",
            lambda cmd, out: (cmd, dict(pre, MEMWARD_PROFILE=out, MEMWARD_PROFILE_SAMPLE_RATE="524288")),
        ),
    ] + ([
        ("before: memward profile", lambda cmd, out: (cmd, {"LD_PRELOAD": BEFORE, "MEMWARD_PROFILE": out})),
        (
            "before: memward profile --sample-rate 512KiB",
            lambda cmd, out: (cmd, {"LD_PRELOAD": BEFORE, "MEMWARD_PROFILE": out,
                                    "MEMWARD_PROFILE_SAMPLE_RATE": "524288"}),
        ),
    ] if BEFORE else []) + [
        ("heaptrack", lambda cmd, out: (["heaptrack", "-o", out] + cmd, {})),
        ("valgrind massif", lambda cmd, out: (["valgrind", "-q", "--tool=massif", "--massif-out-file=" + out] + cmd, {})),
        ("valgrind DHAT", lambda cmd, out: (["valgrind", "-q", "--tool=dhat", "--dhat-out-file=" + out] + cmd, {})),
    ]


def run_once(argv, env_extra, stdin):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.update(env_extra)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(argv, input=stdin, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit("failed (%d): %s\n%s" % (p.returncode, " ".join(argv), p.stderr[-2000:]))
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return dt, cpu


def profile_allocations(path):
    """Allocation count of a memward profile, from `memward report`'s text."""
    out = subprocess.run([MEMWARD, "report", path], capture_output=True, text=True).stdout
    m = re.search(r"allocations:\s+([\d,]+)", out)
    return int(m.group(1).replace(",", "")) if m else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--workload", "--only", action="append", default=[],
                    help="run only this workload (its first word: sqlite3, python3, git); repeatable")
    ap.add_argument("--tool", action="append", default=[],
                    help="run only this tool (its column name, e.g. 'memward run'); repeatable")
    a = ap.parse_args()
    all_tools = [t for t, _ in tools("")]
    for t in a.tool:
        if t not in all_tools:
            sys.exit("unknown tool %r; one of: %s" % (t, ", ".join(all_tools)))
    if a.tool and "memward run" not in a.tool:
        sys.exit("--tool: 'memward run' is the baseline of every ratio; select it too")
    all_workloads = [w.split()[0] for w, _, _ in workloads(a.quick)]
    for w in a.workload:
        if w not in all_workloads:
            sys.exit("unknown workload %r; one of: %s" % (w, ", ".join(all_workloads)))
    chosen_workloads = lambda: [w for w in workloads(a.quick) if not a.workload or w[0].split()[0] in a.workload]
    chosen_tools = lambda tmp: [t for t in tools(tmp) if not a.tool or t[0] in a.tool]
    sizes_table = not a.tool or {"memward profile", "heaptrack"} <= set(a.tool)
    for f in (LIB, MEMWARD):
        if not os.path.exists(f):
            sys.exit("missing %s: cargo build --release -p memward-cli -p memward-preload" % f)
    needed = [t for t in ("heaptrack", "valgrind") if not a.tool or any(x.startswith(t) for x in a.tool)]
    for t in needed:
        if not shutil.which(t):
            sys.exit("missing %s: apt-get install -y heaptrack valgrind" % t)
    tmp = tempfile.mkdtemp(prefix="memward-overhead-")
    times = {}
    cpus = {}
    sizes = {}
    for rep in range(a.reps):
        for wname, cmd, stdin in chosen_workloads():
            for tname, make in chosen_tools(tmp):
                out = os.path.join(tmp, "%s-%s-%d" % (wname.split()[0], tname.replace(" ", "_"), rep))
                argv, env = make(cmd, out)
                dt, cpu = run_once(argv, env, stdin)
                times.setdefault((wname, tname), []).append(dt)
                cpus.setdefault((wname, tname), []).append(cpu)
                if rep == 0 and tname == "memward profile":
                    sizes[(wname, "memward")] = (os.path.getsize(out), profile_allocations(out))
                if rep == 0 and tname == "heaptrack":
                    hfile = [f for f in os.listdir(tmp) if f.startswith(os.path.basename(out))][0]
                    sizes[(wname, "heaptrack")] = os.path.getsize(os.path.join(tmp, hfile))
                if rep == 0 and tname == "memward run" and sizes_table:
                    # The report step of `memward profile`, timed apart (once).
                    prof = out + ".report"
                    t0 = time.perf_counter()
                    subprocess.run([MEMWARD, "profile", "-o", prof, "--"] + cmd, input=stdin,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, env={
                                       k: v for k, v in os.environ.items() if k != "LD_PRELOAD"})
                    sizes[(wname, "memward profile (whole command)")] = time.perf_counter() - t0
                    # What `memward profile` leaves: compacted and gzipped.
                    sizes[(wname, "memward final")] = os.path.getsize(prof)
        print("rep %d/%d done" % (rep + 1, a.reps), file=sys.stderr)
    names = [t for t, _ in chosen_tools(tmp)]
    for title, table in (("Wall time", times), ("CPU time (user + system, all processes)", cpus)):
        print("%s: median (min-max) and **median ratio to memward run**\n" % title)
        print("| workload | " + " | ".join(names) + " |")
        print("|---|" + "---|" * len(names))
        for wname, _, _ in chosen_workloads():
            base = statistics.median(table[(wname, "memward run")])
            cells = []
            for t in names:
                v = table[(wname, t)]
                med = statistics.median(v)
                cells.append("%.2f s (%.2f-%.2f) **%.2fx**" % (med, min(v), max(v), med / base))
            print("| %s | %s |" % (wname, " | ".join(cells)))
        print()
    if not sizes_table:
        shutil.rmtree(tmp)
        return
    print("| workload | allocations | memward as recorded | per million allocations | memward as `memward profile` leaves it (compacted, gzipped) | per million allocations | heaptrack trace | per million allocations | `memward profile` whole command (with report) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for wname, _, _ in chosen_workloads():
        msize, allocs = sizes[(wname, "memward")]
        fsize = sizes[(wname, "memward final")]
        hsize = sizes[(wname, "heaptrack")]
        size = lambda s: "%.1f KB" % (s / 1e3)
        per = lambda s: size(s / max(allocs, 1) * 1e6)
        print("| %s | %d | %s | %s | %s | %s | %s | %s | %.2f s |" % (
            wname, allocs, size(msize), per(msize), size(fsize), per(fsize), size(hsize), per(hsize),
            sizes[(wname, "memward profile (whole command)")]))
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
