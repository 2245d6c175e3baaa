#!/usr/bin/env python3
"""Reads captures with h5py, as a notebook would, and checks the documented "lsa-capture" v1 layout;
runs examples/cosine_similarity.py on one; interrupts a capture with SIGINT and checks no file is left;
and checks the capture's one-line errors for bad input. Usage: test_capture_layout.py PATH_TO_LSA"""
import os
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
check = Checks("test_capture_layout")
MODEL = "../shared/models/tinystories-llama-12L"
DATA = "../shared/data/tinystories-sampled-val.txt"




require(MODEL, DATA)

tmp = tempfile.mkdtemp(prefix="lsa-test-layout-")
lines = os.path.join(tmp, "four.txt")
with open(DATA, encoding="utf-8") as f, open(lines, "w", encoding="utf-8") as g:
    for _ in range(4):
        g.write(f.readline())
    g.write("\n\n")  # empty lines are not documents
jsonl = os.path.join(tmp, "two.jsonl")
with open(jsonl, "w", encoding="utf-8") as g:
    g.write('{"text": "Once upon a time there was a cat.", "id": 1}\n{"text": "The end.", "id": 2}\n')

out = os.path.join(tmp, "cap.h5")
subprocess.run([LSA, "capture", "--quiet", "--model", MODEL, "--lines", lines, "--jsonl", jsonl, "--prompt",
                "Tom had a red ball.", "--components", "resid,mid,attn,mlp,logits", "--skip", "3", "--out", out],
               check=True)
with h5py.File(out, "r") as f:
    a = f.attrs
    check(a["format"] == "lsa-capture" and int(a["format_version"]) == 1, "format attributes")
    for key in ["lsa_version", "model_path", "model_type", "n_layers", "d_model", "n_vocab", "n_heads", "dtype",
                "created", "command", "layer_order", "drop_attn", "drop_mlp", "tokenizer"]:
        check(key in a, f"root attribute {key} missing")
    L, D, V = int(a["n_layers"]), int(a["d_model"]), int(a["n_vocab"])
    check(list(a["layer_order"]) == [i for i in range(L) if i != 3], f"layer_order {list(a['layer_order'])}")
    check(os.path.isabs(a["model_path"]) and a["model_type"] == "llama", "model_path absolute, model_type")
    check(a["dtype"] == "f16" and a["created"].endswith("Z") and "--skip 3" in a["command"], "dtype/created/command")
    n_exec = len(a["layer_order"])
    tokens, offs, texts = f["tokens"], f["seq_offsets"], f["texts"]
    N, S = tokens.shape[0], texts.shape[0]
    check(tokens.dtype == np.int32 and offs.dtype == np.int64, "tokens int32, seq_offsets int64")
    check(S == 7 and offs.shape == (S + 1,) and offs[0] == 0 and offs[-1] == N, f"{S} sequences, offsets {offs[:]}")
    check(np.all(np.diff(offs[:]) > 0), "offsets increase")
    t5 = texts[5]
    t5 = t5.decode() if isinstance(t5, bytes) else t5
    check(t5 == "The end.", f"texts[5] = {t5!r}")
    r = f["resid"]
    check(r.shape == (n_exec + 1, N, D) and r.dtype == np.float16, f"resid {r.shape} {r.dtype}")
    pts = [p.decode() if isinstance(p, bytes) else p for p in r.attrs["points"]]
    check(pts[0] == "embed" and pts[1] == "blocks.0.hook_resid_post" and len(pts) == n_exec + 1, f"points {pts[:3]}")
    check([x.decode() if isinstance(x, bytes) else x for x in r.attrs["axes"]] == ["point", "token", "feature"], "axes")
    check(f["resid_final"].shape == (N, D), "resid_final shape")
    for name in ("resid_mid", "attn_out", "mlp_out"):
        check(f[name].shape == (n_exec, N, D), f"{name} shape {f[name].shape}")
    check(f["logits"].shape == (N, V) and f["logits"].dtype == np.float32, "logits shape/dtype")
    nll = f["nll"][:]
    check(f["nll"].dtype == np.float32 and nll.shape == (N,), "nll f32 [N]")
    last = offs[1:] - 1
    check(np.all(np.isnan(nll[last])) and np.all(np.isfinite(np.delete(nll, last))), "nll NaN exactly at sequence ends")
    # nll agrees with the stored logits
    lg = f["logits"][: offs[1]].astype(np.float64)
    lse = np.log(np.exp(lg - lg.max(1, keepdims=True)).sum(1)) + lg.max(1)
    ref = lse[:-1] - lg[np.arange(offs[1] - 1), tokens[1 : offs[1]]]
    check(np.max(np.abs(ref - nll[: offs[1] - 1])) < 1e-4, "nll equals -log softmax(logits)[next]")
    # resid_mid = resid + attn_out (f16 rounding)
    x0, a0, m0 = r[1].astype(np.float32), f["attn_out"][1].astype(np.float32), f["resid_mid"][1].astype(np.float32)
    check(np.max(np.abs(x0 + a0 - m0)) <= 2e-3 * max(1.0, np.abs(m0).max()), "resid_mid = input + attn_out")
    dc = r.id.get_create_plist()
    check(dc.get_nfilters() >= 2, "resid is deflate + shuffle compressed")
    # lsa codes each byte plane its own way (src/chunkstage.c): never noticeably larger than HDF5's own
    # shuffle + deflate at the same level and chunk shape
    ref_path = os.path.join(tmp, "ref.h5")
    with h5py.File(ref_path, "w") as g:
        for name in ("resid", "resid_mid", "attn_out", "mlp_out"):
            d = f[name]
            level = d.compression_opts
            ref = g.create_dataset(name, data=d[...], chunks=d.chunks, maxshape=d.maxshape, shuffle=True,
                                   compression="gzip", compression_opts=level)
            ours, theirs = d.id.get_storage_size(), ref.id.get_storage_size()
            print(f"  {name}: {ours} bytes stored, HDF5 at deflate {level}: {theirs} ({ours / theirs:.3f})")
            check(ours <= 1.01 * theirs, f"{name}: {ours} bytes, HDF5's own deflate {level} {theirs}")
