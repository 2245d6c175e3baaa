#!/usr/bin/env bash
# How fast OpenBLAS's sgemm alone runs the linear layers of a small model's forward, on one thread, for
# the rows a thread gets (T / 2 with two threads) and for twice as many: the ceiling for a forward whose
# rows are split between the cores (src/forward.c), next to the 2048³ peak on all threads. Used to say
# what "3x PyTorch at d = 128" would need (bench/RESULTS.md).
#   bench/gemm_shapes.sh [BUILD_DIR=build] [D=128] [D_FF=512]
set -euo pipefail
B=${1:-build}
D=${2:-128}
F=${3:-512}
gf() { /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["gflops"])'; }
echo "sgemm peak, 2048³, $(nproc) threads: $("$B/bench/peak" 2048 5 | gf) GFLOP/s"
echo
echo "| layer | (n_out, n_in) | M = 64 | M = 128 | M = 256 | M = 512 |"
echo "|---|---|---|---|---|---|"
for spec in "q,k,v $((3 * D)) $D" "o $D $D" "gate,up $((2 * F)) $D" "down $D $F"; do
  set -- $spec
  row="| $1 | ($2, $3) |"
  for M in 64 128 256 512; do
    row="$row $(OPENBLAS_NUM_THREADS=1 "$B/bench/peak" "$2" 20 "$M" "$3" | gf) |"
  done
  echo "$row"
done
echo
echo "(GFLOP/s of one thread; a forward on c cores can do at most c times the row for its rows per thread)"
