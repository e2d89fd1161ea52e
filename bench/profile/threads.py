#!/usr/bin/env python3
"""Overhead of `memward profile` against `memward run` on programs with hundreds of
threads, in one run, interleaved (round robin over the ways of running within each
repetition), medians with min and max.

    cargo build --release -p memward-cli -p memward-preload
    python3 bench/profile/threads.py [--reps N]
    MEMWARD_BENCH_BEFORE_LIB=old/libmemward.so python3 bench/profile/threads.py  # + before

Programs (built here with `cc -O2 -fomit-frame-pointer -pthread`):
- threads: crates/memward-cli/tests/programs/threads.c, the exact-figure test's program
  (600 threads in two waves of 300, 7,500 allocations of its own);
- churn: bench/profile/thread_churn.c with 300 threads making 3,000 malloc/free pairs
  each, all runnable at once, and the same 900,000 pairs on one thread (what the
  recorder costs per event with hundreds of threads against one);
- spawner: crates/memward-cli/tests/programs/spawner.c, the starvation test's program: main
  creates 400 threads that make malloc/free pairs until main, done creating them and with
  1,000 pairs of its own, says stop (each stops by itself after 200,000 pairs): how long
  main takes, with the workers' events competing with its own.

Ways of running, each timed as one process tree:
- `memward run -- CMD` and `memward profile -o F -- CMD`: the commands as a user types
  them (the second includes the profiler's report step: compaction, summary, HTML page);
- LD_PRELOAD=libmemward.so, alone and with MEMWARD_PROFILE=F: the recording itself, as
  bench/profile/overhead.py times it; with MEMWARD_BENCH_BEFORE_LIB, also the recording
  with that build of the library (say, main's), in the same rounds.

Prints Markdown tables: wall and CPU (user + system of all processes) seconds, median
(min-max), and the median's ratio to its baseline (`memward run` for the commands, the
preload alone for recording).
"""

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIB = os.path.join(ROOT, "target/release/libmemward.so")
MEMWARD = os.path.join(ROOT, "target/release/memward")
BEFORE = os.environ.get("MEMWARD_BENCH_BEFORE_LIB")
SOURCES = {
    "threads": os.path.join(ROOT, "crates/memward-cli/tests/programs/threads.c"),
    "churn": os.path.join(ROOT, "bench/profile/thread_churn.c"),
    "spawner": os.path.join(ROOT, "crates/memward-cli/tests/programs/spawner.c"),
}


def programs(tmp):
    made = {}
    for name, src in SOURCES.items():
        exe = os.path.join(tmp, name)
        subprocess.run(["cc", "-O2", "-fomit-frame-pointer", "-pthread", "-o", exe, src], check=True)
        made[name] = exe
    # (name, argv, exit status)
    return [("threads (600 threads)", [made["threads"]], 7),
            ("churn (300 threads x 3,000 pairs)", [made["churn"], "300", "3000"], 0),
            ("churn (1 thread x 900,000 pairs)", [made["churn"], "1", "900000"], 0),
            ("spawner (main creates 400 allocating threads)", [made["spawner"], "200000"], 0)]


def ways(out):
    base = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    return [
        ("memward run", lambda cmd: ([MEMWARD, "run", "--"] + cmd, base)),
        ("memward profile", lambda cmd: ([MEMWARD, "profile", "-o", out, "--"] + cmd, base)),
        ("preload", lambda cmd: (cmd, dict(base, LD_PRELOAD=LIB))),
        ("preload + recording", lambda cmd: (cmd, dict(base, LD_PRELOAD=LIB, MEMWARD_PROFILE=out))),
    ] + ([
        ("before: preload + recording", lambda cmd: (cmd, dict(base, LD_PRELOAD=BEFORE, MEMWARD_PROFILE=out))),
    ] if BEFORE else [])


def run_once(argv, env, status):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != status:
        sys.exit("failed (%d): %s\n%s" % (p.returncode, " ".join(argv), p.stderr[-2000:]))
    return dt, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--only", action="append", metavar="PROGRAM",
                    help="run only this program (threads, churn or spawner; repeatable)")
    a = ap.parse_args()
    for f in (LIB, MEMWARD):
        if not os.path.exists(f):
            sys.exit("missing %s: cargo build --release -p memward-cli -p memward-preload" % f)
    tmp = tempfile.mkdtemp(prefix="memward-threads-bench-")
    progs = [p for p in programs(tmp) if not a.only or p[0].split()[0] in a.only]
    out = os.path.join(tmp, "profile")
    times, cpus = {}, {}
    for rep in range(a.reps):
        for pname, cmd, status in progs:
            for wname, make in ways(out):
                argv, env = make(cmd)
                dt, cpu = run_once(argv, env, status)
                times.setdefault((pname, wname), []).append(dt)
                cpus.setdefault((pname, wname), []).append(cpu)
                for f in os.listdir(tmp):
                    if f.startswith("profile"):
                        os.remove(os.path.join(tmp, f))
        print("rep %d/%d done" % (rep + 1, a.reps), file=sys.stderr)
    baseline = {"memward run": "memward run", "memward profile": "memward run",
                "preload": "preload", "preload + recording": "preload",
                "before: preload + recording": "preload"}
    names = [w for w, _ in ways(out)]
    for title, table in (("Wall time", times), ("CPU time (user + system, all processes)", cpus)):
        print("%s: median (min-max) and **median ratio to its baseline**\n" % title)
        print("| program | " + " | ".join(names) + " |")
        print("|---|" + "---|" * len(names))
        for pname, _, _ in progs:
            cells = []
            for w in names:
                v = table[(pname, w)]
                base = statistics.median(table[(pname, baseline[w])])
                cells.append("%.3f s (%.3f-%.3f) **%.2fx**" % (statistics.median(v), min(v), max(v),
                                                               statistics.median(v) / base))
            print("| %s | %s |" % (pname, " | ".join(cells)))
        print()
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
