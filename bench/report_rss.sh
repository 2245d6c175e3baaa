#!/usr/bin/env bash
# Peak RSS of `lsa report`, one analysis group at a time, on a small capture vs one ten times larger:
# memory must not grow with the number of tokens (issues 4 and 8; the exact-CKA cap, default 4096
# tokens, and robustness's default 8192 tokens are below both). Run from the repo root after building:
#   bench/report_rss.sh [build/lsa] [model] [small=10000] [large=100000]
set -euo pipefail
LSA=${1:-build/lsa}
MODEL=${2:-../shared/models/tinystories-llama-12L}
SMALL=${3:-10000}
LARGE=${4:-100000}
DATA=../shared/data/tinystories-sampled-val.txt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for n in $SMALL $LARGE; do
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
for opts in "--analyses similarity,redundancy" "--analyses similarity,redundancy --cka-max-tokens 0 --no-figures" \
            "--analyses lens" "--analyses robustness"; do
  # shellcheck disable=SC2086
  a=$(measure "$tmp/cap$SMALL.h5" $opts)
  # shellcheck disable=SC2086
  b=$(measure "$tmp/cap$LARGE.h5" $opts)
  ka=${a%%|*}
  kb=${b%%|*}
  for r in "$SMALL tokens|$a" "$LARGE tokens|$b"; do
    IFS='|' read -r name k s line <<< "$r"
    echo "| $name | ${opts:-defaults} | $((k / 1024)) | $s | $line |"
  done
  awk -v a="$ka" -v b="$kb" -v o="${opts:-defaults}" \
    'BEGIN { printf "ratio large/small (%s) = %.3f (target 0.90 .. 1.10)\n", o, b / a; exit !(b <= 1.10 * a && b >= 0.90 * a) }' ||
    status=1
done
exit $status
