"""The checker corpus (crates/memward-cli/tests/check): its programs, the expectations in
their header comments, how to build them, and how to judge a run against them.

Shared by bench/check/compare.py (memcheck, ASan and memward side by side) and
bench/check/cost.py. The Rust test crates/memward-cli/tests/check_corpus.rs applies the
same rules to `memward check` in CI; the format is described in the corpus README.
"""

import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "crates/memward-cli/tests/check")


class Program:
    def __init__(self, path):
        self.path = path
        self.group = os.path.basename(os.path.dirname(path))  # errors | clean
        self.name = os.path.splitext(os.path.basename(path))[0]
        self.cxx = path.endswith(".cpp")
        self.summary = ""
        self.options = []
        self.error = None
        self.summary_line = None
        self.phrases = []
        self.frames = []
        self.no_report = self.group == "clean"
        self.exit = None
        self.stdout_memward = None
        self.build_options = []
        with open(path) as f:
            lines = f.read().splitlines()
        in_summary = True
        for line in lines:
            if not line.startswith("//"):
                break
            text = line[2:].strip()
            key, _, value = text.partition(":")
            value = value.strip()
            if in_summary and not key.startswith(("check-", "expect", "build-")):
                self.summary = (self.summary + " " + text).strip()
                continue
            in_summary = False
            if key == "check-options":
                self.options = value.split()
            elif key == "build-options":
                self.build_options = value.split()
            elif key == "expect-error":
                self.error = value
            elif key == "expect-summary":
                self.summary_line = value
            elif key == "expect":
                self.phrases.append(value)
            elif key == "expect-frame":
                self.frames.append(value)
            elif key == "expect-exit":
                self.exit = int(value)
            elif key == "expect-stdout-memward":
                self.stdout_memward = value
            elif text == "expect-no-report":
                self.no_report = True
        if self.exit is None:
            self.exit = 0 if self.no_report else 1

    @property
    def reports(self):
        return not self.no_report


def programs():
    out = []
    for group in ("errors", "clean"):
        d = os.path.join(CORPUS, group)
        for name in sorted(os.listdir(d)):
            if name.endswith((".c", ".cpp")):
                out.append(Program(os.path.join(d, name)))
    return out


def build(prog, outdir, asan=False):
    """Compiles prog at -O0 -g (as a user debugging would), then its own build options;
    with asan, with clang and -fsanitize=address. Returns the executable's path."""
    os.makedirs(outdir, exist_ok=True)
    exe = os.path.join(outdir, prog.name)
    if asan:
        cc = ["clang++", "-std=c++17", "-fsized-deallocation"] if prog.cxx else ["clang"]
        cc += ["-fsanitize=address"]
    else:
        cc = ["g++", "-std=c++17"] if prog.cxx else ["gcc"]
    cmd = cc + ["-O0", "-g", "-pthread", "-w"] + prog.build_options + ["-o", exe, prog.path]
    subprocess.run(cmd, check=True)
    return exe


def judge(prog, tool, code, stdout, stderr):
    """Whether a run of prog under `tool` (its name in reports: memward, AddressSanitizer)
    met every expectation. Returns a list of what failed (empty: all met). For ASan, an
    erroneous program may end with any non-zero status (--exit-code is memward's), and
    its older wording "N bytes to the right/left of" reads as "after/before"."""
    failed = []
    if tool != "memward" and prog.reports:
        if code == 0:
            failed.append("exit status 0")
    elif code != prog.exit:
        failed.append(f"exit status {code}, expected {prog.exit}")
    if tool == "AddressSanitizer":
        stderr = stderr.replace("bytes to the right of", "bytes after")
        stderr = stderr.replace("bytes to the left of", "bytes before")
    errors = re.findall(r"^==\d+==ERROR: (\w+): (.*)$", stderr, re.M)
    if prog.no_report:
        if errors:
            failed.append("reported: " + errors[0][1])
        return failed
    if not errors:
        failed.append("no report")
        return failed
    names = {tool, "LeakSanitizer"} if tool == "AddressSanitizer" else {tool}
    if not any(n in names and msg.startswith(prog.error) for n, msg in errors):
        failed.append(f"ERROR line is '{errors[0][1]}', expected '{prog.error}...'")
    if prog.summary_line:
        summary = re.search(r"^SUMMARY: (\w+): (.*)$", stderr, re.M)
        if not summary or not summary.group(2).startswith(prog.summary_line):
            failed.append(f"SUMMARY is '{summary.group(2) if summary else None}'")
    for phrase in prog.phrases:
        if phrase not in stderr:
            failed.append(f"missing '{phrase}'")
    for frame in prog.frames:
        if not re.search(r"^\s*#\d+ 0x[0-9a-f]+ in " + re.escape(frame) + r"\b", stderr, re.M):
            failed.append(f"no frame in {frame}")
    return failed
