#!/usr/bin/env bash
# Two builds of bench_forward in turns on one model, ROUNDS times: this VM changes speed for minutes at a
# time, and the ratio of neighbouring runs is steadier than a ratio of separate runs. Copy the first
# build's binary aside before rebuilding, e.g.
#   cp build/bench/bench_forward /tmp/bf_before; (change, rebuild)
#   bench/ab_forward.sh /tmp/bf_before build/bench/bench_forward MODEL T [ROUNDS=5] [REPS=5]
# Prints a line per round: tokens/s of the first, of the second, and second / first.
set -euo pipefail
[ $# -ge 4 ] || { sed -n '2,7p' "$0" >&2; exit 2; }
A=$1 B=$2 M=$3 T=$4 R=${5:-5} N=${6:-5}
tps() { "$1" "$M" "$T" "$N" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_s"])'; }
for _ in $(seq "$R"); do
  a=$(tps "$A")
  b=$(tps "$B")
  echo "$a $b $(/usr/bin/python3 -c "print(f'{$b / $a:.3f}')")"
done
