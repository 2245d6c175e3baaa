#!/usr/bin/python3
"""Train lsa's demo model, models/demo/, from scratch on the King James Bible.

    apt-get install -y bible-kjv bible-kjv-text python3-torch python3-numpy python3-regex
    /usr/bin/python3 tools/train_demo.py            # about 20 minutes on one CPU thread

Everything in models/demo/ is regenerated: tokenizer.json + tokenizer_config.json (a byte-level BPE
trained here, GPT-2 style), config.json + generation_config.json + model.safetensors (an 8-layer
Llama in transformers' LlamaForCausalLM layout, float32), corpus.txt (held-out verses, one per line)
and MODEL.md. If an lsa binary is found (--lsa, default build/lsa), the checks of
tools/check_demo.py are run at the end and their result goes into MODEL.md.

Nothing here needs transformers, tokenizers or safetensors: the formats are written by hand.
Seeds are fixed; with the same torch build and one thread the run is bit-for-bit repeatable.
"""
import argparse
import heapq
import json
import math
import os
import re
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

try:
    import regex
except ImportError:  # pragma: no cover - python3-regex is a listed dependency
    regex = None

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "models", "demo")
EOT = "<|endoftext|>"

# ----------------------------------------------------------------------------------------------
# Hyperparameters (all of them; MODEL.md is generated from these)
# ----------------------------------------------------------------------------------------------
ARCH = dict(
    vocab_size=2048,  # 256 bytes + 1791 merges + <|endoftext|>
    hidden_size=128,
    num_hidden_layers=8,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=32,
    intermediate_size=384,
    max_position_embeddings=256,
    rms_norm_eps=1e-5,
    rope_theta=10000.0,
    tie_word_embeddings=True,
    initializer_range=0.02,
)
TRAIN = dict(
    seed=1611,
    seq_len=256,
    batch_size=12,
    steps=1200,
    warmup_steps=60,
    lr=3e-3,
    min_lr_ratio=0.1,
    weight_decay=0.1,
    betas=(0.9, 0.95),
    grad_clip=1.0,
    eval_every=100,
    val_chapter_every=40,  # every 40th chapter (index 19, 59, ...) is held out
    val_chapter_offset=19,
    corpus_verses_per_chapter=7,
)

# ----------------------------------------------------------------------------------------------
# Data: the KJV text of bible-kjv-text, read with the `bible` program of bible-kjv
# ----------------------------------------------------------------------------------------------
REF = re.compile(r"^(\S+?)(\d+):(\d+) (.*)$")


def load_kjv():
    """[(book, chapter, verse, text)] for all 31102 verses, in canonical order."""
    try:
        out = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], check=True, capture_output=True,
                             cwd="/", env=dict(os.environ, COLUMNS="100000")).stdout
    except FileNotFoundError:
        sys.exit("train_demo: the `bible` program is missing: apt-get install bible-kjv bible-kjv-text")
    verses = []
    for line in out.decode("ascii").splitlines():
        m = REF.match(line)
        if not m:
            sys.exit("train_demo: unexpected line from bible: %r" % line[:80])
        verses.append((m.group(1), int(m.group(2)), int(m.group(3)), m.group(4).strip()))
    if len(verses) != 31102:
        sys.exit("train_demo: expected 31102 verses from bible, got %d" % len(verses))
    return verses


def split_verses(verses):
    """Hold out whole chapters: every TRAIN['val_chapter_every']-th one. Returns (train, val) lists
    of verse texts and the held-out chapters as [(book, chapter, [texts])]."""
    train, val, chapters = [], [], []
    key_prev, ci = None, -1
    for book, ch, _, text in verses:
        if (book, ch) != key_prev:
            key_prev, ci = (book, ch), ci + 1
            held = ci % TRAIN["val_chapter_every"] == TRAIN["val_chapter_offset"]
            if held:
                chapters.append((book, ch, []))
        if held:
            val.append(text)
            chapters[-1][2].append(text)
        else:
            train.append(text)
    return train, val, chapters


