#!/usr/bin/env python3
"""What valgrind memcheck, AddressSanitizer and `memward check` catch on the checker corpus
(crates/memward-cli/tests/check): every wrong program and every legal one, under each tool,
judged by the same expectations; writes docs/memward-check-comparison.md.

    apt-get install -y clang libclang-rt-14-dev valgrind     # Debian 12
    cargo build --release -p memward-cli -p memward-preload
    python3 bench/check/compare.py [--write] [--only NAME...]

Each program is built once with gcc/g++ -O0 -g (run as is under memcheck and memward) and
once with clang -fsanitize=address -O0 -g (ASan needs the rebuild). The tools run with
their defaults plus what is needed to see leaks and a failing status:
  memcheck: valgrind --leak-check=full --show-leak-kinds=definite,indirect
            --errors-for-leak-kinds=definite,indirect --error-exitcode=99
  ASan:     ASAN_OPTIONS unset (detect_leaks=1, halt_on_error=1 are its defaults)
  memward:  target/release/memward check [the program's check-options] --
A wrong program counts as caught by memcheck when it reports an error (its error kinds
have their own names), by ASan when it reports an error whose kind matches (the same
expectations as memward's, "to the right of" read as "after"), and by memward when every
expectation holds. A legal program passes when the tool says nothing and the program
exits with status 0.
"""

import argparse
import concurrent.futures
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402

MEMWARD = os.environ.get("MEMWARD_BENCH_BIN", os.path.join(corpus.ROOT, "target/release/memward"))
LIB = os.environ.get("MEMWARD_BENCH_LIB", os.path.join(corpus.ROOT, "target/release/libmemward.so"))
DOC = os.path.join(corpus.ROOT, "docs/memward-check-comparison.md")
TIMEOUT = 120


def run(argv, env_extra=None):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith(("MEMWARD_", "ASAN_", "LSAN_")) or k == "LD_PRELOAD":
            del env[k]
    env.update(env_extra or {})
    try:
        r = subprocess.run(argv, env=env, capture_output=True, text=True, errors="replace",
                           timeout=TIMEOUT, stdin=subprocess.DEVNULL)
        return r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired:
        return None, "", "timed out"


def memcheck_errors(stderr):
    """memcheck's error headlines (the first line of each error) and leak records."""
    heads = re.findall(r"^\*\*\d+\*\* (.*)$", stderr, re.M)  # valgrind giving up
    for m in re.finditer(r"^==\d+== (Invalid \w+(?: of size \d+)?|Invalid free\(\).*|"
                         r"Mismatched free\(\).*|Conditional jump.*|Use of uninitialised.*|"
                         r"Argument '\w+' of function \w+ has a fishy.*|"
                         r"\S.* are (?:definitely|indirectly) lost in loss record.*)$",
                         stderr, re.M):
        text = m.group(1)
        text = re.sub(r"^[\d,]+ (\([\d,]+ direct, [\d,]+ indirect\) )?bytes in [\d,]+ blocks are ",
                      "", text)
        text = re.sub(r" in loss record.*", "", text)
        heads.append(text)
    return heads


