#!/usr/bin/env python3
"""NumPy reference for the logit lens of `lsa report`: captures the first LINES lines of the held-out
TinyStories text with tinystories-llama-12L, runs `lsa report --analyses lens`, and recomputes every
number of summary.json's "logit_lens" from the capture's own activations and the model's weights, read
with numpy from model.safetensors (the header parsed here, no safetensors package): RMSNorm with the
final norm's weight, the untied lm_head, log-softmax, entropy, KL, cross-entropy, ranks, all in float64.
Each summary number must match within 1e-4; results.h5's per-token arrays must match the reference at
those tokens, and the grid's top-1 at the last point must be the model's own top-1.
Usage: test_lens_ref.py PATH_TO_LSA [LINES]"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lsatest import Checks, require  # noqa: E402


LSA = sys.argv[1]
check = Checks("test_lens_ref")
LINES = int(sys.argv[2]) if len(sys.argv) > 2 else 30
MODEL = "../shared/models/tinystories-llama-12L"
DATA = "../shared/data/tinystories-sampled-val.txt"
TOL = 1e-4




def compare(name, got, want, tol):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        check(False, f"{name}: shape {got.shape}, reference {want.shape}")
        return 0.0
    err = float(np.max(np.abs(got - want))) if got.size else 0.0
    where = int(np.argmax(np.abs(got - want))) if got.size else 0
    print(f"{name:<28} max abs err {err:.3e} at {where} (tol {tol:g})")
    check(err <= tol, f"{name}: max abs error {err:.3e} at {where} > {tol:g}: got {got.ravel()[where]}, "
          f"reference {want.ravel()[where]}")
    return err


def safetensors(path, names):
    """The named tensors of a .safetensors file as float64 arrays (header: u64 length, JSON)."""
    dtypes = {"F32": np.float32, "F16": np.float16, "F64": np.float64}
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name in names:
            if name not in header:
                continue
            h = header[name]
            if h["dtype"] == "BF16":
                f.seek(base + h["data_offsets"][0])
                raw = np.frombuffer(f.read(h["data_offsets"][1] - h["data_offsets"][0]), dtype=np.uint16)
                a = (raw.astype(np.uint32) << 16).view(np.float32)
            else:
                f.seek(base + h["data_offsets"][0])
                a = np.frombuffer(f.read(h["data_offsets"][1] - h["data_offsets"][0]), dtype=dtypes[h["dtype"]])
            out[name] = a.reshape(h["shape"]).astype(np.float64)
    return out


def reference(cap):
    with open(os.path.join(MODEL, "config.json")) as f:
        cfg = json.load(f)
    w = safetensors(os.path.join(MODEL, "model.safetensors"), ["model.norm.weight", "lm_head.weight",
                                                                 "model.embed_tokens.weight"])
    g = w["model.norm.weight"]
    U = w.get("lm_head.weight", w["model.embed_tokens.weight"])  # (V, D)
    eps = cfg["rms_norm_eps"]
    with h5py.File(cap, "r") as f:
        resid = f["resid"][...].astype(np.float64)  # (P, N, D), as stored
        final = f["resid_final"][...].astype(np.float64)
        tok = f["tokens"][...].astype(np.int64)
        offs = f["seq_offsets"][...]
    P, N, D = resid.shape
    has_next = np.ones(N, bool)
    has_next[offs[1:] - 1] = False
    idx = np.nonzero(has_next)[0]
    nxt = tok[idx + 1]

    def log_softmax(z):
        m = z.max(axis=1, keepdims=True)
        return z - (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))

    lpf = log_softmax(final[idx] @ U.T)  # the model's own output distribution
    af = lpf.argmax(axis=1)
    ref = {k: [] for k in ("kl_to_final", "entropy", "cross_entropy", "top1_agree_final", "true_prob",
                           "true_token_rank_median", "true_token_rank_mean", "final_top1_rank_mean")}
    per = {k: [] for k in ("entropy", "kl_to_final", "cross_entropy", "true_prob", "true_rank", "top1")}
    # (point, token) pairs whose rank or argmax is decided by a logit difference below float32 rounding
    # (the C code ranks float32 logits): they may count one rank or one agreement differently
    near = {"true": [], "final": [], "top1": []}
    rows = np.arange(len(idx))
    for l in range(P):
        x = resid[l, idx]
        xn = x / np.sqrt((x * x).mean(axis=1, keepdims=True) + eps) * g
        z = xn @ U.T
        lp = log_softmax(z)
        p = np.exp(lp)
        H = -(p * lp).sum(axis=1)
        kl = (np.exp(lpf) * (lpf - lp)).sum(axis=1)
        zt = z[rows, nxt]
        rank = (z > zt[:, None]).sum(axis=1)
        rank_f = (z > z[rows, af][:, None]).sum(axis=1)
        top1 = z.argmax(axis=1)
        res = 2e-6 * np.abs(z).max(axis=1)  # about 16 float32 ulps of the largest logit

        def n_near(zc, own):
            gap = np.abs(z - zc[:, None])
            gap[rows, own] = np.inf
            return int((gap.min(axis=1) < res).sum())

        near["true"].append(n_near(zt, nxt))
        near["final"].append(n_near(z[rows, af], af))
        near["top1"].append(n_near(z[rows, top1], top1))
        ref["kl_to_final"].append(np.maximum(kl, 0).mean())
        ref["entropy"].append(H.mean())
        ref["cross_entropy"].append((-lp[rows, nxt]).mean())
        ref["top1_agree_final"].append((top1 == af).mean())
        ref["true_prob"].append(p[rows, nxt].mean())
        ref["true_token_rank_median"].append(np.median(rank))
        ref["true_token_rank_mean"].append(rank.mean())
        ref["final_top1_rank_mean"].append(rank_f.mean())
        per["entropy"].append(H)
        per["kl_to_final"].append(np.maximum(kl, 0))
        per["cross_entropy"].append(-lp[rows, nxt])
        per["true_prob"].append(p[rows, nxt])
        per["true_rank"].append(rank)
        per["top1"].append(top1)
    per = {k: np.array(v) for k, v in per.items()}
    return ref, per, idx, nxt, af, near, len(idx)


def main():
    require(MODEL, DATA)
    tmp = tempfile.mkdtemp(prefix="lsa-test-lensref-")
    try:
        lines = os.path.join(tmp, "lines.txt")
        with open(DATA, encoding="utf-8") as f, open(lines, "w", encoding="utf-8") as g:
            for _ in range(LINES):
                g.write(f.readline())
        cap = os.path.join(tmp, "cap.h5")
        subprocess.run([LSA, "capture", "--quiet", "--model", MODEL, "--lines", lines, "--out", cap], check=True)
        out = os.path.join(tmp, "report")
        r = subprocess.run([LSA, "report", cap, "--out", out, "--quiet", "--analyses", "lens", "--no-figures",
                            "--seq", "1", "--grid-positions", "3:9"], capture_output=True, text=True)
        check(r.returncode == 0, f"lsa report exited {r.returncode}: {r.stderr.strip()}")
        with open(os.path.join(out, "summary.json")) as f:
            s = json.load(f)
        lens = s["logit_lens"]
        ref, per, idx, nxt, af, near, n = reference(cap)
        print(f"capture: {s['n_tokens']} tokens, {n} scored, {len(lens['points'])} points; near ties below "
              f"float32 resolution over all points: {sum(near['true'])} at the true token, {sum(near['final'])} at "
              f"the final top-1, {sum(near['top1'])} at the top-1")
        check(lens["n_tokens"] == n, f"n_tokens {lens['n_tokens']} vs {n}")
        for key in ("kl_to_final", "entropy", "cross_entropy", "true_prob", "true_token_rank_median"):
            compare(f"logit_lens.{key}", lens[key], ref[key], TOL)
        # counts over tokens: a near tie may flip one token, 1/n, which is above 1e-4 when n < 10,000
        for key, nk in (("top1_agree_final", "top1"), ("true_token_rank_mean", "true"),
                        ("final_top1_rank_mean", "final")):
            tol = max(TOL, max(near[nk]) / n * (1 + 1e-9))
            compare(f"logit_lens.{key}", lens[key], ref[key], tol)
        # results.h5: per-token arrays for the first n_kept scored tokens, the grid
        with h5py.File(os.path.join(out, "results.h5"), "r") as f:
            pt = f["logit_lens/per_token"]
            K = f["logit_lens"].attrs["n_kept"]
            check(K == min(4096, n), f"n_kept {K}")
            check(np.array_equal(pt["token_index"][:], idx[:K]), "per_token/token_index")
            check(np.array_equal(pt["next_token"][:], nxt[:K]), "per_token/next_token")
            check(np.array_equal(pt["final_top1"][:], af[:K]), "per_token/final_top1")
            for key in ("entropy", "kl_to_final", "cross_entropy", "true_prob"):
                compare(f"per_token/{key}", pt[key][:], per[key][:, :K], 1e-3)
            rank_diff = int((pt["true_rank"][:] != per["true_rank"][:, :K]).sum())
            top1_diff = int((pt["top1"][:] != per["top1"][:, :K]).sum())
            print(f"per_token/true_rank, top1: {rank_diff}, {top1_diff} of {per['top1'][:, :K].size} differ")
            check(rank_diff <= sum(near["true"]) and top1_diff <= sum(near["top1"]),
                  "per-token ranks or top-1 differ beyond near ties")
            for key in ("kl_to_final", "cross_entropy"):  # cJSON prints within an ulp
                check(np.allclose(f[f"logit_lens/{key}"][:], lens[key], atol=0, rtol=1e-14), f"h5 {key} = summary")
            gr = f["logit_lens/grid"]
            check(gr.attrs["sequence"] == 1 and gr.attrs["first_position"] == 3 and gr["top1"].shape == (13, 6),
                  f"grid placement {gr.attrs['sequence']} {gr.attrs['first_position']} {gr['top1'].shape}")
            with h5py.File(cap, "r") as c:
                o = c["seq_offsets"][1]
                want_in = c["tokens"][o + 3:o + 9]
            check(np.array_equal(gr["input"][:], want_in), "grid inputs")
            # the last point's top-1 is the model's top-1 (from resid_final) at those positions
            ks = [int(np.nonzero(idx == o + 3 + c)[0][0]) for c in range(6)]
            check(np.array_equal(gr["top1"][-1, :], af[ks]), f"grid top-1 {gr['top1'][-1, :]} vs model {af[ks]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    check.finish()


if __name__ == "__main__":
    main()
