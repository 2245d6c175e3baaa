#!/usr/bin/env bash
# Peak RSS of `lsa report` (similarity + redundancy, figures included) on a capture of 5k tokens vs one
# of 50k tokens: memory must not grow with the number of tokens (the exact-CKA cap, default 4096 tokens,
# is below both). Run from the repo root after building:
#   bench/similarity_rss.sh [build/lsa] [model]
set -euo pipefail
LSA=${1:-build/lsa}
MODEL=${2:-../shared/models/tinystories-llama-12L}
DATA=../shared/data/tinystories-sampled-val.txt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for n in 5000 50000; do
  "$LSA" capture --quiet --model "$MODEL" --lines "$DATA" --max-tokens $n --out "$tmp/cap$n.h5"
done
measure() { # $1 = capture, $2.. = extra options; prints "peak_kb|wall|summary line"
  local cap=$1
  shift
  /usr/bin/time -v "$LSA" report "$cap" --out "$tmp/report" "$@" 2> "$tmp/err" >/dev/null
  local kb s line
  kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$tmp/err")
  s=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$tmp/err")
  line=$(grep '^lsa report:' "$tmp/err" | tail -1 | sed "s|$tmp/||g")
  echo "$kb|$s|$line"
}
status=0
echo "| capture | options | peak RSS (MiB) | wall | summary |"
echo "|---|---|---|---|---|"
for opts in "" "--cka-max-tokens 0 --no-figures"; do
  # shellcheck disable=SC2086
  a=$(measure "$tmp/cap5000.h5" $opts)
  # shellcheck disable=SC2086
  b=$(measure "$tmp/cap50000.h5" $opts)
  ka=${a%%|*}
  kb=${b%%|*}
  for r in "5k tokens|$a" "50k tokens|$b"; do
    IFS='|' read -r name k s line <<< "$r"
    echo "| $name | ${opts:-defaults} | $((k / 1024)) | $s | $line |"
  done
  awk -v a="$ka" -v b="$kb" -v o="${opts:-defaults}" \
    'BEGIN { printf "ratio 50k/5k (%s) = %.3f (target 0.90 .. 1.10)\n", o, b / a; exit !(b <= 1.10 * a && b >= 0.90 * a) }' ||
    status=1
done
exit $status
