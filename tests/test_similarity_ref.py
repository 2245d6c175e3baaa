#!/usr/bin/env python3
"""NumPy reference for `lsa report` (similarity + redundancy): captures the first LINES lines of the
held-out TinyStories text with tinystories-llama-12L, runs `lsa report`, recomputes every number of
summary.json from the same HDF5 with numpy (float64, written independently of the C code: per-token
cosines by einsum, HSIC_1 on uncentred minibatches) and compares within
1e-6 (CKA, whose GEMMs lsa runs in float32) / 1e-4 (the rest). Also checks results.h5 against summary.json, the --positions last /
--final variants, and the one-line errors for bad captures.
Usage: test_similarity_ref.py PATH_TO_LSA [LINES]"""
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
check = Checks("test_similarity_ref")
LINES = int(sys.argv[2]) if len(sys.argv) > 2 else 100
MODEL = "../shared/models/tinystories-llama-12L"
DATA = "../shared/data/tinystories-sampled-val.txt"




def compare(name, got, want, tol):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        check(False, f"{name}: shape {got.shape}, reference {want.shape}")
        return
    same_nan = np.array_equal(np.isnan(got), np.isnan(want))
    err = np.nanmax(np.abs(got - want)) if np.any(~np.isnan(want)) else 0.0
    where = np.unravel_index(np.nanargmax(np.abs(got - want)), got.shape) if got.size and np.any(~np.isnan(want)) else ()
    print(f"{name:<22} max abs err {err:.3e} at {tuple(int(i) for i in where)} (tol {tol:g})")
    check(same_nan and err <= tol, f"{name}: max abs error {err:.3e} > {tol:g} (or NaN pattern differs)")


def reference(path, cka_cap, batch, last_token, with_final, block=4096):
    """Everything summary.json holds, from the capture, in float64."""
    with h5py.File(path, "r") as f:
        resid = f["resid"][...]  # as stored (float16: about 100 MB for 100 lines); one read, no chunk re-reads
        final = f["resid_final"][...] if with_final else None
        P, N, D = resid.shape
        offs = f["seq_offsets"][:]
        is_last = np.zeros(N, bool)
        is_last[offs[1:] - 1] = True
        n = P + (1 if with_final else 0)
        cos_sum = np.zeros((n, n))
        ang_sum = np.zeros((n, n))
        last_sum = np.zeros((n, n))
        norm_sum = np.zeros(n)
        for t0 in range(0, N, block):
            x = resid[:, t0:t0 + block, :].astype(np.float64)
            if with_final:
                x = np.concatenate([x, final[t0:t0 + block, :].astype(np.float64)[None]], axis=0)
            nrm = np.linalg.norm(x, axis=2)  # (n, T)
            norm_sum += nrm.sum(axis=1)
            xt = np.ascontiguousarray(x.transpose(1, 0, 2))  # (T, n, D)
            dots = np.matmul(xt, xt.transpose(0, 2, 1)).transpose(1, 2, 0)  # (n, n, T): <x_i,t, x_j,t>
            denom = nrm[:, None, :] * nrm[None, :, :]
            c = np.where(denom > 0, dots / np.where(denom > 0, denom, 1), 0.0)
            for i in range(n):  # unit diagonal where the vector is not zero
                c[i, i] = np.where(nrm[i] > 0, 1.0, 0.0)
            a = np.arccos(np.clip(c, -1, 1)) / np.pi
            cos_sum += c.sum(axis=2)
            ang_sum += a.sum(axis=2)
            last_sum += a[:, :, is_last[t0:t0 + block]].sum(axis=2)
        ref = {"cosine": cos_sum / N, "angular_all": ang_sum / N, "angular_last": last_sum / is_last.sum(),
               "resid_norm_all": norm_sum / N}
        # exact linear CKA (Kornblith et al. 2019) on the first m tokens, centred over tokens
        m = min(N, cka_cap)
        X = [resid[i, :m, :].astype(np.float64) for i in range(P)]
        if with_final:
            X.append(final[:m, :].astype(np.float64))
        X = [x - x.mean(axis=0) for x in X]
        K = np.array([[np.linalg.norm(X[j].T @ X[i], "fro") ** 2 for j in range(n)] for i in range(n)])
        ref["cka_linear"] = K / np.sqrt(np.outer(np.diag(K), np.diag(K)))
        # unbiased minibatch CKA: HSIC_1 on raw (uncentred) features, averaged over minibatches
        b = min(batch, N)
        nb = N // b
        hs = np.zeros((n, n))
        for k in range(nb):
            x = resid[:, k * b:(k + 1) * b, :].astype(np.float64)
            if with_final:
                x = np.concatenate([x, final[k * b:(k + 1) * b, :].astype(np.float64)[None]], axis=0)
            Ks = np.matmul(x, x.transpose(0, 2, 1))  # (n, b, b) linear Gram matrices
            Ks[:, np.arange(b), np.arange(b)] = 0
            tr = np.tensordot(Ks, Ks, axes=([1, 2], [2, 1]))  # tr(K_i K_j)
            rows = Ks.sum(axis=2)  # K_i 1
            tot = rows.sum(axis=1)  # 1^T K_i 1
            hs += (tr + np.outer(tot, tot) / ((b - 1) * (b - 2)) - 2.0 / (b - 2) * (rows @ rows.T)) / (b * (b - 3)) / nb
        ref["cka_minibatch"] = hs / np.sqrt(np.outer(np.diag(hs), np.diag(hs)))
    # redundancy, from the matrices over the P points before the final norm
    L = P - 1
    C = ref["cosine"]
    A = ref["angular_last"] if last_token else ref["angular_all"]
    bi = np.array([1 - C[l, l + 1] for l in range(L)])
    ref["block_influence"] = bi
    ref["bi_ranking"] = np.argsort(bi, kind="stable")
    best = []
    for nn in range(1, L):
        d = np.array([A[l, l + nn] for l in range(L - nn + 1)])
        best.append({"n": nn, "start": int(np.argmin(d)), "distance": float(d.min())})
    ref["best_block"] = best
    ref["resid_norm"] = ref["resid_norm_all"][:P]
    ref["norm_growth"] = ref["resid_norm"][1:] / ref["resid_norm"][:-1]
    ref["angular"] = A if not with_final else (ref["angular_last"] if last_token else ref["angular_all"])
    return ref


