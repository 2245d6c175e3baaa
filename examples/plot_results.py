#!/usr/bin/env python3
"""Read what `lsa report` wrote (results.h5 and summary.json) and the capture it came from, with h5py and
numpy; draw two figures with matplotlib when it is installed.

    python3 examples/plot_results.py REPORT_DIR [CAPTURE.h5]
"""
import json
import os
import sys

import h5py
import numpy as np


def main():
    rdir = sys.argv[1]
    summary = json.load(open(os.path.join(rdir, "summary.json")))
    print(f"model {summary['model']} ({summary['model_type']}), {summary['n_tokens']} tokens")
    with h5py.File(os.path.join(rdir, "results.h5"), "r") as r:
        cka = r["similarity/cka_linear"][:]
        bi = r["redundancy/block_influence"][:]
    print("most redundant layers (lowest Block Influence):", summary["bi_ranking"][:5])
    for b in summary["best_block"][:4]:
        print(f"  best block of {b['n']}: layers {b['start']}..{b['start'] + b['n'] - 1} (angular distance {b['distance']:.3f})")
    if len(sys.argv) > 2:
        with h5py.File(sys.argv[2], "r") as f:
            nll = f["nll"][:]
            print(f"capture: mean NLL {np.nanmean(nll):.3f} nats over {np.isfinite(nll).sum()} predicted tokens")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no figures")
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 4))
    im = a.imshow(cka, vmin=0, vmax=1)
    a.set_title("linear CKA")
    fig.colorbar(im, ax=a)
    b.bar(range(len(bi)), bi)
    b.set_xlabel("layer")
    b.set_ylabel("Block Influence")
    out = os.path.join(rdir, "plot_results.png")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print("wrote", out)


if __name__ == "__main__":
    main()
