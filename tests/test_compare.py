#!/usr/bin/env python3
"""lsa compare: two models of different depth overlaid by relative depth. The aligned curves in
compare.json equal each summary's numbers at x = (l + 0.5) / L (per layer) or l / L (per point); the
figures are valid PNG/PDF; a file that is not a summary is a one-line error.
Usage: test_compare.py PATH_TO_LSA"""
import json
import os
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lsatest import Checks, require  # noqa: E402

LSA = sys.argv[1]
check = Checks("test_compare")
DATA = "../shared/data/tinystories-sampled-val.txt"
models = ["../shared/models/tinystories-llama-12L", "../shared/models/tinystories-llama-24L"]
require(*(models + [DATA]))
tmp = tempfile.mkdtemp(prefix="lsa-test-compare-")
lines = os.path.join(tmp, "five.txt")
with open(DATA) as f, open(lines, "w") as g:
    g.writelines(f.readline() for _ in range(5))
sums = []
for i, m in enumerate(models):
    cap, rep = os.path.join(tmp, f"c{i}.h5"), os.path.join(tmp, f"r{i}")
    subprocess.run([LSA, "capture", "--quiet", "--model", m, "--lines", lines, "--out", cap], check=True)
    subprocess.run([LSA, "report", "--quiet", cap, "--out", rep, "--analyses", "similarity,redundancy",
                    "--no-figures"], check=True)
    sums.append(os.path.join(rep, "summary.json"))
out = os.path.join(tmp, "cmp")
res = subprocess.run([LSA, "compare", *sums, "--out", out, "--labels", "12L,24L"], capture_output=True, text=True)




check(res.returncode == 0, f"compare failed: {res.stderr}")
cmp = json.load(open(os.path.join(out, "compare.json")))
check(cmp["models"] == ["12L", "24L"], f"labels {cmp['models']}")
for i, s in enumerate(sums):
    summ = json.load(open(s))
    bi, L = summ["block_influence"], len(summ["block_influence"])
    c = cmp["curves"]["block_influence"][i]
    check(c["value"] == bi, "block_influence values differ from the summary")
    check(all(abs(x - (l + 0.5) / L) < 1e-12 for l, x in enumerate(c["relative_depth"])), "per-layer depth")
    rn = cmp["curves"]["resid_norm"][i]
    check(abs(rn["relative_depth"][0]) < 1e-12 and abs(rn["relative_depth"][-1] - 1) < 1e-12, "per-point depth")
for stem in ("compare-block_influence", "compare-resid_norm"):
    png = open(os.path.join(out, stem + ".png"), "rb").read()
    check(png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24])[0] == 700, f"{stem}.png")
    check(open(os.path.join(out, stem + ".pdf"), "rb").read(5) == b"%PDF-", f"{stem}.pdf")
check("logit_lens.kl_to_final: not in" in res.stderr, "missing curves are listed")
bad = subprocess.run([LSA, "compare", lines], capture_output=True, text=True)
check(bad.returncode == 1 and bad.stderr.count("\n") == 1 and "five.txt: not an lsa summary.json" in bad.stderr,
      f"non-summary: {bad.returncode} {bad.stderr!r}")
if not check.failures:
    subprocess.run(["rm", "-rf", tmp])
check.finish()