# ----------------------------------------------------------------------------------------------
# Byte-level BPE (GPT-2 / HF tokenizers ByteLevel with use_regex, add_prefix_space false)
# ----------------------------------------------------------------------------------------------
GPT2_PAT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
ASCII_PAT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+"""


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return bs, {b: chr(c) for b, c in zip(bs, cs)}


class ByteBPE:
    """Encoder for a byte-level BPE given as vocab {piece: id} and merges [(a, b)] in rank order."""

    def __init__(self, vocab, merges, specials=()):
        self.vocab = vocab
        self.ranks = {tuple(m): i for i, m in enumerate(merges)}
        self.specials = dict(specials)  # content -> id, split out before pre-tokenization
        self.byte_enc = bytes_to_unicode()[1]
        self.pat = regex.compile(GPT2_PAT) if regex else None
        self.cache = {}

    def pretokenize(self, text):
        if self.pat is not None:
            return self.pat.findall(text)
        if not text.isascii():
            sys.exit("train_demo: non-ASCII text needs python3-regex")
        return re.findall(ASCII_PAT, text)

    def bpe(self, word):
        syms = list(word)
        while len(syms) > 1:
            best = min((self.ranks.get((syms[i], syms[i + 1]), math.inf), i) for i in range(len(syms) - 1))
            if best[0] == math.inf:
                break
            a, b = syms[best[1]], syms[best[1] + 1]
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            syms = out
        return syms

    def encode_plain(self, text):
        ids = []
        for w in self.pretokenize(text):
            got = self.cache.get(w)
            if got is None:
                u = "".join(self.byte_enc[b] for b in w.encode("utf-8"))
                got = self.cache[w] = [self.vocab[p] for p in self.bpe(u)]
            ids.extend(got)
        return ids

    def encode(self, text):
        if not self.specials:
            return self.encode_plain(text)
        pat = "(" + "|".join(re.escape(s) for s in sorted(self.specials, key=len, reverse=True)) + ")"
        ids = []
        for i, part in enumerate(re.split(pat, text)):
            if i % 2:
                ids.append(self.specials[part])
            elif part:
                ids.extend(self.encode_plain(part))
        return ids

    @staticmethod
    def from_tokenizer_json(path):
        t = json.load(open(path, encoding="utf-8"))
        m = t["model"]
        merges = [tuple(x) if isinstance(x, list) else tuple(x.split(" ")) for x in m["merges"]]
        return ByteBPE(m["vocab"], merges, {a["content"]: a["id"] for a in t["added_tokens"]})


def train_bpe(lines, n_merges_max, vocab_target):
    """Learn merges by pair frequency over pre-tokenized words (ties: smallest pair first)."""
    bs, enc = bytes_to_unicode()
    pre = ByteBPE({}, [])
    word_count = {}
    for line in lines:
        for w in pre.pretokenize(line):
            word_count[w] = word_count.get(w, 0) + 1
    words, counts = [], []
    for w in sorted(word_count):
        words.append([enc[b] for b in w.encode("utf-8")])
        counts.append(word_count[w])
    pair_count, where = {}, {}
    for wi, w in enumerate(words):
        for p in zip(w, w[1:]):
            pair_count[p] = pair_count.get(p, 0) + counts[wi]
            where.setdefault(p, set()).add(wi)
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)
    vocab = {enc[b]: i for i, b in enumerate(bs)}
    merges = []
    while len(vocab) < vocab_target and len(merges) < n_merges_max and heap:
        negc, p = heapq.heappop(heap)
        if pair_count.get(p, 0) != -negc or -negc <= 0:
            continue  # stale heap entry
        if -negc < 2:
            break
        a, b = p
        merges.append(p)
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
        changed = {}
        for wi in where.pop(p, ()):
            w = words[wi]
            if len(w) < 2:
                continue
            c = counts[wi]
            out, i, hit = [], 0, False
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                    hit = True
                else:
                    out.append(w[i])
                    i += 1
            if not hit:
                continue
            for q in zip(w, w[1:]):
                pair_count[q] -= c
                changed[q] = True
            for q in zip(out, out[1:]):
                pair_count[q] = pair_count.get(q, 0) + c
                where.setdefault(q, set()).add(wi)
                changed[q] = True
            words[wi] = out
        pair_count.pop(p, None)
        for q in changed:
            c = pair_count.get(q, 0)
            if c > 0 and q != p:
                heapq.heappush(heap, (-c, q))
    return vocab, merges


def tokenizer_json(vocab, merges, eot_id):
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": eot_id, "content": EOT, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}],
        "normalizer": None,
        "pre_tokenizer": bl,
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": dict(vocab, **{EOT: eot_id}),
                  "merges": [list(m) for m in merges]},
    }


# ----------------------------------------------------------------------------------------------
# Model: transformers' LlamaForCausalLM (eager attention), same parameter names and numerics
# ----------------------------------------------------------------------------------------------
class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, nh, nkv, hd = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        self.nh, self.nkv, self.hd = nh, nkv, hd
        self.q_proj = nn.Linear(h, nh * hd, bias=False)
        self.k_proj = nn.Linear(h, nkv * hd, bias=False)
        self.v_proj = nn.Linear(h, nkv * hd, bias=False)
        self.o_proj = nn.Linear(nh * hd, h, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.nkv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.nh // self.nkv
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        w = torch.matmul(q, k.transpose(2, 3)) * self.hd ** -0.5 + mask
        w = torch.softmax(w, dim=-1, dtype=torch.float32)
        o = torch.matmul(w, v).transpose(1, 2).reshape(B, T, self.nh * self.hd)
        return self.o_proj(o)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, i = c["hidden_size"], c["intermediate_size"]
        self.gate_proj = nn.Linear(h, i, bias=False)
        self.up_proj = nn.Linear(h, i, bias=False)
        self.down_proj = nn.Linear(i, h, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.mlp = MLP(c)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(DecoderLayer(c) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])


class LlamaForCausalLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.model = LlamaModel(c)
        if not c["tie_word_embeddings"]:
            self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        self._rope_cache = {}

    def head_weight(self):
        return self.model.embed_tokens.weight if self.c["tie_word_embeddings"] else self.lm_head.weight

    def rope(self, T):
        if T not in self._rope_cache:
            hd = self.c["head_dim"]
            inv = 1.0 / (self.c["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
            freqs = torch.outer(torch.arange(T, dtype=torch.int64).float(), inv)
            emb = torch.cat((freqs, freqs), dim=-1)
            mask = torch.full((T, T), torch.finfo(torch.float32).min).triu(1)
            self._rope_cache = {T: (emb.cos(), emb.sin(), mask)}
        return self._rope_cache[T]

    def forward(self, ids):
        cos, sin, mask = self.rope(ids.shape[1])
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            x = layer(x, cos, sin, mask)
        return F.linear(self.model.norm(x), self.head_weight())

    def init_weights(self):
        std = self.c["initializer_range"]
        for name, p in self.named_parameters():
            if name.endswith("layernorm.weight") or name == "model.norm.weight":
                nn.init.ones_(p)
            elif name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(p, 0.0, std / math.sqrt(2 * self.c["num_hidden_layers"]))
            else:
                nn.init.normal_(p, 0.0, std)


def token_nll(model, ids):
    """Per-token NLL of ids[1:] given the prefix, as lsa run reports it (float64 list)."""
    with torch.no_grad():
        x = torch.tensor(ids, dtype=torch.int64)[None]
        logits = model(x[:, :-1])[0]
        return F.cross_entropy(logits, x[0, 1:], reduction="none").double().tolist()


# ----------------------------------------------------------------------------------------------
# Hugging Face files
# ----------------------------------------------------------------------------------------------
def hf_config(c, eot_id):
    return {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": eot_id,
        "dtype": "float32",
        "eos_token_id": eot_id,
        "head_dim": c["head_dim"],
        "hidden_act": "silu",
        "hidden_size": c["hidden_size"],
        "initializer_range": c["initializer_range"],
        "intermediate_size": c["intermediate_size"],
        "max_position_embeddings": c["max_position_embeddings"],
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": c["num_attention_heads"],
        "num_hidden_layers": c["num_hidden_layers"],
        "num_key_value_heads": c["num_key_value_heads"],
        "pad_token_id": None,
        "pretraining_tp": 1,
        "rms_norm_eps": c["rms_norm_eps"],
        "rope_parameters": {"rope_theta": c["rope_theta"], "rope_type": "default"},
        "tie_word_embeddings": c["tie_word_embeddings"],
        "transformers_version": "5.17.0",
        "use_cache": True,
        "vocab_size": c["vocab_size"],
    }


def arch_from_hf_config(h):
    rope = h.get("rope_parameters") or {}
    return dict(
        vocab_size=h["vocab_size"], hidden_size=h["hidden_size"], num_hidden_layers=h["num_hidden_layers"],
        num_attention_heads=h["num_attention_heads"], num_key_value_heads=h["num_key_value_heads"],
        head_dim=h.get("head_dim", h["hidden_size"] // h["num_attention_heads"]),
        intermediate_size=h["intermediate_size"], max_position_embeddings=h["max_position_embeddings"],
        rms_norm_eps=h["rms_norm_eps"], rope_theta=rope.get("rope_theta", h.get("rope_theta", 10000.0)),
        tie_word_embeddings=h.get("tie_word_embeddings", False), initializer_range=h.get("initializer_range", 0.02))


def save_safetensors(path, tensors):
    """tensors: {name: float32 numpy array}. Little-endian F32, names sorted, header padded to 8."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def load_safetensors(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise ValueError("%s: dtype %s, expected F32" % (name, info["dtype"]))
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(data[b:e], dtype="<f4").reshape(info["shape"]).copy()
    return out


