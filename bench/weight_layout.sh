#!/usr/bin/env bash
# Which weight layout OpenBLAS's one-thread sgemm runs a small model's linear layers faster in: a torch
# Linear's (n_out, n_in), used transposed ("nt"), or (n_in, n_out) ("nn", how lsa keeps the layers of a
# model with d_model <= 256: src/model.c, transpose_linears). Each timing cycles through 40 weight
# matrices so that they come from memory, as in a forward. M: a thread's rows at T = 128 and 512.
#   bench/weight_layout.sh [BUILD_DIR=build] [D=128] [D_FF=512]
set -euo pipefail
B=${1:-build}
D=${2:-128}
F=${3:-512}
gf() { /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["gflops"])'; }
echo "| layer | (n_out, n_in) | M = 64, nt | M = 64, nn | M = 256, nt | M = 256, nn |"
echo "|---|---|---|---|---|---|"
for spec in "q,k,v $((3 * D)) $D" "o $D $D" "gate,up $((2 * F)) $D" "down $D $F"; do
  set -- $spec
  row="| $1 | ($2, $3) |"
  for M in 64 256; do
    for L in nt nn; do
      row="$row $(OPENBLAS_NUM_THREADS=1 "$B/bench/peak" "$2" 20 "$M" "$3" "$L" 40 | gf) |"
    done
  done
  echo "$row"
done
echo
echo "(GFLOP/s of one thread)"
