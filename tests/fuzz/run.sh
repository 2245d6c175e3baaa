#!/usr/bin/env bash
# usage: tests/fuzz/run.sh SECONDS [TARGET...]
#
# Build the libFuzzer targets (clang, -fsanitize=fuzzer,address,undefined) in build-fuzz/ (or
# $LSA_FUZZ_BUILD), generate their seed corpora from ../shared (tests/fuzz/seeds.py), and run each target
# for SECONDS, one after the other (LSA_FUZZ_JOBS=N: N at a time), under nice. TARGETs default to all of them (safetensors config
# tokenizer_json tokenizer_encode gguf llama2c capture_read). Inputs that find new coverage accumulate in
# BUILD/fuzz/corpus/TARGET (kept between runs); a crash, leak or hang (an input taking over 10 s) is
# written to BUILD/fuzz/crashes/ and makes the script exit 1 after the remaining targets ran. One line
# per target reports its executions and the time it ran.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:?usage: tests/fuzz/run.sh SECONDS [TARGET...]}
shift
all=(safetensors config tokenizer_json tokenizer_encode gguf llama2c capture_read)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")
build=${LSA_FUZZ_BUILD:-build-fuzz}
if [ ! -d ../shared/fixtures ]; then
  echo "fuzz: ../shared (test data) is missing beside the checkout" >&2
  exit 1
fi
command -v clang >/dev/null || { echo "fuzz: clang is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }

CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLSA_SANITIZE=ON -DLSA_FUZZ=ON \
  -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link >/dev/null
cmake --build "$build" -j "$(nproc)" --target $(printf 'fuzz_%s ' "${targets[@]}") >/dev/null
/usr/bin/python3 tests/fuzz/seeds.py "$build/fuzz/seeds"

# largest input per target: big enough for the seeds that matter, small enough to stay fast
declare -A max_len=([safetensors]=16384 [config]=8192 [tokenizer_json]=65536 [tokenizer_encode]=4096
                    [gguf]=65536 [llama2c]=32768 [capture_read]=512)
mkdir -p "$build/fuzz/crashes" "$build/fuzz/logs"
run_one() {
  local t=$1 corpus="$build/fuzz/corpus/$1" log="$build/fuzz/logs/$1.log" rc=0 start took execs cov
  mkdir -p "$corpus"
  start=$(date +%s)
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
    nice -n 10 "$build/tests/fuzz/fuzz_$t" "$corpus" "$build/fuzz/seeds/$t" -max_total_time="$secs" \
    -max_len="${max_len[$t]}" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$build/fuzz/crashes/$t-" >"$log" 2>&1 || rc=$?
  took=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -ao 'cov: [0-9]*' "$log" | tail -1 || true)
  if [ $rc -ne 0 ]; then
    { echo "fuzz $t: FAILED after ${took}s (exit $rc), ${execs:-?} runs; log $log:"
      grep -aE 'ERROR|SUMMARY|runtime error|bad message|Test unit written' "$log" | head -20 || true; } \
      >"$build/fuzz/logs/$t.result"
    return 1
  fi
  echo "fuzz $t: ${execs:-?} runs in ${took}s, no findings (${cov:-cov ?}, corpus $(ls "$corpus" | wc -l) inputs)" \
    >"$build/fuzz/logs/$t.result"
}

# one target after another; LSA_FUZZ_JOBS=N runs N at a time (CI: one per core, to keep its time short)
jobs=${LSA_FUZZ_JOBS:-1}
status=0
for t in "${targets[@]}"; do
  rm -f "$build/fuzz/logs/$t.result"
  run_one "$t" &
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || status=1; done
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || status=1; done
wait || status=1
for t in "${targets[@]}"; do
  if grep -q FAILED "$build/fuzz/logs/$t.result" 2>/dev/null; then
    status=1
    cat "$build/fuzz/logs/$t.result" >&2
  else
    cat "$build/fuzz/logs/$t.result" 2>/dev/null || { echo "fuzz $t: no result" >&2; status=1; }
  fi
done
exit $status