def load_model(model_dir):
    arch = arch_from_hf_config(json.load(open(os.path.join(model_dir, "config.json"))))
    model = LlamaForCausalLM(arch)
    sd = {k: torch.from_numpy(v) for k, v in load_safetensors(os.path.join(model_dir, "model.safetensors")).items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ValueError("checkpoint mismatch: missing %s, unexpected %s" % (missing, unexpected))
    return model.eval()


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------
def lr_at(step):
    t = TRAIN
    if step < t["warmup_steps"]:
        return t["lr"] * (step + 1) / t["warmup_steps"]
    p = (step - t["warmup_steps"]) / max(1, t["steps"] - t["warmup_steps"])
    return t["lr"] * (t["min_lr_ratio"] + (1 - t["min_lr_ratio"]) * 0.5 * (1 + math.cos(math.pi * p)))


def eval_windows(model, windows, batch=16):
    tot, n = 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(windows), batch):
            x = torch.tensor(np.stack(windows[i:i + batch]), dtype=torch.int64)
            logits = model(x[:, :-1])
            tot += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                   reduction="sum").item()
            n += x[:, 1:].numel()
    model.train()
    return tot / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=OUT_DIR, help="output folder (default models/demo)")
    ap.add_argument("--lsa", default=os.path.join(ROOT, "build", "lsa"), help="lsa binary for the checks")
    ap.add_argument("--steps", type=int, default=TRAIN["steps"], help="training steps (default %(default)s)")
    args = ap.parse_args()
    TRAIN["steps"] = args.steps
    torch.set_num_threads(1)
    torch.manual_seed(TRAIN["seed"])
    rng = np.random.default_rng(TRAIN["seed"])
    os.makedirs(args.out, exist_ok=True)
    t_start = time.time()

    verses = load_kjv()
    train_v, val_v, val_chapters = split_verses(verses)
    print("verses: %d train, %d held out (%d chapters)" % (len(train_v), len(val_v), len(val_chapters)), flush=True)

    # Tokenizer, trained on the training verses only (one verse per line, '\n'-terminated).
    t0 = time.time()
    train_lines = [v + "\n" for v in train_v]
    vocab, merges = train_bpe(train_lines, 10 ** 6, ARCH["vocab_size"] - 1)
    eot_id = len(vocab)
    assert eot_id == ARCH["vocab_size"] - 1, (eot_id, ARCH["vocab_size"])
    write_json(os.path.join(args.out, "tokenizer.json"), tokenizer_json(vocab, merges, eot_id))
    write_json(os.path.join(args.out, "tokenizer_config.json"), {
        "backend": "tokenizers", "bos_token": EOT, "eos_token": EOT,
        "model_max_length": ARCH["max_position_embeddings"], "tokenizer_class": "TokenizersBackend",
        "unk_token": EOT})
    tok = ByteBPE.from_tokenizer_json(os.path.join(args.out, "tokenizer.json"))
    print("tokenizer: %d merges, %d ids, %.1fs" % (len(merges), eot_id + 1, time.time() - t0), flush=True)

    # Token streams. Verse by verse encoding equals encoding the joined text (checked).
    train_ids, starts = [], []
    for line in train_lines:
        starts.append(len(train_ids))
        train_ids.extend(tok.encode(line))
    assert tok.encode("".join(train_lines[:2000])) == train_ids[:starts[2000]]
    val_ids = tok.encode("".join(v + "\n" for v in val_v))
    train_arr = np.array(train_ids, dtype=np.int64)
    T = TRAIN["seq_len"]
    starts = np.array([s for s in starts if s + T + 1 <= len(train_ids)])
    val_windows = [np.array(val_ids[i:i + T + 1]) for i in range(0, len(val_ids) - T, T)]
    train_eval_windows = [train_arr[s:s + T + 1] for s in rng.choice(starts, len(val_windows), replace=False)]
    print("tokens: %d train (%.2f bytes/token), %d held out; %d held-out windows of %d" % (
        len(train_ids), sum(len(x) for x in train_lines) / len(train_ids), len(val_ids), len(val_windows), T),
        flush=True)

    # Corpus for the README's main job: the first verses of each held-out chapter.
    corpus = []
    for _, _, texts in val_chapters:
        corpus.extend(texts[:TRAIN["corpus_verses_per_chapter"]])
    with open(os.path.join(args.out, "corpus.txt"), "w", encoding="utf-8") as f:
        f.write("".join(v + "\n" for v in corpus))

    # Model and optimiser.
    model = LlamaForCausalLM(ARCH)
    model.init_weights()
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": TRAIN["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}], lr=TRAIN["lr"], betas=TRAIN["betas"])
    print("model: %d parameters; %d steps of %dx%d tokens" % (n_params, TRAIN["steps"], TRAIN["batch_size"], T),
          flush=True)

    log = []
    v0 = eval_windows(model, val_windows)
    log.append({"step": 0, "train": None, "val": v0, "time_s": 0.0})
    print("step %4d  val %.4f" % (0, v0), flush=True)
    t_train = time.time()
    run_loss = []
    model.train()
    for step in range(TRAIN["steps"]):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        idx = rng.choice(starts, TRAIN["batch_size"])
        x = torch.from_numpy(np.stack([train_arr[s:s + T + 1] for s in idx]))
        logits = model(x[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), TRAIN["grad_clip"])
        opt.step()
        run_loss.append(loss.item())
        done = step + 1
        if done % TRAIN["eval_every"] == 0 or done == TRAIN["steps"]:
            tr = float(np.mean(run_loss))
            run_loss = []
            va = eval_windows(model, val_windows)
            el = time.time() - t_train
            log.append({"step": done, "train": tr, "val": va, "time_s": round(el, 1)})
            print("step %4d  train %.4f  val %.4f  lr %.2e  %.0fs (%.0f tok/s)" % (
                done, tr, va, lr_at(step), el, done * TRAIN["batch_size"] * T / el), flush=True)
    train_time = time.time() - t_train
    model.eval()
    final_train = eval_windows(model, train_eval_windows)
    final_val = eval_windows(model, val_windows)
    print("final: train %.4f  val %.4f  (%.0fs training)" % (final_train, final_val, train_time), flush=True)

    # Export.
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    save_safetensors(os.path.join(args.out, "model.safetensors"), sd)
    write_json(os.path.join(args.out, "config.json"), hf_config(ARCH, eot_id))
    write_json(os.path.join(args.out, "generation_config.json"), {
        "_from_model_config": True, "bos_token_id": eot_id, "eos_token_id": eot_id,
        "output_attentions": False, "output_hidden_states": False, "transformers_version": "5.17.0",
        "use_cache": True})
    results = dict(n_params=n_params, n_merges=len(merges), train_tokens=len(train_ids), val_tokens=len(val_ids),
                   n_train_verses=len(train_v), n_val_verses=len(val_v), n_val_chapters=len(val_chapters),
                   val_chapters=["%s %d" % (b, c) for b, c, _ in val_chapters], n_corpus=len(corpus),
                   bytes_per_token=sum(len(x) for x in train_lines) / len(train_ids), log=log,
                   final_train=final_train, final_val=final_val, train_time_s=train_time,
                   torch_version=torch.__version__)

    # Checks against lsa (tools/check_demo.py), when a binary is there.
    check = None
    if os.path.exists(args.lsa):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import check_demo
        check = check_demo.run_checks(args.out, args.lsa, verses)
    else:
        print("no lsa binary at %s: skipping the lsa checks (run tools/check_demo.py later)" % args.lsa)
    results["total_time_s"] = time.time() - t_start
    write_model_md(args.out, results, check)
    print("wrote %s (%.0fs in all)" % (args.out, results["total_time_s"]))
    if check and not check["ok"]:
        sys.exit("train_demo: the lsa checks FAILED (see MODEL.md)")


