#!/usr/bin/env bash
# Instruction counts (valgrind's callgrind), the stable figure on a shared machine.
# 1. Single-thread fast paths: each operation runs N times and 0 times; the difference
#    of the totals over N.
# 2. Whole workloads, one run each (`--child WORKLOAD IMPL`), minus the program's start-up;
#    memward-gc also with its box cache off (MEMWARD_GC_BOX_CACHE=0), which shows what the
#    collector and the counting paths cost with glibc malloc behind every box.
# `./callgrind.sh micro` or `./callgrind.sh workloads` runs one part only.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release -q
bin=target/release/memward-gc-bench
n=100000
part=${1:-all}
total() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$@" 2>&1 |
        sed -n 's/.*Collected : *\([0-9]*\).*/\1/p'
}
if [ "$part" != workloads ]; then
    echo "| operation | instructions per op |"
    echo "|---|---:|"
    for op in rc-new-drop gc-new-drop rc-clone-drop gc-clone-drop rc-deref gc-deref \
              arc-new-drop sync-gc-new-drop arc-clone-drop sync-gc-clone-drop; do
        a=$(total --micro "$op" 0)
        b=$(total --micro "$op" "$n")
        echo "| $op | $(python3 -c "print(round(($b - $a) / $n, 1))") |"
    done
    echo
fi
if [ "$part" != micro ]; then
    start=$(total --micro rc-new-drop 0)
    echo "| workload | implementation | instructions, millions | ratio to the first line |"
    echo "|---|---|---:|---:|"
    first=""
    while IFS='|' read -r workload name cache; do
        if [ "$cache" = off ]; then
            t=$(MEMWARD_GC_BOX_CACHE=0 total --child "$workload" "$name")
            label="$name (box cache off)"
        else
            t=$(total --child "$workload" "$name")
            label=$name
        fi
        if [ -z "$first" ] || [ "$workload" != "$first_workload" ]; then
            first=$((t - start))
            first_workload=$workload
        fi
        echo "| $workload | $label | $(python3 -c "print(round(($t - $start) / 1e6, 2))") | $(python3 -c "print(round(($t - $start) / $first, 3))") |"
    done <<'LIST'
binary trees|Rc|
binary trees|memward-gc|
binary trees|memward-gc|off
binary trees|rust-cc|
parent pointers|Rc+Weak|
parent pointers|memward-gc|
parent pointers|memward-gc|off
parent pointers|rust-cc|
linked list|Rc+Weak|
linked list|memward-gc|
linked list|memward-gc|off
linked list|rust-cc|
stress|rust-cc|
stress|memward-gc|
stress|memward-gc|off
churn unsync|dumpster|
churn unsync|memward-gc|
churn unsync|memward-gc|off
churn unsync|rust-cc|
LIST
fi
