#!/usr/bin/env bash
# Capture end to end (tokenize, forward, every residual point to HDF5 as f16 with deflate 4) vs the
# forward alone (bench_forward, every hidden state kept in memory) on the same model and window length:
# target <= 1.25x (issue 8). Run from the repo root after `cmake --build build --target benches`:
#   bench/capture_overhead.sh [BUILD_DIR=build] [TOKENS=8192]
set -euo pipefail
B=${1:-build}
N=${2:-8192}
M=${BENCH_MODELS:-/tmp/lsa-bench-models}/llama-d1024-tok
[ -f "$M/config.json" ] || /usr/bin/python3 bench/gen_model.py "$M" --d 1024 --layers 8 --vocab 50257 \
    --tokenizer ../shared/fixtures/tiny-gpt2/tokenizer.json >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "| capture options | forward tokens/s | capture tokens/s | capture / forward time | capture's line |"
echo "|---|---|---|---|---|"
fwd=$("$B/bench/bench_forward" "$M" 512 3 | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_s"])')
for opts in "" "--compress 0" "--dtype f32 --compress 0"; do
  # shellcheck disable=SC2086
  "$B/lsa" capture --model "$M" --lines ../shared/data/tinystories-sampled-val.txt --ctx 512 --max-tokens "$N" \
      --out "$tmp/cap.h5" $opts 2> "$tmp/err"
  line=$(grep '^lsa capture:' "$tmp/err" | sed "s|$tmp/||")
  cap=$(sed -n 's/.*(\([0-9.]*\) tokens\/s).*/\1/p' "$tmp/err")
  /usr/bin/python3 -c "
f, c = $fwd, $cap
print(f'| ${opts:-f16, deflate 4 (default)} | {f:.0f} | {c:.0f} | {f / c:.2f}x | $line |')"
done