def write_model_md(out, r, check):
    a, t = ARCH, TRAIN
    sizes = {f: os.path.getsize(os.path.join(out, f)) for f in sorted(os.listdir(out)) if f != "MODEL.md"}
    rows = "\n".join("| %d | %s | %.4f | %.0f |" % (e["step"], "-" if e["train"] is None else "%.4f" % e["train"],
                                                     e["val"], e["time_s"]) for e in r["log"])
    ntok = t['steps'] * t['batch_size'] * t['seq_len']
    speeds = [(e['step'] - p['step']) * t['batch_size'] * t['seq_len'] / max(1e-9, e['time_s'] - p['time_s'])
              for p, e in zip(r['log'], r['log'][1:])]
    if check:
        chk = check_demo_md(check)
    else:
        chk = "Not run when this file was written (no lsa binary); run `tools/check_demo.py`."
    md = f"""# lsa demo model: an 8-layer Llama trained on the King James Bible

A small model that ships with lsa so that its commands work with nothing else installed. It is
**trained, not random** (held-out loss {r['final_val']:.2f} nats/token against {r['log'][0]['val']:.2f} at
initialisation), so the layer analyses have real structure to find, but it is a toy: it writes
plausible King James English and knows nothing else.

Everything in this folder is written by `tools/train_demo.py` (this file included).

## Data

- Source: the Authorized (King James) Version, 1611, as packaged by Debian in `bible-kjv-text`
  (`/usr/lib/bible.data`) and read with the `bible` program of `bible-kjv`
  (`bible -f Gen1:1-Rev22:21`: one verse per line, the reference stripped). 31102 verses, ASCII.
- Licence: the KJV text is in the public domain (Debian's copyright file: "The copyright for the
  King James Version text of the Bible is expired"). The packages' code is GPL-2+; none of it is
  in this folder. The model, tokenizer and corpus here are derived from the public-domain text only.
- Split: whole chapters are held out, every {t['val_chapter_every']}th chapter in canonical order
  ({r['n_val_chapters']} chapters, {r['n_val_verses']} verses, {r['val_tokens']} tokens; book names as `bible` abbreviates them):
  {', '.join(r['val_chapters'])}. The other {r['n_train_verses']} verses ({r['train_tokens']} tokens)
  are the training set. (The KJV repeats itself a lot, e.g. Kings/Chronicles, so held-out loss is
  somewhat optimistic as a measure of generalisation.)
- Text format: one verse per line, each line ending in `\\n`; training windows start at verse starts.
- `corpus.txt`: the first {t['corpus_verses_per_chapter']} verses of each held-out chapter, one per
  line ({r['n_corpus']} lines, {sizes.get('corpus.txt', 0)} bytes): text the model never saw.

## Tokenizer

Byte-level BPE exactly in GPT-2's form (GPT-2 pre-tokenizer regex, `bytes_to_unicode` byte alphabet,
merges learned by pair frequency over the pre-tokenized training words, ties broken by the smallest
pair), trained by the script on the training verses: 256 byte tokens + {r['n_merges']} merges +
`<|endoftext|>` (id {a['vocab_size'] - 1}, special) = {a['vocab_size']} ids, {r['bytes_per_token']:.2f}
bytes per token on the training text. Saved as a standard `tokenizer.json` (model BPE, pre-tokenizer
ByteLevel with `add_prefix_space` false and `use_regex` true, ByteLevel post-processor and decoder)
plus `tokenizer_config.json`. Like GPT-2 it adds no BOS; `<|endoftext|>` is never seen in training.

## Architecture

`LlamaForCausalLM` (model_type `llama`), float32, {r['n_params']:,} parameters, tied input/output
embeddings (`tie_word_embeddings: true`, so there is no `lm_head.weight` tensor):

| | |
|---|---|
| layers | {a['num_hidden_layers']} |
| hidden size | {a['hidden_size']} |
| attention | {a['num_attention_heads']} query heads, {a['num_key_value_heads']} key/value heads (GQA), head_dim {a['head_dim']}, no biases |
| MLP | SwiGLU (SiLU), intermediate {a['intermediate_size']} |
| norm | RMSNorm, eps {a['rms_norm_eps']:g} (pre-norm, plus final norm) |
| positions | RoPE, half-split (`rotate_half`), theta {a['rope_theta']:g}; trained context {t['seq_len']} (`max_position_embeddings` {a['max_position_embeddings']}) |
| vocabulary | {a['vocab_size']} |

Files: {', '.join('`%s` %s' % (f, '{:,}'.format(s)) for f, s in sizes.items())} bytes
({sum(sizes.values()) / 1e6:.2f} MB in all).

## Training

PyTorch {r['torch_version']} (Debian `python3-torch`), CPU, one thread, seed {t['seed']}. {t['steps']} steps
of AdamW (betas {t['betas'][0]}, {t['betas'][1]}; weight decay {t['weight_decay']} on matrices), batch
{t['batch_size']} sequences x {t['seq_len']} tokens ({t['batch_size'] * t['seq_len']} tokens/step, {ntok / 1e6:.2f}M tokens,
about {ntok / r['train_tokens']:.1f} passes over the training set), learning rate {t['lr']:g} with
{t['warmup_steps']} warmup steps then cosine decay to {t['min_lr_ratio']:g}x, gradient clipping {t['grad_clip']}.
Initialisation normal(0, {a['initializer_range']}), output projections (o_proj, down_proj) scaled by
1/sqrt(2 x layers). Each sequence is {t['seq_len']} + 1 consecutive tokens starting at a random
training verse.

Losses in nats/token (train: mean training-batch loss since the previous row; val: all held-out
tokens in {t['seq_len']}-token windows):

| step | train | val | seconds |
|---|---|---|---|
{rows}

Final (model in eval mode, same {t['seq_len']}-token windows): **train {r['final_train']:.4f}** (as many
random training windows as there are held-out ones), **val {r['final_val']:.4f}** (perplexity
{math.exp(r['final_val']):.1f}). Training took {r['train_time_s'] / 60:.1f} minutes wall
({r['total_time_s'] / 60:.1f} for the whole script, tokenizer and lsa checks included), at
{min(speeds):.0f} to {max(speeds):.0f} tokens/s between evaluations (the speed depends on what else
the machine is running).

## Checks against lsa

{chk}

## Reproduce

```sh
apt-get install -y bible-kjv bible-kjv-text python3-torch python3-numpy python3-regex
cmake -S . -B build && cmake --build build -j     # only for the lsa checks
/usr/bin/python3 tools/train_demo.py              # rewrites everything in models/demo/
/usr/bin/python3 tools/check_demo.py              # the lsa checks alone, on the saved files
```

Seeds are fixed and the script uses one torch thread, so a rerun with the same torch build gives
the same weights; a different torch version or CPU may differ in the last bits and so in the
numbers above.
"""
    with open(os.path.join(out, "MODEL.md"), "w", encoding="utf-8") as f:
        f.write(md)


