#!/usr/bin/env python3
"""Resumable capture (issue 9): a capture killed with SIGKILL at random points, then continued with
--resume, gives the same file contents (tokens, activations, nll, texts, offsets, checksums, attributes
other than created/command) as an uninterrupted capture with the same options. Also: a kill during the
resumed run, a finished-but-not-renamed partial (every sequence taken back), Ctrl-C in a resume run
(the partial is kept), the documented token checksum, and that no temporary file is left.
Usage: test_resume.py PATH_TO_LSA"""
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lsatest import Checks, require  # noqa: E402


LSA = sys.argv[1]
check = Checks("test_resume")
MODEL = "../shared/fixtures/stories260K-hf"
DATA = "../shared/data/tinystories-sampled-val.txt"




require(MODEL, DATA)

tmp = tempfile.mkdtemp(prefix="lsa-test-resume-")
text = os.path.join(tmp, "stories.txt")
with open(DATA, encoding="utf-8") as f, open(text, "w", encoding="utf-8") as g:
    for _ in range(45):
        g.write(f.readline())
rng = random.Random(9)


def capture(out, extra, resume=False):
    args = [LSA, "capture", "--model", MODEL, "--lines", text, "--ctx", "32", "--out", out] + extra
    if resume:
        args.append("--resume")
    return subprocess.run(args, capture_output=True, text=True)


def compare(ref, out, label):
    """Every dataset bit for bit, every root attribute but created/command."""
    with h5py.File(ref, "r") as a, h5py.File(out, "r") as b:
        check(sorted(a.keys()) == sorted(b.keys()), f"{label}: datasets {sorted(a.keys())} vs {sorted(b.keys())}")
        for k in a.keys():
            x, y = a[k][()], b[k][()]
            same = x.shape == y.shape and x.dtype == y.dtype and (
                np.array_equal(x.view(np.uint8), y.view(np.uint8)) if x.dtype.kind == "f" else np.array_equal(x, y))
            check(same, f"{label}: /{k} differs ({x.shape} vs {y.shape})")
        for k in a.attrs:
            if k in ("created", "command"):
                continue
            same = np.array_equal(np.asarray(a.attrs[k]), np.asarray(b.attrs.get(k)))
            check(same, f"{label}: attribute {k}: {a.attrs[k]!r} vs {b.attrs.get(k)!r}")
        return a["tokens"].shape[0], a["texts"].shape[0]


def leftovers(out):
    d, base = os.path.split(out)
    return [n for n in os.listdir(d) if n.startswith(base + ".partial")]


def killed_run(out, extra, after, resume=False):
    """Start a capture (with frequent checkpoints), SIGKILL it after `after` seconds."""
    args = [LSA, "capture", "--quiet", "--model", MODEL, "--lines", text, "--ctx", "32", "--out", out,
            "--checkpoint-seconds", "0.05"] + extra + (["--resume"] if resume else [])
    p = subprocess.Popen(args, stderr=subprocess.PIPE)
    time.sleep(after)
    p.send_signal(signal.SIGKILL)
    p.communicate()
    return p.returncode


def taken(res):
    """Sequences taken back, from the summary line 'resumed: K of the S sequences ...'."""
    for line in res.stderr.splitlines():
        if "resumed:" in line:
            return int(line.split("resumed:")[1].split()[0])
    return -1


