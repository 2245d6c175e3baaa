#!/usr/bin/env bash
# Where `lsa report --analyses similarity` spends its time on captures of 10k and 100k tokens (issue 8):
# reading + decompressing the capture, the per-token Grams, the minibatch CKA and the exact CKA, with
# the GFLOP/s of each (float64) against the float32 sgemm peak measured in the same run.
#   bench/similarity_speed.sh [BUILD_DIR=build] [model]
set -euo pipefail
B=${1:-build}
MODEL=${2:-../shared/models/tinystories-llama-12L}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
peak=$("$B/bench/peak" 2048 5 | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["gflops"])')
echo "sgemm peak: $peak GFLOP/s ($(nproc) cores)"
for n in 10000 100000; do
  "$B/lsa" capture --quiet --model "$MODEL" --lines ../shared/data/tinystories-sampled-val.txt --max-tokens $n \
      --out "$tmp/cap.h5"
  "$B/lsa" report "$tmp/cap.h5" --out "$tmp/rep" --analyses similarity --no-figures --force 2> "$tmp/err"
  echo "$n tokens: $(grep -h 'similarity on a capture' "$tmp/err" | sed 's/.*; //') total"
  grep -h 'lsa report: similarity: reading' "$tmp/err" | sed 's/lsa report: similarity: /  /'
done