def run_report(cap, out, *extra):
    # this test is about similarity and redundancy: the model-driven analyses would only cost time
    r = subprocess.run([LSA, "report", cap, "--out", out, "--quiet", "--analyses", "similarity,redundancy", *extra],
                       capture_output=True, text=True)
    check(r.returncode == 0, f"lsa report {' '.join(extra)} exited {r.returncode}: {r.stderr.strip()}")
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)


def nanlist(v):
    return np.array([[np.nan if x is None else x for x in row] for row in v], dtype=np.float64)


def compare_all(label, s, ref):
    compare(f"{label} cosine", s["cosine"], ref["cosine"], 1e-4)
    compare(f"{label} angular", s["angular"], ref["angular"], 1e-4)
    compare(f"{label} cka_linear", nanlist(s["cka_linear"]), ref["cka_linear"], 1e-6)
    compare(f"{label} cka_minibatch", nanlist(s["cka_minibatch"]), ref["cka_minibatch"], 1e-6)
    compare(f"{label} block_influence", s["block_influence"], ref["block_influence"], 1e-4)
    check(s["bi_ranking"] == [int(i) for i in ref["bi_ranking"]],
          f"{label} bi_ranking {s['bi_ranking']} != reference {list(ref['bi_ranking'])}")
    print(f"{label} bi_ranking {s['bi_ranking']}")
    got_best = [(b["n"], b["start"]) for b in s["best_block"]]
    want_best = [(b["n"], b["start"]) for b in ref["best_block"]]
    check(got_best == want_best, f"{label} best_block starts {got_best} != reference {want_best}")
    compare(f"{label} best_block dist", [b["distance"] for b in s["best_block"]],
            [b["distance"] for b in ref["best_block"]], 1e-4)
    compare(f"{label} resid_norm", s["resid_norm"], ref["resid_norm"], 1e-4)
    compare(f"{label} norm_growth", s["norm_growth"], ref["norm_growth"], 1e-4)