variants = [("uncompressed", ["--compress", "0"]), ("compressed", ["--dtype", "f32"])]
for name, extra in variants:
    ref = os.path.join(tmp, f"ref-{name}.h5")
    t0 = time.time()
    res = capture(ref, extra + ["--quiet"])
    took = time.time() - t0
    check(res.returncode == 0, f"{name}: reference capture failed: {res.stderr}")
    n_tok, n_seq = compare(ref, ref, f"{name} ref")
    print(f"{name}: reference {n_tok} tokens in {n_seq} sequences, {took:.1f} s")
    if name == "uncompressed":
        took_uncompressed = took

    # SIGKILL at random points, then --resume
    for k in range(3 if name == "uncompressed" else 1):
        out = os.path.join(tmp, f"{name}-{k}.h5")
        after = took * rng.uniform(0.3, 0.8)
        rc = killed_run(out, extra, after)
        while rc == 0:  # finished before the kill (this run was faster than the reference): kill sooner
            os.remove(out)
            after *= 0.6
            rc = killed_run(out, extra, after)
        part = leftovers(out)
        check(rc == -signal.SIGKILL and not os.path.exists(out), f"{name} kill {k}: exit {rc}, {out} exists")
        check(part == [os.path.basename(out) + ".partial"], f"{name} kill {k} after {after:.2f} s: files {part}")
        res = capture(out, extra, resume=True)
        check(res.returncode == 0, f"{name} kill {k}: resume failed: {res.stderr}")
        kept = taken(res)
        compare(ref, out, f"{name} kill {k} at {after:.2f} s")
        check(leftovers(out) == [], f"{name} kill {k}: left {leftovers(out)}")
        print(f"  killed after {after:.2f} s: resumed, {kept} of {n_seq} sequences taken back; equal")
        if name == "uncompressed":  # chunks are rewritten in place: what was flushed survives the kill
            check(kept > 0, f"{name} kill {k} after {after:.2f} s: nothing was taken back ({res.stderr})")

    # killed again while resuming, then resumed once more
    if name != "uncompressed":
        continue
    out = os.path.join(tmp, f"{name}-twice.h5")
    killed_run(out, extra, took * 0.4)
    killed_run(out, extra, took * 0.4, resume=True)
    res = capture(out, extra, resume=True)
    check(res.returncode == 0, f"{name} twice: {res.stderr}")
    compare(ref, out, f"{name} killed twice")
    print(f"  killed, resumed and killed again, resumed: {taken(res)} taken back; equal")

# A finished capture that was never renamed: every sequence is taken back, none computed.
ref = os.path.join(tmp, "ref-uncompressed.h5")
out = os.path.join(tmp, "whole.h5")
shutil.copy(ref, out + ".partial")
res = capture(out, ["--compress", "0"], resume=True)
with h5py.File(ref, "r") as f:
    n_seq = f["texts"].shape[0]
    toks, offs, sums = f["tokens"][()], f["seq_offsets"][()], f["seq_checksums"][()]
check(res.returncode == 0 and taken(res) == n_seq, f"whole partial: {taken(res)} of {n_seq} taken: {res.stderr}")
compare(ref, out, "whole partial")

# The token checksum is FNV-1a 64 of the sequence's ids as little-endian int32 (docs/capture-format.md).
def fnv1a(b):
    h = 0xCBF29CE484222325
    for x in b:
        h = ((h ^ x) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


for s in (0, n_seq // 2, n_seq - 1):
    want = fnv1a(toks[offs[s]:offs[s + 1]].astype("<i4").tobytes())
    check(int(sums[s, 0]) & 0xFFFFFFFFFFFFFFFF == want, f"seq_checksums[{s}, 0] is not FNV-1a of the tokens")

# Ctrl-C in a --resume run keeps the partial, and says so; resuming it finishes the capture. The signal
# comes halfway through the reference's time once the partial file exists, sooner if the run finished first.
out = os.path.join(tmp, "sigint.h5")
after = took_uncompressed * 0.5
for attempt in range(8):
    p = subprocess.Popen([LSA, "capture", "--model", MODEL, "--lines", text, "--ctx", "32", "--out", out,
                          "--compress", "0", "--checkpoint-seconds", "0.05", "--resume"], stderr=subprocess.PIPE,
                         text=True)
    t0 = time.time()
    while not os.path.exists(out + ".partial") and p.poll() is None and time.time() - t0 < 10:
        time.sleep(0.01)
    time.sleep(max(0.0, after - (time.time() - t0)))
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    if p.returncode == 0 and attempt < 7:
        os.remove(out)
        after *= 0.5
        continue
    break
check(p.returncode == 130 and "--resume to continue" in err, f"SIGINT in a resume run: exit {p.returncode}: {err}")
check(leftovers(out) == ["sigint.h5.partial"], f"SIGINT in a resume run left {leftovers(out)}")
res = capture(out, ["--compress", "0"], resume=True)
check(res.returncode == 0, f"resume after SIGINT: {res.stderr}")
compare(ref, out, "resumed after SIGINT")

if check.failures == 0:
    shutil.rmtree(tmp)
check.finish()
