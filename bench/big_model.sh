#!/usr/bin/env bash
# Issue 10's bench: a random-weight bf16 checkpoint of Llama-3-8B shape (hidden 4096, 32 layers, 32/8
# heads, ffn 14336, vocab 128256, untied, rope_theta 500000, 4 shards; generated once, ~16 GB on disk),
# then `lsa capture` of 512 tokens (all layers, f16) under /usr/bin/time -v: tokens/s, effective GFLOP/s
# against the sgemm peak measured in the same run, peak RSS, capture size and bytes per token.
#   bench/big_model.sh [BUILD_DIR=build] [PRESET=llama3-8b|mistral-7b] [MODEL_DIR]
set -euo pipefail
B=${1:-build}
P=${2:-llama3-8b}
M=${3:-/tmp/lsa-bench-models/$P}
[ -f "$M/config.json" ] || /usr/bin/python3 bench/gen_model.py "$M" --preset "$P" \
    --tokenizer ../shared/fixtures/tiny-gpt2/tokenizer.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
head -c 20000 ../shared/data/tinystories-sampled-val.txt > "$tmp/text.txt"
peak=$("$B/bench/peak" 2048 5 | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["gflops"])')
/usr/bin/time -v "$B/lsa" capture --model "$M" --text "$tmp/text.txt" --max-tokens 512 --ctx 512 \
    --out "$tmp/cap.h5" 2> "$tmp/err"
grep '^lsa' "$tmp/err" || true
/usr/bin/python3 - "$M" "$tmp/err" "$tmp/cap.h5" "$peak" <<'PY'
import json, os, re, sys
m, err, cap, peak = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3], float(sys.argv[4])
c = json.load(open(os.path.join(m, "config.json")))
d, L, ff, V = c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"], c["vocab_size"]
kv = c["num_key_value_heads"] * d // c["num_attention_heads"]
params_mat = L * (2 * d * d + 2 * d * kv + 3 * d * ff) + V * d
secs = float(re.search(r"lsa capture: .* ([0-9.]+) s \(", err).group(1))
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1))
T = 512
flops = 2 * params_mat * T + L * c["num_attention_heads"] * 2 * 2 * T * T * (d // c["num_attention_heads"]) / 2
size = os.path.getsize(cap)
print(f"| model | tokens/s | GFLOP/s | % of sgemm peak ({peak:.0f}) | peak RSS | capture | bytes/token |")
print("|---|---|---|---|---|---|---|")
print(f"| {os.path.basename(m)} bf16 | {T / secs:.2f} | {flops / secs / 1e9:.1f} | {100 * flops / secs / 1e9 / peak:.0f}% | "
      f"{rss / 2**20:.2f} GiB | {size / 1e6:.1f} MB | {size / T / 1e3:.0f} KB |")
PY
