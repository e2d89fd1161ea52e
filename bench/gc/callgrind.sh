#!/usr/bin/env bash
# Instructions per operation of the single-thread fast paths (valgrind's callgrind):
# each operation runs N times and 0 times; the difference of the totals over N.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release -q
bin=target/release/memward-gc-bench
n=100000
total() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" --micro "$1" "$2" 2>&1 |
        sed -n 's/.*Collected : *\([0-9]*\).*/\1/p'
}
echo "| operation | instructions per op |"
echo "|---|---:|"
for op in rc-new-drop gc-new-drop rc-clone-drop gc-clone-drop rc-deref gc-deref \
          arc-new-drop sync-gc-new-drop arc-clone-drop sync-gc-clone-drop; do
    a=$(total "$op" 0)
    b=$(total "$op" "$n")
    echo "| $op | $(python3 -c "print(round(($b - $a) / $n, 1))") |"
done
