#!/usr/bin/env bash
# Where `lsa report --analyses similarity` spends its time on captures of 10k and 100k tokens (issue 8):
# reading + decompressing the capture, the per-token Grams, the minibatch CKA and the exact CKA, with the
# GFLOP/s of each and of the CKA GEMMs together against the float32 sgemm peak measured in the same run;
# with the default float32 CKA GEMMs and with --cka-f64. Each report runs 3 times; the median (by total
# time) is shown.
#   bench/similarity_speed.sh [BUILD_DIR=build] [model] [token counts...]
set -euo pipefail
B=${1:-build}
MODEL=${2:-../shared/models/tinystories-llama-12L}
shift $(( $# < 2 ? $# : 2 ))
COUNTS=${*:-10000 100000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
peak=$("$B/bench/peak" 2048 5 | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["gflops"])')
echo "sgemm peak: $peak GFLOP/s ($(nproc) cores); model $MODEL; commit $(git rev-parse --short HEAD)"
for n in $COUNTS; do
  "$B/lsa" capture --quiet --model "$MODEL" --lines ../shared/data/tinystories-sampled-val.txt --max-tokens "$n" \
      --out "$tmp/cap.h5"
  sync # the capture's dirty pages are written back now, not during the timed runs
  for prec in "" --cka-f64; do
    : > "$tmp/lines"
    for _ in 1 2 3; do
      "$B/lsa" report "$tmp/cap.h5" --out "$tmp/rep" --analyses similarity --no-figures --force $prec 2> "$tmp/err"
      grep -h 'lsa report: similarity: reading' "$tmp/err" | sed 's/lsa report: similarity: //' >> "$tmp/lines"
    done
    echo "$n tokens, CKA GEMMs in $([ -n "$prec" ] && echo float64 || echo float32):"
    /usr/bin/python3 - "$peak" "$tmp/lines" <<'PY'
import re, sys
peak = float(sys.argv[1])
runs = []
for line in open(sys.argv[2]):
    sec = lambda what: float(re.search(what + r" ([0-9.]+) s", line)[1])
    gf = lambda what: float(re.search(what + r" [0-9.]+ s \(([0-9.]+) GFLOP/s\)", line)[1])
    t = {k: sec(k) for k in ("reading", "per-token Grams", "minibatch CKA", "exact CKA")}
    g = {k: gf(k) for k in ("per-token Grams", "minibatch CKA", "exact CKA")}
    runs.append((sum(t.values()), t, g))
runs.sort(key=lambda r: r[0])
total, t, g = runs[len(runs) // 2]
gemm_s = t["minibatch CKA"] + t["exact CKA"]
gemm = (t["minibatch CKA"] * g["minibatch CKA"] + t["exact CKA"] * g["exact CKA"]) / gemm_s
print(f"  | {total:.2f} s | {t['reading']:.2f} s | {t['per-token Grams']:.2f} s, {g['per-token Grams']:.1f} GFLOP/s "
      f"| {t['minibatch CKA']:.2f} s, {g['minibatch CKA']:.1f} GFLOP/s | {t['exact CKA']:.2f} s, "
      f"{g['exact CKA']:.1f} GFLOP/s | {gemm_s:.2f} s, {gemm:.1f} GFLOP/s = {100 * gemm / peak:.0f}% of peak |")
PY
  done
done
