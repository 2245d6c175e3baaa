#!/usr/bin/env bash
# `lsa report` run twice on the same capture (issue 6): the second run reads every analysis back from
# DIR/results.h5 instead of recomputing it; --force recomputes. Wall time of each run, with the default
# analyses and options (robustness on 8192 tokens). Run from the repo root after building:
#   bench/report_reuse.sh [build/lsa] [lines] [model]
set -euo pipefail
LSA=${1:-build/lsa}
LINES=${2:-200}
MODEL=${3:-../shared/models/tinystories-llama-12L}
DATA=../shared/data/tinystories-sampled-val.txt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
head -n "$LINES" "$DATA" > "$tmp/lines.txt"
"$LSA" capture --quiet --model "$MODEL" --lines "$tmp/lines.txt" --out "$tmp/cap.h5"
tokens=$(/usr/bin/python3 -c "import h5py,sys; print(h5py.File(sys.argv[1])['tokens'].shape[0])" "$tmp/cap.h5")
run() { # $1 = label, $2.. = extra options
  local label=$1 t0 t1
  shift
  t0=$(date +%s.%N)
  "$LSA" report "$tmp/cap.h5" --out "$tmp/report" "$@" 2> "$tmp/err"
  t1=$(date +%s.%N)
  local reused
  reused=$(sed -n 's/^lsa report: \(.*\) read back from.*/\1/p' "$tmp/err")
  printf '| %s | %.2f | %s |\n' "$label" "$(echo "$t1 - $t0" | bc)" "${reused:-nothing}"
}
echo "model $(basename "$MODEL"), capture of $LINES lines ($tokens tokens), $(nproc) cores"
echo
echo "| run | wall (s) | reused |"
echo "|---|---|---|"
run "first (empty folder)"
run "second (same inputs)"
run "third, --force" --force
run "fourth, --cka-batch 128" --cka-batch 128
