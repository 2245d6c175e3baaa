#!/usr/bin/env python3
"""Layer-by-layer cosine similarity from an lsa capture, with h5py and numpy only.

    python3 examples/cosine_similarity.py output/capture.h5 [--png out.png]

C[i, j] = mean over tokens t of cos(resid[i, t], resid[j, t]) over the stored residual points
(index 0 = embedding, l = after the l-th executed layer, all before the final norm). The matrix is
printed; with matplotlib installed and --png given it is also drawn.
"""
import argparse

import h5py
import numpy as np


def cosine_matrix(path, block=4096):
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "lsa-capture", "not an lsa capture"
        resid = f["resid"]  # (points, tokens, features), float16 or float32
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in resid.attrs["points"]]
        P, N, _ = resid.shape
        acc = np.zeros((P, P))
        for t0 in range(0, N, block):  # stream: memory is one block of tokens, whatever N is
            x = resid[:, t0 : t0 + block, :].astype(np.float64)
            x /= np.maximum(np.linalg.norm(x, axis=2, keepdims=True), 1e-30)
            acc += np.einsum("itd,jtd->ij", x, x)
        return names, acc / N


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture")
    ap.add_argument("--png")
    args = ap.parse_args()
    names, C = cosine_matrix(args.capture)
    np.set_printoptions(precision=3, suppress=True, linewidth=200)
    print("points:", ", ".join(names))
    print(C)
    if args.png:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("matplotlib is not installed: no figure")
            return
        fig, ax = plt.subplots(figsize=(5, 4.5))
        im = ax.imshow(C, vmin=min(0.0, C.min()), vmax=1.0, cmap="viridis")
        ax.set_xlabel("residual point")
        ax.set_ylabel("residual point")
        fig.colorbar(im, label="mean cosine similarity")
        fig.savefig(args.png, dpi=150, bbox_inches="tight")
        print("wrote", args.png)


if __name__ == "__main__":
    main()
