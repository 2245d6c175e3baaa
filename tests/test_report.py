#!/usr/bin/env python3
"""`lsa report` end to end with the logit lens and robustness (issue 5), on a small tinystories-llama-12L
capture: every documented summary.json key is there with the right shape and internal consistency
(removal curves start at the baseline, the swap matrix is symmetric with the intact model on its
diagonal and the adjacent swaps on its first off-diagonal, perplexity = exp(NLL)); results.h5 mirrors it;
every figure is written and decodes; robustness on --text agrees with `lsa run --skip/--swap` on the same
text; when the model cannot be loaded, lens and robustness are skipped with the reason on stderr (and
are an error when asked for); a capture of selected layers skips redundancy only; bad options are usage
errors.
Usage: test_report.py PATH_TO_LSA"""
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lsatest import Checks, require  # noqa: E402


LSA = sys.argv[1]
check = Checks("test_report")
MODEL = "../shared/models/tinystories-llama-12L"
DATA = "../shared/data/tinystories-sampled-val.txt"




def run(*args):
    return subprocess.run([LSA, *args], capture_output=True, text=True)


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def main():
    require(MODEL, DATA)
    tmp = tempfile.mkdtemp(prefix="lsa-test-report-")
    try:
        lines = os.path.join(tmp, "lines.txt")
        with open(DATA, encoding="utf-8") as f, open(lines, "w", encoding="utf-8") as g:
            for _ in range(4):
                g.write(f.readline())
        cap = os.path.join(tmp, "cap.h5")
        subprocess.run([LSA, "capture", "--quiet", "--model", MODEL, "--lines", lines, "--out", cap], check=True)
        with h5py.File(cap, "r") as f:
            P = f["resid"].shape[0]
            n_seqs = len(f["seq_offsets"]) - 1
        L = P - 1

        # 1. everything, with the swap matrix, on the first 600 tokens
        out = os.path.join(tmp, "report")
        r = run("report", cap, "--out", out, "--robust-tokens", "600", "--swap-all", "--seq", "1",
                "--grid-positions", "2:10")
        check(r.returncode == 0, f"lsa report exited {r.returncode}: {r.stderr.strip()}")
        print(r.stderr.strip())
        check("lens" in r.stderr and "robustness: baseline NLL" in r.stderr, "summary lines name lens and robustness")
        with open(os.path.join(out, "summary.json")) as f:
            s = json.load(f)
        for k in ("cosine", "angular", "block_influence", "bi_ranking", "best_block", "resid_norm"):
            check(k in s, f"summary.json lost the similarity/redundancy key {k}")
        lens = s["logit_lens"]
        for k in ("kl_to_final", "entropy", "cross_entropy", "top1_agree_final", "true_token_rank_median",
                  "true_token_rank_mean", "true_prob", "final_top1_rank_mean", "points"):
            check(k in lens and len(lens[k]) == P, f"logit_lens.{k}: {len(lens.get(k, []))} values, want {P}")
        check(lens["top1_agree_final"][-1] == 1.0 and lens["kl_to_final"][-1] < 1e-4,
              f"last point is the model: top-1 {lens['top1_agree_final'][-1]}, KL {lens['kl_to_final'][-1]}")
        check(all(lens["kl_to_final"][i] >= lens["kl_to_final"][-1] for i in range(P)), "KL to final >= last's")
        rb = s["robustness"]
        base = rb["baseline_nll"]
        check(abs(rb["baseline_ppl"] - math.exp(base)) < 1e-9 * rb["baseline_ppl"], "baseline_ppl = exp(baseline_nll)")
        check(rb["n_tokens"] == 600, f"robustness.n_tokens {rb['n_tokens']}")
        check([d["layer"] for d in rb["delete"]] == list(range(L)) and
              all(set(d) == {"layer", "nll", "kl", "top1"} for d in rb["delete"]), "robustness.delete rows")
        check([(d["i"], d["j"]) for d in rb["swap"]] == [(i, i + 1) for i in range(L - 1)], "robustness.swap rows")
        for k in ("drop_attn", "drop_mlp"):
            check(len(rb[k]) == L and all(0 <= d["top1"] <= 1 and d["kl"] >= 0 for d in rb[k]), f"robustness.{k}")
        curves = rb["removal_curve"]
        for k in ("bi_order", "best_block", "random"):
            c = curves[k]
            check([x["k"] for x in c] == list(range(L)) and c[0]["nll"] == base, f"removal_curve.{k} starts at the baseline")
        check(curves["bi_order"][1]["nll"] == rb["delete"][rb["bi_order"][0]]["nll"], "BI curve k=1 = that deletion")
        check(rb["bi_order_source"].startswith("redundancy"), f"bi_order_source {rb['bi_order_source']}")
        check(rb["bi_order"] == s["bi_ranking"], "the removal order is the redundancy ranking")
        sw = np.array(rb["swap_all"])
        check(sw.shape == (L, L) and np.array_equal(sw, sw.T) and np.all(np.diag(sw) == base), "swap_all symmetric")
        check(all(sw[i, i + 1] == rb["swap"][i]["nll"] for i in range(L - 1)), "swap_all first off-diagonal = swap")
        deltas = [d["nll"] - base for d in rb["delete"]]
        print("delete deltas:", " ".join(f"{d:+.3f}" for d in deltas))
        check(int(np.argmax(deltas)) == 0, "deleting layer 0 hurts most")
        check(len(rb["painters"]) == 4 and rb["painters"][0]["name"] == "skip middle", "painters")
        with h5py.File(os.path.join(out, "results.h5"), "r") as f:
            d = f["robustness/delete"]
            cols = [c.decode() if isinstance(c, bytes) else c for c in d.attrs["columns"]]
            check(cols == ["layer", "nll", "kl", "top1"] and d.shape == (L, 4), f"h5 delete {cols} {d.shape}")
            check(np.allclose(d[:, 1], [x["nll"] for x in rb["delete"]], rtol=1e-14, atol=0), "h5 delete = summary")
            check(f["robustness/swap_all_nll"].shape == (L, L), "h5 swap_all_nll")
            check(f["logit_lens/per_token/entropy"].shape[0] == P, "h5 per-token entropy")
            check(f["logit_lens/grid"].attrs["sequence"] == 1 and f["logit_lens/grid/top1"].shape == (P, 8), "h5 grid")
            check(f["robustness"].attrs["n_tokens"] == 600, "h5 robustness n_tokens")
        figs = os.path.join(out, "figures")
        for stem in ("logit_lens_grid", "logit_lens_curves", "robustness_delete_swap", "robustness_sublayers",
                     "robustness_removal", "robustness_swap_all", "robustness_painters", "cosine", "block_influence"):
            for ext in ("png", "pdf"):
                path = os.path.join(figs, f"{stem}.{ext}")
                check(os.path.exists(path) and os.path.getsize(path) > 1000, f"figure {stem}.{ext}")
            size = png_size(os.path.join(figs, f"{stem}.png"))
            check(size is not None and size[0] >= 600 and size[1] >= 300, f"{stem}.png size {size}")
        # report.pdf: a title page, then one section per analysis, every figure placed with its caption
        info = subprocess.run(["pdfinfo", os.path.join(out, "report.pdf")], capture_output=True, text=True)
        pages = int(re.search(r"Pages:\s+(\d+)", info.stdout).group(1)) if info.returncode == 0 else 0
        check(pages >= 5, f"report.pdf has {pages} pages: want a title page and 4 sections")
        txt = subprocess.run(["pdftotext", os.path.join(out, "report.pdf"), "-"], capture_output=True, text=True).stdout
        heads = ["Layer-level analysis report", "Layer similarity", "Redundancy", "Logit lens", "Robustness"]
        at = [txt.find(h) for h in heads]
        check(all(a >= 0 for a in at) and at == sorted(at), f"report.pdf sections in order: {list(zip(heads, at))}")
        check("Most redundant blocks" in txt and "Most and least damaging deletions" in txt, "report.pdf key tables")
        md = open(os.path.join(out, "report.md")).read()
        # the neighbouring-points table names whole points (its cells once cut "blocks.1.hook_resid_post" short)
        with h5py.File(os.path.join(out, "results.h5"), "r") as f:
            names = [x.decode() if isinstance(x, bytes) else str(x) for x in f["similarity"].attrs["points"]]
        tab = md.split("**Neighbouring points**", 1)[-1].split("\n\n", 2)[1].splitlines()[2:]
        pairs = [row.split("|")[1].strip().split(" \u2192 ") for row in tab]
        want = [[names[i], names[i + 1]] for i in range(len(pairs))]
        check(len(pairs) >= 3 and pairs == want, f"neighbouring points table names {pairs[:2]}, want {want[:2]}")
        n_figs = len([x for x in os.listdir(figs) if x.endswith(".png")])
        check(md.count("](figures/") == n_figs, f"report.md lists {md.count('](figures/')} of {n_figs} figures")
        leftovers = [x for x in os.listdir(out) + os.listdir(figs) if "partial" in x]
        check(not leftovers, f"temporary files left: {leftovers}")

        # 2. robustness on other text agrees with `lsa run` under the same plans
        text = os.path.join(tmp, "text.txt")
        with open(text, "w") as g:
            g.write("Once upon a time, there was a little girl named Lily. She loved to play outside.\n")
        out2 = os.path.join(tmp, "report2")
        r = run("report", cap, "--out", out2, "--quiet", "--no-figures", "--analyses", "robustness", "--text", text)
        check(r.returncode == 0, f"--text: exit {r.returncode}: {r.stderr.strip()}")
        with open(os.path.join(out2, "summary.json")) as f:
            rb2 = json.load(f)["robustness"]
        check("logit_lens" not in json.load(open(os.path.join(out2, "summary.json"))), "lens not run")
        for plan, got in ((["--skip", "0"], rb2["delete"][0]["nll"]), (["--skip", "5"], rb2["delete"][5]["nll"]),
                          (["--swap", "3:4"], rb2["swap"][3]["nll"]), ([], rb2["baseline_nll"])):
            r = run("run", MODEL, "--text", text, "--quiet", *plan)
            m = re.search(r"mean nll ([0-9.]+)", r.stdout + r.stderr)
            want = float(m.group(1)) if m else float("nan")
            print(f"lsa run {' '.join(plan) or '(intact)'}: mean nll {want:.4f}; robustness {got:.6f}")
            check(abs(got - want) < 6e-5, f"robustness {plan}: {got} vs lsa run {want}")
        out3 = os.path.join(tmp, "report3")
        r = run("report", cap, "--out", out3, "--quiet", "--no-figures", "--analyses", "robustness", "--lines", lines,
                "--robust-tokens", "300")
        with open(os.path.join(out3, "summary.json")) as f:
            rb3 = json.load(f)["robustness"]
        check(r.returncode == 0 and rb3["n_tokens"] == 300 and rb3["n_windows"] == 2,
              f"--lines: exit {r.returncode}, {rb3.get('n_tokens')} tokens in {rb3.get('n_windows')} windows")

        # 3. the model cannot be loaded: skipped with the reason, or an error when asked for
        moved = os.path.join(tmp, "moved.h5")
        shutil.copy(cap, moved)
        with h5py.File(moved, "r+") as f:
            f.attrs["model_path"] = os.path.join(tmp, "no-such-model")
        out4 = os.path.join(tmp, "report4")
        r = run("report", moved, "--out", out4, "--quiet", "--no-figures")
        print("model missing:", r.stderr.strip())
        check(r.returncode == 0 and "skipping lens, robustness" in r.stderr and "no-such-model" in r.stderr,
              f"missing model: exit {r.returncode}, stderr {r.stderr!r}")
        with open(os.path.join(out4, "summary.json")) as f:
            s4 = json.load(f)
        check("cosine" in s4 and "logit_lens" not in s4 and "robustness" not in s4, "skipped analyses leave no keys")
        r = run("report", moved, "--out", out4, "--quiet", "--no-figures", "--analyses", "lens")
        check(r.returncode == 1 and r.stderr.startswith("lsa: error: ") and len(r.stderr.strip().splitlines()) == 1,
              f"lens asked for without a model: exit {r.returncode}: {r.stderr!r}")
        r = run("report", moved, "--out", out4, "--quiet", "--no-figures", "--analyses", "lens", "--model", MODEL)
        check(r.returncode == 0, f"--model: exit {r.returncode}: {r.stderr.strip()}")

        # 4. a capture of selected points: redundancy does not apply and is skipped, the rest runs
        sub = os.path.join(tmp, "sub.h5")
        subprocess.run([LSA, "capture", "--quiet", "--model", MODEL, "--lines", lines, "--max-tokens", "600",
                        "--layers", "0,6,12", "--out", sub], check=True)
        out5 = os.path.join(tmp, "report5")
        r = run("report", sub, "--out", out5, "--no-figures", "--robust-tokens", "200")
        check(r.returncode == 0 and "skipping redundancy" in r.stderr, f"--layers capture: {r.returncode} {r.stderr!r}")
        with open(os.path.join(out5, "summary.json")) as f:
            s5 = json.load(f)
        check(len(s5["logit_lens"]["kl_to_final"]) == 3 and "block_influence" not in s5 and
              s5["robustness"]["bi_order_source"] == "these windows", "--layers capture: lens on 3 points, own BI order")

        # 5. usage and input errors
        for args, code, what in ((["--grid-positions", "5:3"], 2, "A:B"), (["--positions", "x"], 2, "all or last"),
                                 (["--seq", str(n_seqs)], 1, "sequences"), (["--grid-positions", "5000:5001"], 1, "tokens"),
                                 (["--analyses", "similarity", "--text", text], 2, "robustness"),
                                 (["--analyses", "bogus"], 2, "unknown analysis"), (["--robust-tokens", "1"], 2, "")):
            r = run("report", cap, "--out", os.path.join(tmp, "bad"), "--quiet", "--no-figures", *args)
            err = r.stderr.strip()
            ok = r.returncode == code and err.startswith("lsa: error: ") and what in err and len(err.splitlines()) == 1
            print(f"{' '.join(args)}: exit {r.returncode}: {err}")
            check(ok, f"{args}: want exit {code} mentioning '{what}', got {r.returncode}: {err!r}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    check.finish()


if __name__ == "__main__":
    main()
