#!/usr/bin/env bash
# The leak scan's cost beside LeakSanitizer's, on the same heap shape (N blocks of 32
# bytes, half reachable, half in unreachable chains of ten), interleaved in one run.
# LeakSanitizer's cost is the wall time with detect_leaks=1 minus detect_leaks=0 (the
# program's own work); memward's is the scan time the example measures itself.
#   crates/memward-check/bench/leak_cost.sh [N] [ROUNDS]
set -euo pipefail
n=${1:-1000000}
rounds=${2:-5}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
clang -O1 -fsanitize=leak "$here/lsan_anchor.c" -o "$out/lsan_anchor"
cargo build -q --release -p memward-check --example leak_scan_cost
example=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/examples/leak_scan_cost
ms() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null 2>&1 || true; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); }
on=(); off=(); ours=()
for _ in $(seq "$rounds"); do
    on+=("$(LSAN_OPTIONS=detect_leaks=1:exitcode=0 ms "$out/lsan_anchor" "$n")")
    off+=("$(LSAN_OPTIONS=detect_leaks=0 ms "$out/lsan_anchor" "$n")")
    ours+=("$("$example" "$n" 1 | sed -n 's/.*median \([0-9.]*\).*/\1/p')")
done
stats() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {printf "median %s min %s max %s", a[int((NR+1)/2)], a[1], a[NR]}'; }
echo "N=$n rounds=$rounds"
echo "LeakSanitizer run, detect_leaks=1 (ms): $(stats "${on[@]}")"
echo "LeakSanitizer run, detect_leaks=0 (ms): $(stats "${off[@]}")"
echo "memward leak scan alone (ms):          $(stats "${ours[@]}")"
rm -rf "$out"
