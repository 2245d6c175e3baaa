#!/usr/bin/python3
"""Check models/demo/ against lsa: tokenizer ids and NLL, lsa vs this repo's PyTorch Llama.

    /usr/bin/python3 tools/check_demo.py [--model models/demo] [--lsa build/lsa]

Loads the saved folder back (safetensors read by hand into the PyTorch model of train_demo.py,
tokenizer from the saved tokenizer.json) and compares with `lsa run`:
  1. every 100th verse of the KJV, one `lsa run --prompt VERSE` each: ids must be identical and
     the per-token NLLs within 1e-3;
  2. `lsa run MODEL --text MODEL/corpus.txt --quiet`: mean NLL within 1e-3 of PyTorch's on the same
     tokens (ids compared too).
Exit status 0 when everything passes.
"""
import argparse
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_demo as td  # noqa: E402

TOL = 1e-3
VERSE_STRIDE = 100


def lsa_run(lsa, model_dir, *args):
    p = subprocess.run([lsa, "run", model_dir, *args], capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError("lsa run %s failed: %s" % (" ".join(args)[:60], p.stderr.strip()))
    return p.stdout


def parse_table(out):
    """ids and per-token NLLs from `lsa run` (fixed-width columns: %6zu %8d %10.4f ...)."""
    ids, nll, summary = [], [], None
    for line in out.splitlines():
        if line.startswith("tokens "):
            summary = line.strip()
            continue
        if not line[:6].strip().isdigit():
            continue
        ids.append(int(line[7:15]))
        v = line[16:26].strip()
        if v:
            nll.append(float(v))
    return ids, nll, summary


def run_checks(model_dir, lsa, verses=None, log=print):
    torch.set_num_threads(1)
    model = td.load_model(model_dir)
    tok = td.ByteBPE.from_tokenizer_json(os.path.join(model_dir, "tokenizer.json"))
    if verses is None:
        verses = td.load_kjv()
    try:
        sha = subprocess.run(["git", "-C", td.ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True).stdout.strip()
    except OSError:
        sha = ""
    res = {"lsa_version": "lsa built from the source tree at commit %s" % sha if sha else "lsa"}
    info = subprocess.run([lsa, "info", model_dir], capture_output=True, text=True, check=True).stdout
    res["info"] = info.replace(os.path.abspath(model_dir), "models/demo").rstrip()
    log(res["info"])

    # 1. verse by verse
    sample = [v[3] for v in verses[::VERSE_STRIDE]]
    n_eq, n_tok, max_abs, s_l, s_t, n_nll = 0, 0, 0.0, 0.0, 0.0, 0
    bad = []
    for text in sample:
        ids, nll, _ = parse_table(lsa_run(lsa, model_dir, "--prompt", text))
        mine = tok.encode(text)
        n_tok += len(mine)
        if ids != mine:
            bad.append(text)
            continue
        n_eq += 1
        ref = td.token_nll(model, mine) if len(mine) > 1 else []
        assert len(ref) == len(nll), (len(ref), len(nll))
        for a, b in zip(nll, ref):
            max_abs = max(max_abs, abs(a - b))
        s_l += sum(nll)
        s_t += sum(ref)
        n_nll += len(ref)
    res.update(n_verses=len(sample), verse_stride=VERSE_STRIDE, n_verses_ids_equal=n_eq, n_verse_tokens=n_tok,
               verse_max_abs=max_abs, verse_mean_lsa=s_l / max(1, n_nll), verse_mean_torch=s_t / max(1, n_nll))
    log("verses: ids equal %d/%d (%d tokens); per-token NLL max |lsa - torch| %.2e; mean %.4f vs %.4f" % (
        n_eq, len(sample), n_tok, max_abs, res["verse_mean_lsa"], res["verse_mean_torch"]))
    for text in bad[:5]:
        log("  ids differ: %r" % text[:100])

    # 2. the corpus file as one document
    path = os.path.join(model_dir, "corpus.txt")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    mine = tok.encode(text)
    ids, _, _ = parse_table(lsa_run(lsa, model_dir, "--text", path))
    _, _, summary = parse_table(lsa_run(lsa, model_dir, "--text", path, "--quiet"))
    lsa_mean = float(summary.split("mean nll")[1].split()[0])
    ref = td.token_nll(model, mine)
    torch_mean = sum(ref) / len(ref)
    res.update(corpus_tokens=len(mine), corpus_ids_equal=ids == mine, corpus_summary=summary,
               corpus_mean_lsa=lsa_mean, corpus_mean_torch=torch_mean, corpus_diff=abs(lsa_mean - torch_mean))
    log("corpus: ids equal %s (%d tokens); lsa: %s; torch mean nll %.6f; |diff| %.1e" % (
        ids == mine, len(mine), summary, torch_mean, res["corpus_diff"]))
    res["ok"] = bool(n_eq == len(sample) and max_abs <= TOL and ids == mine and res["corpus_diff"] <= TOL)
    log("lsa checks: %s" % ("PASS" if res["ok"] else "FAIL"))
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=td.OUT_DIR)
    ap.add_argument("--lsa", default=os.path.join(td.ROOT, "build", "lsa"))
    args = ap.parse_args()
    sys.exit(0 if run_checks(args.model, args.lsa)["ok"] else 1)


if __name__ == "__main__":
    main()
