#!/usr/bin/env bash
# Peak RSS of `lsa capture` for the first 50 lines of the held-out TinyStories file vs the whole file
# (2000 stories): memory must not grow with the corpus. Run from the repo root after building:
#   bench/capture_rss.sh [build/lsa] [model]
set -euo pipefail
LSA=${1:-build/lsa}
MODEL=${2:-../shared/models/tinystories-llama-12L}
DATA=../shared/data/tinystories-sampled-val.txt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
head -n 50 "$DATA" > "$tmp/fifty.txt"
measure() { # $1 = input, prints "peak_kb seconds tokens size_mb"
  /usr/bin/time -v "$LSA" capture --model "$MODEL" --lines "$1" --out "$tmp/out.h5" 2> "$tmp/err" >/dev/null
  local kb s line
  kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$tmp/err")
  s=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$tmp/err")
  line=$(grep '^lsa capture:' "$tmp/err" | tail -1)
  echo "$kb|$s|$line"
}
a=$(measure "$tmp/fifty.txt")
b=$(measure "$DATA")
ka=${a%%|*}; kb=${b%%|*}
echo "| input | peak RSS (MiB) | wall | summary |"
echo "|---|---|---|---|"
echo "| first 50 lines | $((ka/1024)) | $(echo "$a" | cut -d'|' -f2) | $(echo "$a" | cut -d'|' -f3) |"
echo "| all 2000 lines | $((kb/1024)) | $(echo "$b" | cut -d'|' -f2) | $(echo "$b" | cut -d'|' -f3) |"
awk -v a="$ka" -v b="$kb" 'BEGIN { printf "ratio whole/50 = %.3f (target <= 1.10)\n", b / a; exit !(b <= 1.10 * a) }'