def main():
    require(MODEL, DATA)
    tmp = tempfile.mkdtemp(prefix="lsa-test-simref-")
    try:
        lines = os.path.join(tmp, "lines.txt")
        with open(DATA, encoding="utf-8") as f, open(lines, "w", encoding="utf-8") as g:
            for _ in range(LINES):
                g.write(f.readline())
        cap = os.path.join(tmp, "cap.h5")
        subprocess.run([LSA, "capture", "--quiet", "--model", MODEL, "--lines", lines, "--out", cap], check=True)

        out = os.path.join(tmp, "report")
        s = run_report(cap, out, "--no-figures")
        ref = reference(cap, 4096, 256, False, False)
        print(f"capture: {s['n_tokens']} tokens, {len(s['points'])} points")
        check(s["n_tokens"] > 4096, f"only {s['n_tokens']} tokens: the exact CKA cap is not exercised")
        check(s.get("cka_linear_tokens") == 4096, f"cka_linear_tokens {s.get('cka_linear_tokens')}")
        compare_all("all", s, ref)
        C = np.array(s["cosine"])
        check(np.allclose(C, C.T, atol=0, rtol=0) and np.allclose(np.diag(C), 1, atol=1e-12),
              "cosine symmetric with unit diagonal")
        # results.h5 holds the same numbers, with the conventions as attributes
        with h5py.File(os.path.join(out, "results.h5"), "r") as f:
            compare("h5 cosine", f["similarity/cosine"][:], C, 1e-12)
            compare("h5 block_influence", f["redundancy/block_influence"][:], s["block_influence"], 1e-12)
            check(list(f["redundancy/bi_ranking"][:]) == s["bi_ranking"], "h5 bi_ranking")
            check(f["similarity/cka_linear"].attrs["n_tokens"] == 4096, "cka_linear n_tokens attribute")
            check("definition" in f["similarity/angular"].attrs, "definition attribute")
            bb = f["redundancy/best_block"]
            check([c.decode() if isinstance(c, bytes) else c for c in bb.attrs["columns"]] == ["n", "start", "distance"],
                  "best_block columns")
        leftovers = [x for x in os.listdir(out) if "partial" in x]
        check(not leftovers, f"temporary files left: {leftovers}")

        # last-token distances and the final-normed point, smaller CKA settings
        out2 = os.path.join(tmp, "report2")
        s2 = run_report(cap, out2, "--no-figures", "--positions", "last", "--final", "--cka-max-tokens", "700",
                        "--cka-batch", "100")
        ref2 = reference(cap, 700, 100, True, True)
        check(len(s2["cosine"]) == len(s["cosine"]) + 1 and s2["similarity_points"][-1] == "ln_final.hook_normalized"
              and s2["angular_positions"] == "last", "--final adds a row; --positions last is recorded")
        compare_all("last+final", s2, ref2)

        # bad input: one line, exit 1, nothing written
        bad = os.path.join(tmp, "bad.h5")
        txt = os.path.join(tmp, "text.h5")
        with open(txt, "w") as g:
            g.write("not hdf5\n")

        def expect_error(path, what):
            o = os.path.join(tmp, "bad-report")
            r = subprocess.run([LSA, "report", path, "--out", o, "--quiet", "--analyses", "similarity,redundancy"],
                               capture_output=True, text=True)
            err = r.stderr.strip()
            ok = (r.returncode == 1 and err.startswith(f"lsa: error: {path}:") and len(err.splitlines()) == 1
                  and what in err and not os.path.exists(os.path.join(o, "summary.json")))
            print(f"bad input ({what}): exit {r.returncode}: {err}")
            check(ok, f"{path}: expected one-line error mentioning '{what}', exit 1; got {r.returncode}: {err!r}")

        expect_error(os.path.join(tmp, "missing.h5"), "cannot open")
        expect_error(txt, "not an HDF5 file")
        expect_error(os.path.join(out, "results.h5"), "not an lsa capture")
        shutil.copy(cap, bad)
        with h5py.File(bad, "r+") as f:
            f.attrs["format_version"] = 2
        expect_error(bad, "format_version 2")
        shutil.copy(cap, bad)
        with h5py.File(bad, "r+") as f:
            f["resid"][3, 1234, 5] = np.nan
        expect_error(bad, "non-finite value (nan) at point 3 (blocks.2.hook_resid_post), token 1234")
        shutil.copy(cap, bad)
        with h5py.File(bad, "r+") as f:
            del f["tokens"]
        expect_error(bad, "/tokens is missing")
        r = subprocess.run([LSA, "report", cap, "--cka-batch", "2"], capture_output=True, text=True)
        check(r.returncode == 2 and r.stderr.startswith("lsa: error: "), f"bad usage exits 2: {r.returncode}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    check.finish()


if __name__ == "__main__":
    main()