def check_demo_md(c):
    return f"""`tools/check_demo.py` loads the saved folder back (its own safetensors reader into the PyTorch
model above, and its own encoder from the saved `tokenizer.json`) and compares with lsa
({c['lsa_version']}):

- `lsa info models/demo`:
  ```
{chr(10).join('  ' + l for l in c['info'].splitlines())}
  ```
- Tokenizer: {c['n_verses']} verses (every {c['verse_stride']}th verse of the whole Bible, train and
  held-out) run through `lsa run models/demo --prompt VERSE`: token ids identical to the Python
  tokenizer's for {c['n_verses_ids_equal']} of {c['n_verses']} verses ({c['n_verse_tokens']} tokens).
- Per-token NLL on those verses, lsa vs PyTorch: max |difference| {c['verse_max_abs']:.2e}
  (lsa prints 4 decimals), mean NLL {c['verse_mean_lsa']:.4f} (lsa) vs {c['verse_mean_torch']:.4f} (PyTorch).
- Whole corpus, `lsa run models/demo --text models/demo/corpus.txt --quiet` (the file as one
  document, {c['corpus_tokens']} tokens, ids identical: {c['corpus_ids_equal']}):
  `{c['corpus_summary']}`; PyTorch on the same tokens: mean NLL {c['corpus_mean_torch']:.6f};
  difference {c['corpus_diff']:.1e}. (As one document the file is far longer than the
  trained context of 256 tokens, so this NLL is higher than the held-out loss above; it is a
  numerics check. The verse sample is mostly training text, so its NLL is lower.)
- Result: **{'PASS' if c['ok'] else 'FAIL'}** (criteria: all ids equal, |difference| <= 1e-3)."""


if __name__ == "__main__":
    main()