print(f"layout: {check.checks} checks")

# the example script
res = subprocess.run([sys.executable, "examples/cosine_similarity.py", out], capture_output=True, text=True)
check(res.returncode == 0 and "points: embed" in res.stdout, f"example failed: {res.stderr[-500:]}")
sys.path.insert(0, "examples")
import cosine_similarity  # noqa: E402

names, C = cosine_similarity.cosine_matrix(out, block=50)
check(np.allclose(np.diag(C), 1.0, atol=1e-3) and np.allclose(C, C.T), "cosine matrix: unit diagonal, symmetric")

# Ctrl-C during a capture: no file at the output name, temporary removed
big = os.path.join(tmp, "big.h5")
p = subprocess.Popen([LSA, "capture", "--quiet", "--model", "../shared/models/tinystories-llama-24L", "--lines", DATA,
                      "--dtype", "f32", "--out", big], stderr=subprocess.PIPE)
time.sleep(1.5)
p.send_signal(signal.SIGINT)
_, err = p.communicate(timeout=60)
check(p.returncode != 0, f"interrupted capture exited {p.returncode}")
left = [n for n in os.listdir(tmp) if n.startswith("big.h5")]
check(left == [], f"files left after SIGINT: {left}")
check(b"interrupted" in err, f"SIGINT message: {err!r}")


def expect_error(args, phrase):
    res = subprocess.run([LSA] + args, capture_output=True, text=True)
    lines = res.stderr.strip().splitlines()
    check(res.returncode == 1 and len(lines) == 1 and lines[0].startswith("lsa: error: ") and phrase in lines[0],
          f"{args}: exit {res.returncode}, stderr {res.stderr!r}, want one line with {phrase!r}")


ro = os.path.join(tmp, "readonly")
os.mkdir(ro)
os.chmod(ro, 0o555)
if os.geteuid() == 0:  # root writes anywhere: use a folder that does not exist instead
    expect_error(["capture", "--model", MODEL, "--prompt", "hi", "--out", os.path.join(tmp, "nope", "x.h5")],
                 "nope/x.h5")
else:
    expect_error(["capture", "--model", MODEL, "--prompt", "hi", "--out", os.path.join(ro, "x.h5")], "x.h5")
expect_error(["capture", "--model", MODEL, "--lines", os.path.join(tmp, "missing.txt"), "--out", out], "missing.txt")
empty = os.path.join(tmp, "empty.txt")
open(empty, "w").close()
expect_error(["capture", "--model", MODEL, "--lines", empty, "--out", os.path.join(tmp, "e.h5")], "no tokens")
check(not os.path.exists(os.path.join(tmp, "e.h5")), "empty input left a file")
bad = os.path.join(tmp, "bad.jsonl")
with open(bad, "w") as g:
    g.write('{"text": "fine"}\n{"body": "no text field"}\n')
expect_error(["capture", "--model", MODEL, "--jsonl", bad, "--out", os.path.join(tmp, "j.h5")], 'bad.jsonl:2: no string field "text"')
utf = os.path.join(tmp, "utf.txt")
with open(utf, "wb") as g:
    g.write(b"good line\nbad \xc3\x28 line\n")
expect_error(["capture", "--model", MODEL, "--lines", utf, "--out", os.path.join(tmp, "u.h5")], "utf.txt:2")
check(not any(n.startswith(("j.h5", "u.h5")) for n in os.listdir(tmp)), "failed captures left files")

if check.failures == 0:
    subprocess.run(["rm", "-rf", tmp])
check.finish()
