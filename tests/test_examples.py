#!/usr/bin/env python3
"""The examples work: examples/layer_bi (C API) prints a Block Influence per layer equal to what
`lsa report` computes from a capture of the same prompt, and examples/plot_results.py reads the report.
Usage: test_examples.py PATH_TO_LSA PATH_TO_LAYER_BI"""
import json
import os
import subprocess
import sys
import tempfile

LSA, BI = sys.argv[1], sys.argv[2]
MODEL = "../shared/models/tinystories-llama-12L"
if not os.path.isdir(MODEL):
    sys.exit(f"FAIL: required test data {MODEL} is missing")
prompt = "Once upon a time, there was a little girl named Lily. She loved to play outside."
tmp = tempfile.mkdtemp(prefix="lsa-test-examples-")
out = subprocess.run([BI, MODEL, prompt], capture_output=True, text=True, check=True).stdout.splitlines()
bi = [float(l.split()[1]) for l in out[2:]]
cap = os.path.join(tmp, "cap.h5")
subprocess.run([LSA, "capture", "--quiet", "--model", MODEL, "--prompt", prompt, "--dtype", "f32", "--out", cap],
               check=True)
subprocess.run([LSA, "report", "--quiet", cap, "--out", tmp, "--analyses", "similarity,redundancy", "--no-figures"],
               check=True)
ref = json.load(open(os.path.join(tmp, "summary.json")))["block_influence"]
fails = 0
if len(bi) != 12 or len(ref) != 12 or max(abs(a - b) for a, b in zip(bi, ref)) > 1e-5:
    print(f"FAIL: layer_bi {bi} vs lsa report {ref}", file=sys.stderr)
    fails += 1
res = subprocess.run([sys.executable, "examples/plot_results.py", tmp, cap], capture_output=True, text=True)
if res.returncode != 0 or "most redundant layers" not in res.stdout:
    print("FAIL: plot_results.py:", res.stdout, res.stderr, file=sys.stderr)
    fails += 1
print(f"test_examples: 2 checks, {fails} failed (max BI difference "
      f"{max(abs(a - b) for a, b in zip(bi, ref)) if len(bi) == len(ref) else float('nan'):.2e})")
if not fails:
    subprocess.run(["rm", "-rf", tmp])
sys.exit(1 if fails else 0)
