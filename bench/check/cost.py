#!/usr/bin/env python3
"""Cost of `memward check` against `memward run`, valgrind memcheck and AddressSanitizer:
wall time and peak resident memory on Debian's own sqlite3, python3 and git and on a C++
program of ours, in one run, interleaved (round robin over the tools within each
repetition), medians with min and max.

    apt-get install -y clang libclang-rt-14-dev valgrind
    cargo build --release -p memward-cli -p memward-preload
    python3 bench/check/cost.py [--reps N] [--quick] [--no-memcheck] [--pin CPU]

Tools: glibc (no preload), `memward run` (LD_PRELOAD=libmemward.so, fast mode), `memward
check` in its default mode (sampled guard pages, leak check at exit), `memward check
--guard all`, valgrind memcheck (--leak-check=full) and ASan. ASan needs the program
rebuilt, so it runs only on our C++ program and our 8-thread C program (bench/check/threads.c;
clang -O2 -fsanitize=address, against the
g++ -O2 build the other tools run); Debian's sqlite3, python3 and git are not rebuilt.
Peak memory is the largest resident set of the command or any process it waited for
(wait4's ru_maxrss).

Prints Markdown tables: wall seconds with the ratio to `memward run`, and peak RSS with
the ratio to `memward run`. A ratio is the median of the repetitions' own ratios (each
repetition runs the tools back to back), not a ratio of medians: these machines switch
between a fast and a slow speed for seconds at a time, and a ratio of medians could divide
one speed by the other. `--pin CPU` runs the single-threaded workloads on that CPU alone.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIB = os.environ.get("MEMWARD_BENCH_LIB", os.path.join(ROOT, "target/release/libmemward.so"))
MEMWARD = os.environ.get("MEMWARD_BENCH_BIN", os.path.join(ROOT, "target/release/memward"))
CXX_NAME = "cxx_workload"
# Runs that reported an error or failed (marked † in the tables).
FLAGGED = set()
CXX_SRC = os.path.join(ROOT, "crates/memward-preload/tests/programs/cxx_workload.cpp")
THREADS_SRC = os.path.join(ROOT, "bench/check/threads.c")

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

PY_TESTS = ["test_json", "test_re", "test_dict", "test_struct", "test_zlib"]


def python():
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else shutil.which("python3")


# Workloads whose programs run one thread (`--pin` applies to them).
SINGLE_THREADED = ("sqlite3 (indexes)", "python3 (json)", "CPython tests", "git (log -p)")


def workloads(quick, build):
    rows = 20000 if quick else 60000
    n = 20000 if quick else 60000
    cxx, cxx_asan, threads, threads_asan = build
    return [
        ("sqlite3 (indexes)", ["/usr/bin/sqlite3", ":memory:"], SQL.format(rows=rows), None),
        ("python3 (json)", [python(), "-c", PY.format(n=n)], None, None),
        ("CPython tests", [python(), "-m", "test", "-q"] + PY_TESTS[: 2 if quick else None],
         None, None),
        ("git (log -p)", ["/usr/bin/git", "-C", ROOT, "log", "-p", "-n", "150" if quick else "400"],
         None, None),
        ("C++ program", [cxx], None, [cxx_asan]),
        ("C, 8 threads", [threads, "8"], None, [threads_asan, "8"]),
    ]


def tools(memcheck):
    pre = {"LD_PRELOAD": LIB}
    check = [MEMWARD, "check", "--"]
    out = [
        ("glibc", lambda cmd, asan: (cmd, {})),
        ("memward run", lambda cmd, asan: (cmd, pre)),
        ("memward check", lambda cmd, asan: (check + cmd, {"MEMWARD_LIB": LIB})),
        ("memward check --guard all",
         lambda cmd, asan: ([MEMWARD, "check", "--guard", "all", "--"] + cmd, {"MEMWARD_LIB": LIB})),
    ]
    if memcheck:
        # Not on the CPython tests and our programs: 20-30x of tens of seconds.
        out.append(("memcheck", lambda cmd, asan: (
            ["valgrind", "-q", "--leak-check=full"] + cmd, {})
            if os.path.basename(cmd[0]) not in (CXX_NAME, "threads") and "test" not in cmd
            else (None, None)))
    # The C++ program checks that a huge new throws bad_alloc and a huge nothrow new gives
    # nullptr; clang -O2 folds the latter, and ASan aborts on the former unless told to
    # return null: its run may end with status 1 for those two checks (nothing else).
    out.append(("ASan", lambda cmd, asan: (asan, {"ASAN_OPTIONS": "allocator_may_return_null=1"})
                if asan else (None, None)))
    return out


def run_measured(argv, env_extra, stdin, cpu=None):
    """Wall time, peak RSS (KiB) and stderr of one run (on CPU `cpu` alone if given)."""
    env = {k: v for k, v in os.environ.items()
           if k != "LD_PRELOAD" and not k.startswith(("MEMWARD_", "ASAN_"))}
    env.update(env_extra)
    with tempfile.TemporaryFile("w+") as err, tempfile.TemporaryFile("w+") as inp:
        if stdin:
            inp.write(stdin)
            inp.seek(0)
        t0 = time.perf_counter()
        pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
        p = subprocess.Popen(argv, env=env, stdin=inp if stdin else subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=err, preexec_fn=pin)
        _, status, usage = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read()
    tolerated = env_extra.get("ASAN_OPTIONS") and p.returncode == 1
    reported = re.search(r"ERROR: (memward|AddressSanitizer|LeakSanitizer): .*", text)
    if reported or (p.returncode != 0 and not tolerated):
        # Timed all the same, marked in the table: a false report is the checker's bug to
        # fix, and the cost up to it still counts.
        print("reported or failed (%d): %s: %s" % (p.returncode, " ".join(argv),
              reported.group(0) if reported else text[-500:]), file=sys.stderr)
        FLAGGED.add(tuple(argv))
    return dt, usage.ru_maxrss, text


def build(tmp):
    cxx = os.path.join(tmp, CXX_NAME)
    asan = os.path.join(tmp, "cxx_workload_asan")
    subprocess.run(["g++", "-O2", "-g", "-std=c++17", "-pthread", "-o", cxx, CXX_SRC], check=True)
    subprocess.run(["clang++", "-O2", "-g", "-std=c++17", "-fsized-deallocation", "-pthread",
                    "-fsanitize=address",
                    "-o", asan, CXX_SRC], check=True)
    threads = os.path.join(tmp, "threads")
    threads_asan = os.path.join(tmp, "threads_asan")
    subprocess.run(["gcc", "-O2", "-g", "-pthread", "-o", threads, THREADS_SRC], check=True)
    subprocess.run(["clang", "-O2", "-g", "-pthread", "-fsanitize=address", "-o", threads_asan,
                    THREADS_SRC], check=True)
    return cxx, asan, threads, threads_asan


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smaller workloads")
    ap.add_argument("--no-memcheck", action="store_true", help="leave valgrind out (slow)")
    ap.add_argument("--pin", type=int, metavar="CPU",
                    help="run the single-threaded workloads on this CPU alone")
    a = ap.parse_args()
    for f in (LIB, MEMWARD):
        if not os.path.exists(f):
            sys.exit("missing %s: cargo build --release -p memward-cli -p memward-preload" % f)
    for t in ("valgrind", "clang++", "g++"):
        if not shutil.which(t):
            sys.exit("missing %s: apt-get install -y valgrind clang libclang-rt-14-dev g++" % t)
    tmp = tempfile.mkdtemp(prefix="memward-check-cost-")
    wl = workloads(a.quick, build(tmp))
    tl = tools(not a.no_memcheck)
    times, rss = {}, {}
    flagged = set()
    for rep in range(a.reps):
        for wname, cmd, stdin, asan in wl:
            for tname, make in tl:
                argv, env = make(cmd, asan)
                if argv is None:
                    continue
                cpu = a.pin if wname in SINGLE_THREADED else None
                dt, peak, _ = run_measured(argv, env, stdin, cpu)
                if tuple(argv) in FLAGGED:
                    flagged.add((wname, tname))
                times.setdefault((wname, tname), []).append(dt)
                rss.setdefault((wname, tname), []).append(peak)
        print("rep %d/%d done" % (rep + 1, a.reps), file=sys.stderr)
    names = [t for t, _ in tl]
    print("Wall time: median (min-max) and **median ratio to memward run**, %d runs\n" % a.reps)
    table(wl, names, times, lambda v: "%.2f s (%.2f-%.2f)" % (statistics.median(v), min(v), max(v)),
          flagged)
    print("Peak resident memory: median (min-max) and **median ratio to memward run**\n")
    table(wl, names, rss,
          lambda v: "%.0f MiB (%.0f-%.0f)" % (statistics.median(v) / 1024, min(v) / 1024, max(v) / 1024),
          flagged)
    if flagged:
        print("† the run reported an error or failed (see stderr); timed all the same.")
    shutil.rmtree(tmp)


def table(wl, names, data, fmt, flagged):
    print("| workload | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for wname, _, _, _ in wl:
        base = data[(wname, "memward run")]
        cells = []
        for t in names:
            v = data.get((wname, t))
            if not v:
                cells.append("n/a (needs a rebuild)" if t == "ASan" else "not run (too slow)")
                continue
            mark = " †" if (wname, t) in flagged else ""
            # Every tool that runs has one entry per repetition, in order.
            ratio = statistics.median(x / b for x, b in zip(v, base))
            cells.append("%s **%.2fx**%s" % (fmt(v), ratio, mark))
        print("| %s | %s |" % (wname, " | ".join(cells)))
    print()


if __name__ == "__main__":
    main()
