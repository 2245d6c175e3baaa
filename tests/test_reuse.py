#!/usr/bin/env python3
"""lsa report reuses results (issue 6): a second run over the same capture reads every analysis back
from DIR/results.h5 and writes the same numbers (results.h5 objects, summary.json) and figures; an
analysis whose options changed is recomputed alone; --force, a rewritten capture, other model files, a
damaged or foreign results.h5 all lead to recomputation, never to an error or to stale numbers.
Usage: test_reuse.py PATH_TO_LSA"""
import json
import os
import shutil
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lsatest import LLAMA12, Checks, DATA, first_lines, lsa, require, scratch  # noqa: E402

LSA = sys.argv[1]
check = Checks("test_reuse")
ALL = "similarity, redundancy, lens, robustness"


def reused(stderr):
    """The analyses the run says it read back ('' when none)."""
    for line in stderr.splitlines():
        if "read back from the earlier" in line:
            return line.split("lsa report: ", 1)[1].split(" read back", 1)[0]
    return ""


def h5_objects(path):
    """Every dataset and its values, every attribute of every group and dataset but the root's."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            for k, v in obj.attrs.items():
                out[f"{name}@{k}"] = np.asarray(v)
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]
        f.visititems(visit)
    return out


def same_h5(a, b):
    x, y = h5_objects(a), h5_objects(b)
    if x.keys() != y.keys():
        return f"objects differ: {sorted(set(x) ^ set(y))}"
    diff = [k for k in x if not np.array_equal(x[k], y[k], equal_nan=x[k].dtype.kind == "f")]
    return f"values differ: {diff}" if diff else ""


def main():
    require(LLAMA12, DATA)
    tmp = scratch("reuse")
    lines = first_lines(4, os.path.join(tmp, "lines.txt"))
    cap = os.path.join(tmp, "cap.h5")
    r = lsa(LSA, "capture", "--quiet", "--model", LLAMA12, "--lines", lines, "--out", cap)
    if not check(r.returncode == 0, f"capture: {r.stderr}"):
        check.finish()
    out = os.path.join(tmp, "rep")
    args = ["report", cap, "--out", out, "--robust-tokens", "300", "--format", "png"]

    def report(*extra):
        r = lsa(LSA, *args, *extra)
        check(r.returncode == 0, f"report {' '.join(extra)}: exit {r.returncode}: {r.stderr.strip()}")
        return r

    def keep(tag):
        shutil.copy(os.path.join(out, "results.h5"), os.path.join(tmp, f"{tag}.h5"))
        shutil.copy(os.path.join(out, "summary.json"), os.path.join(tmp, f"{tag}.json"))
        shutil.copy(os.path.join(out, "figures", "block_influence.png"), os.path.join(tmp, f"{tag}.png"))

    def same_as(tag, what):
        d = same_h5(os.path.join(tmp, f"{tag}.h5"), os.path.join(out, "results.h5"))
        check(not d, f"{what}: results.h5 {d}")
        with open(os.path.join(tmp, f"{tag}.json")) as f, open(os.path.join(out, "summary.json")) as g:
            check(json.load(f) == json.load(g), f"{what}: summary.json differs")

    # 1. first run computes everything, the second reads everything back and writes the same files
    r = report()
    check(reused(r.stderr) == "", f"first run reused '{reused(r.stderr)}'")
    with h5py.File(os.path.join(out, "results.h5"), "r") as f:
        for g in ("similarity", "redundancy", "logit_lens", "robustness"):
            check(len(f[g].attrs.get("input_key", "")) == 32 and f[g].attrs.get("options", ""),
                  f"/{g} lacks its input_key / options stamp")
        check(f["similarity"].attrs["input_key"] != f["logit_lens"].attrs["input_key"],
              "analyses that run the model have a key that includes the model")
    keep("first")
    r = report()
    check(reused(r.stderr) == ALL, f"second run reused '{reused(r.stderr)}', want all four")
    same_as("first", "second run")
    with open(os.path.join(tmp, "first.png"), "rb") as f:
        check(f.read() == open(os.path.join(out, "figures", "block_influence.png"), "rb").read(),
              "a figure drawn from reused results differs")
    check(os.path.getsize(os.path.join(out, "report.pdf")) > 10000, "report.pdf written on reuse")

    # 2. one analysis's options changed: that one alone is recomputed
    r = report("--cka-batch", "64")
    check(reused(r.stderr) == "redundancy, lens, robustness", f"--cka-batch 64 reused '{reused(r.stderr)}'")
    with h5py.File(os.path.join(out, "results.h5"), "r") as f:
        check(f["similarity/cka_minibatch"].attrs["batch_size"] == 64, "similarity recomputed with the new batch")
    r = report("--cka-batch", "64", "--robust-tokens", "200")
    check(reused(r.stderr) == "similarity, redundancy, lens", f"--robust-tokens reused '{reused(r.stderr)}'")
    report()
    same_as("first", "back to the first options")

    # 3. --force recomputes, to the same numbers
    r = report("--force")
    check(reused(r.stderr) == "", f"--force reused '{reused(r.stderr)}'")
    same_as("first", "--force")

    # 4. a rewritten capture (new modification time): nothing is reused
    st = os.stat(cap)
    os.utime(cap, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    r = report()
    check(reused(r.stderr) == "", f"after the capture changed, reused '{reused(r.stderr)}'")

    # 5. other model files (a copy with new modification times, then a touched config.json): the
    # capture's analyses are reused, not those that run the model
    model = os.path.join(tmp, "model")
    shutil.copytree(LLAMA12, model, copy_function=shutil.copy)
    r = report("--model", model)
    check(reused(r.stderr) == "similarity, redundancy", f"--model copy reused '{reused(r.stderr)}'")
    r = report("--model", model)
    check(reused(r.stderr) == ALL, f"--model copy again reused '{reused(r.stderr)}'")
    cfg = os.path.join(model, "config.json")
    os.utime(cfg, ns=(os.stat(cfg).st_atime_ns, os.stat(cfg).st_mtime_ns + 10**9))
    r = report("--model", model)
    check(reused(r.stderr) == "similarity, redundancy", f"touched config.json: reused '{reused(r.stderr)}'")

    # 6. stamps that match over numbers that cannot be read back: recomputed with a note, not an error
    report()
    keep("intact")
    with h5py.File(os.path.join(out, "results.h5"), "r+") as f:
        del f["logit_lens/entropy"]
        del f["robustness/delete"]
    r = report()
    check(reused(r.stderr) == "similarity, redundancy", f"damaged groups: reused '{reused(r.stderr)}'")
    check("cannot reuse logit_lens" in r.stderr and "cannot reuse robustness" in r.stderr and "recomputing" in r.stderr,
          f"damaged groups not reported: {r.stderr!r}")
    same_as("intact", "recomputed after damage")

    # 7. a results.h5 that is not HDF5 at all: everything recomputed
    with open(os.path.join(out, "results.h5"), "wb") as f:
        f.write(b"not an HDF5 file\n" * 100)
    r = report()
    check(reused(r.stderr) == "", f"garbage results.h5: reused '{reused(r.stderr)}'")
    same_as("intact", "recomputed over garbage")
    check.finish()


if __name__ == "__main__":
    main()