def one(prog, build_dir):
    plain = corpus.build(prog, os.path.join(build_dir, "plain"))
    asan = corpus.build(prog, os.path.join(build_dir, "asan"), asan=True)
    res = {}

    code, out, err = run(["valgrind", "--leak-check=full",
                          "--show-leak-kinds=definite,indirect",
                          "--errors-for-leak-kinds=definite,indirect",
                          "--error-exitcode=99", plain])
    heads = memcheck_errors(err)
    if prog.group == "errors" and prog.no_report:
        # Not detectable by allocator tools (uninitialised reads): caught if reported.
        res["memcheck"] = (bool(heads), heads[0] if heads else describe_silence(code))
    elif prog.reports:
        ok = bool(heads) and code not in (0, None)
        res["memcheck"] = (ok, heads[0] if heads else describe_silence(code))
    else:
        ok = not heads and code == 0
        res["memcheck"] = (ok, "silent" if ok else (heads[0] if heads else f"exit {code}"))

    code, out, err = run([asan])
    failed = corpus.judge(prog, "AddressSanitizer", code, out, err)
    first = re.search(r"^==\d+==ERROR: \w+: (.*?)(?: on (?:address )?0x[0-9a-f]+.*)?$", err, re.M)
    if prog.group == "errors" and prog.no_report:
        res["asan"] = (bool(first), first.group(1) if first else describe_silence(code))
    elif prog.reports:
        res["asan"] = (not failed, first.group(1) if first else describe_silence(code))
    else:
        res["asan"] = (not failed, "silent" if not failed else
                       (first.group(1) if first else f"exit {code}"))

    if os.path.exists(MEMWARD):
        code, out, err = run([MEMWARD, "check", *prog.options, "--", plain],
                             {"MEMWARD_LIB": LIB})
        failed = corpus.judge(prog, "memward", code, out, err)
        if prog.stdout_memward and prog.stdout_memward not in out:
            failed.append("stdout lacks " + prog.stdout_memward)
        first = re.search(r"^==\d+==ERROR: memward: (.*?)(?: on (?:address )?0x[0-9a-f]+.*)?$",
                          err, re.M)
        if prog.group == "errors" and prog.no_report:
            # The expectation is a reproducible fill pattern, not a report.
            text = ("not detected; new blocks read as the fill pattern" if not failed
                    else "; ".join(failed))
            res["memward"] = (False, text)
        else:
            text = ("silent" if prog.no_report else first.group(1)) if not failed \
                else "; ".join(failed)
            res["memward"] = (not failed, text)
    else:
        res["memward"] = (False, "memward not built")
    return prog, res


def describe_silence(code):
    if code is None:
        return "timed out"
    if code < 0:
        return f"killed by signal {-code}, no report"
    return "nothing" if code == 0 else f"exit {code}, no report"


def cell(ok, text, prog):
    text = text.replace("|", "\\|")
    if len(text) > 70:
        text = text[:67] + "..."
    return ("✔ " if ok else "✘ ") + text


def table(results):
    lines = []
    for group, title in (("errors", "Wrong programs (caught?)"),
                         ("clean", "Legal programs (silent and exit 0?)")):
        lines.append(f"### {title}\n")
        lines.append("| program | what it does | memcheck | ASan | memward check |")
        lines.append("|---|---|---|---|---|")
        for prog, res in results:
            if prog.group != group:
                continue
            opts = f" (`{' '.join(prog.options)}`)" if prog.options else ""
            lines.append(f"| `{prog.name}`{opts} | {prog.summary} | "
                         + " | ".join(cell(*res[t], prog) for t in ("memcheck", "asan", "memward"))
                         + " |")
        lines.append("")
    rows = (
        ("heap errors caught", lambda p: p.group == "errors" and p.reports),
        ("uninitialised reads reported", lambda p: p.group == "errors" and not p.reports),
        ("legal programs passed", lambda p: p.group == "clean"),
    )
    lines.append("| | programs | memcheck | ASan | memward check |")
    lines.append("|---|---|---|---|---|")
    for label, pick in rows:
        n = sum(1 for p, _ in results if pick(p))
        counts = [sum(1 for p, r in results if pick(p) and r[t][0])
                  for t in ("memcheck", "asan", "memward")]
        lines.append(f"| {label} | {n} | " + " | ".join(str(c) for c in counts) + " |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", action="store_true", help=f"write the table into {DOC}")
    ap.add_argument("--only", nargs="*", help="program names to run")
    args = ap.parse_args()
    progs = [p for p in corpus.programs() if not args.only or p.name in args.only]
    with tempfile.TemporaryDirectory(prefix="memward-compare-") as tmp:
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            results = list(pool.map(lambda p: one(p, tmp), progs))
    text = table(results)
    print(text)
    if args.write:
        with open(DOC) as f:
            doc = f.read()
        start, end = "<!-- table: begin -->\n", "<!-- table: end -->"
        a, b = doc.index(start) + len(start), doc.index(end)
        with open(DOC, "w") as f:
            f.write(doc[:a] + text + doc[b:])
        print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
