#!/usr/bin/env python3
"""Seed corpora for the fuzz targets (tests/fuzz/run.sh), generated from ../shared into OUT/<target>/,
plus OUT/<target>.dict (libFuzzer dictionaries of the formats' keywords). Small files only: a large seed
makes every execution slow, so checkpoints are rebuilt with the fixtures' tensor names and tiny shapes.
Usage: seeds.py OUT"""
import hashlib
import json
import os
import struct
import sys

import h5py
import numpy as np

SHARED = os.environ.get("LSA_SHARED", "../shared")
OUT = sys.argv[1]
FIXTURES = ["tiny-gpt2", "tiny-llama", "tiny-qwen2", "tiny-mistral", "tiny-gemma", "tiny-gpt_neox", "tiny-phi3",
            "stories260K-hf"]
MODELS = ["tinystories-llama-12L", "tinystories-gpt2-12L", "tinystories-llama-24L"]


def put(target, data, name=None):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    name = name or hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def put_dict(target, words):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, target + ".dict"), "w") as f:
        for w in words:
            f.write('"%s"\n' % "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "\\x%02x" % ord(c) for c in w))


def st_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))


def st_file(tensors, meta=True):
    """tensors: list of (name, dtype, shape); data is a deterministic byte pattern."""
    size = {"F32": 4, "F16": 2, "BF16": 2, "I32": 4, "F64": 8, "I8": 1, "U8": 1}
    hdr, off = {}, 0
    if meta:
        hdr["__metadata__"] = {"format": "pt"}
    for name, dt, shape in tensors:
        nb = int(np.prod(shape, dtype=np.int64)) * size[dt]
        hdr[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + nb]}
        off += nb
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    data = bytes((i * 37 + 11) & 0x3F for i in range(off))  # small positive floats, no NaN
    return struct.pack("<Q", len(h)) + h + data


# ---------------------------------------------------------------- safetensors
for fx in FIXTURES + MODELS:
    base = os.path.join(SHARED, "fixtures" if fx in FIXTURES else "models", fx)
    hdr = st_header(os.path.join(base, "model.safetensors"))
    ts = [(k, v["dtype"], [min(d, 3) for d in v["shape"]]) for k, v in hdr.items() if k != "__metadata__"]
    put("safetensors", b"\0" + st_file(ts[:24]))
put("safetensors", b"\0" + st_file([("a", "F32", [2, 3]), ("b", "F16", [4]), ("c", "BF16", [1, 1, 2])], meta=False))
put("safetensors", b"\0" + st_file([("e", "F32", [0]), ("s", "I32", [])]))
idx = {"metadata": {"total_size": 38}, "weight_map": {"w.a": "a.safetensors", "w.a.h": "a.safetensors",
                                                       "w.b": "b.safetensors"}}
put("safetensors", b"\1" + json.dumps(idx).encode())
put("safetensors", b"\1" + json.dumps({"weight_map": {"w.b.h": "b.safetensors"}}).encode())
put_dict("safetensors", ["__metadata__", "dtype", "shape", "data_offsets", "F32", "F16", "BF16", "I64", "F8_E4M3",
                         "weight_map", "metadata", "a.safetensors", "b.safetensors", "../", "w.a", "w.b.h",
                         "1e308", "-1", "18446744073709551615", "9007199254740993", "[]", "{}", "\\u0000"])

# ---------------------------------------------------------------- config.json
keys = set()
for fx in FIXTURES + MODELS:
    base = os.path.join(SHARED, "fixtures" if fx in FIXTURES else "models", fx)
    with open(os.path.join(base, "config.json"), "rb") as f:
        raw = f.read()
    put("config", raw)
    cfg = json.loads(raw)
    keys.update(cfg.keys())
    if "rope_parameters" in cfg:  # the same config as transformers 4.x writes it
        rp = cfg.pop("rope_parameters")
        cfg["rope_theta"] = rp.get("rope_theta", 10000.0)
        if rp.get("rope_type", "default") != "default":
            cfg["rope_scaling"] = {"type": rp["rope_type"], "factor": rp.get("factor", 1.0)}
        put("config", json.dumps(cfg))
put_dict("config", sorted(keys) + ["rope_parameters", "rope_type", "linear", "yarn", "factor", "rope_scaling",
                                   "partial_rotary_factor", "rotary_pct", "head_dim", "gelu_new", "silu", "null",
                                   "true", "false", "1e999", "-0", "0.5", "2147483648"])

# ---------------------------------------------------------------- tokenizer.json
with open(os.path.join(SHARED, "fixtures/tiny-llama/tokenizer.json"), "rb") as f:
    sp = f.read()
put("tokenizer_json", sp)
spj = json.loads(sp)
meta = dict(spj)  # the same vocabulary with a Metaspace pre-tokenizer instead of the normalizer
meta["normalizer"] = None
meta["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}
meta["decoder"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}
put("tokenizer_json", json.dumps(meta))
with open(os.path.join(SHARED, "fixtures/tiny-gpt2/tokenizer.json"), encoding="utf-8") as f:
    gj = json.load(f)
vocab = {k: v for k, v in gj["model"]["vocab"].items() if v < 600}
merges = []
for m in gj["model"]["merges"]:
    a, b = m if isinstance(m, list) else m.split(" ")
    if a in vocab and b in vocab and a + b in vocab:
        merges.append(m)
gj["model"]["vocab"] = vocab
gj["model"]["merges"] = merges
gj["added_tokens"] = [dict(gj["added_tokens"][0], id=600)]
gj["post_processor"] = {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                        {"Sequence": {"id": "A", "type_id": 0}}], "pair": [],
                        "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [600],
                                                             "tokens": ["<|endoftext|>"]}}}
put("tokenizer_json", json.dumps(gj))
qw = dict(gj)
qw["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     "behavior": "Isolated", "invert": False},
    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}
put("tokenizer_json", json.dumps(qw))
put_dict("tokenizer_json", ["model", "type", "BPE", "WordPiece", "vocab", "merges", "unk_token", "byte_fallback",
                            "fuse_unk", "added_tokens", "special", "content", "normalized", "lstrip", "rstrip",
                            "single_word", "normalizer", "Sequence", "Prepend", "Replace", "pattern", "String",
                            "Regex", "pre_tokenizer", "ByteLevel", "Metaspace", "Split", "behavior", "Isolated",
                            "invert", "post_processor", "TemplateProcessing", "single", "pair", "SpecialToken",
                            "special_tokens", "ids", "decoder", "ByteFallback", "Fuse", "Strip", "start", "stop",
                            "continuing_subword_prefix", "end_of_word_suffix", "ignore_merges", "prepend_scheme",
                            "add_prefix_space", "use_regex", "\u2581", "<0x0A>", "(?", "\\p{L}", "null"])

# ---------------------------------------------------------------- text to encode
with open(os.path.join(SHARED, "data/tinystories-sampled-val.txt"), "rb") as f:
    for i, line in enumerate(f):
        if i >= 20:
            break
        put("tokenizer_encode", line.rstrip(b"\n")[:400])
for fx in ("tokenizer-gpt2.h5", "tokenizer-sp.h5"):
    with h5py.File(os.path.join(SHARED, "fixtures", fx), "r") as h:
        def visit(name, obj):
            t = obj.attrs.get("text")
            if t is not None:
                put("tokenizer_encode", (t if isinstance(t, bytes) else str(t).encode("utf-8", "surrogatepass"))[:400])
        h.visititems(visit)
put("tokenizer_encode", b"caf\xc3\xa9 \xff\xfe bad \xed\xa0\x80 surrogate \xc0\xaf overlong \x00 nul")
put("tokenizer_encode", struct.pack("<8i", 1, 2, 511, 512, -1, 50256, 70000, 2**31 - 1))

# ---------------------------------------------------------------- GGUF
def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def gkv(key, vtype, val):
    out = gstr(key) + struct.pack("<I", vtype)
    fmt = {0: "<B", 1: "<b", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 12: "<d"}
    if vtype == 8:
        return out + gstr(val)
    if vtype == 9:
        et, items = val
        out += struct.pack("<IQ", et, len(items))
        return out + b"".join(gstr(x) if et == 8 else struct.pack(fmt[et], x) for x in items)
    return out + struct.pack(fmt[vtype], val)


def f16(x):
    return np.asarray(x, dtype=np.float16).tobytes()


def q8_0(vals):
    out = b""
    for i in range(0, len(vals), 32):
        blk = np.asarray(vals[i:i + 32], dtype=np.float32)
        d = float(np.abs(blk).max()) / 127 or 1.0
        out += f16(d) + np.round(blk / d).astype(np.int8).tobytes()
    return out


def gguf(kvs, tensors, align=32):
    """tensors: (name, ne list, ggml type, raw bytes)."""
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs)
    infos, data = b"", b""
    for name, ne, typ, raw in tensors:
        data += b"\0" * (-len(data) % align)
        infos += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        infos += struct.pack("<IQ", typ, len(data))
        data += raw
    body = head + infos
    return body + b"\0" * (-len(body) % align) + data


def llama_tensors(d, ff, n_vocab, emb_q8):
    rng = np.random.default_rng(0)
    w = lambda n: (rng.standard_normal(n) * 0.1).astype(np.float32)
    ts = [("token_embd.weight", [d, n_vocab], 8, q8_0(w(d * n_vocab))) if emb_q8 else
          ("token_embd.weight", [d, n_vocab], 1, f16(w(d * n_vocab))),
          ("output_norm.weight", [d], 0, np.ones(d, np.float32).tobytes())]
    for nm, ne in [("attn_norm", [d]), ("ffn_norm", [d]), ("attn_q", [d, d]), ("attn_k", [d, d]), ("attn_v", [d, d]),
                   ("attn_output", [d, d]), ("ffn_gate", [d, ff]), ("ffn_up", [d, ff]), ("ffn_down", [ff, d])]:
        n = int(np.prod(ne))
        ts.append(("blk.0.%s.weight" % nm, ne, 0 if len(ne) == 1 else 1,
                   np.ones(n, np.float32).tobytes() if len(ne) == 1 else f16(w(n))))
    return ts


def llama_kvs(d, ff, extra):
    return [gkv("general.architecture", 8, "llama"), gkv("llama.block_count", 4, 1),
            gkv("llama.embedding_length", 4, d), gkv("llama.feed_forward_length", 4, ff),
            gkv("llama.attention.head_count", 4, 2), gkv("llama.attention.head_count_kv", 4, 2),
            gkv("llama.context_length", 4, 64), gkv("llama.attention.layer_norm_rms_epsilon", 6, 1e-5),
            gkv("llama.rope.freq_base", 6, 10000.0), gkv("general.alignment", 4, 32)] + extra


with open(os.path.join(SHARED, "models/stories260K/tok512.bin"), "rb") as f:
    raw = f.read()
pieces, scores, at = [], [], 4
while at < len(raw):
    sc, n = struct.unpack_from("<fi", raw, at)
    pieces.append(raw[at + 8:at + 8 + n])
    scores.append(sc)
    at += 8 + n
sp_v = 300
sp_pieces = [p.replace(b" ", "\u2581".encode()) for p in pieces[:sp_v]]
sp_pieces[1], sp_pieces[2] = b"<s>", b"</s>"
sp_types = [2, 3, 3] + [6 if p.startswith(b"<0x") else 1 for p in sp_pieces[3:]]
sp_tok = [gkv("tokenizer.ggml.model", 8, "llama"), gkv("tokenizer.ggml.tokens", 9, (8, sp_pieces)),
          gkv("tokenizer.ggml.scores", 9, (6, scores[:sp_v])), gkv("tokenizer.ggml.token_type", 9, (5, sp_types)),
          gkv("tokenizer.ggml.bos_token_id", 4, 1), gkv("tokenizer.ggml.eos_token_id", 4, 2),
          gkv("tokenizer.ggml.unknown_token_id", 4, 0), gkv("tokenizer.ggml.add_bos_token", 7, True)]
put("gguf", gguf(llama_kvs(32, 64, sp_tok), llama_tensors(32, 64, sp_v, True)))
bl_vocab = [k for k, v in sorted(gj["model"]["vocab"].items(), key=lambda kv: kv[1])][:288]
bl_merges = [m if isinstance(m, str) else " ".join(m) for m in merges
             if all(p in bl_vocab for p in ((m.split(" ") if isinstance(m, str) else m) + [""]) if p) and
             "".join(m.split(" ") if isinstance(m, str) else m) in bl_vocab][:40]
bl_tok = [gkv("tokenizer.ggml.model", 8, "gpt2"), gkv("tokenizer.ggml.pre", 8, "llama-bpe"),
          gkv("tokenizer.ggml.tokens", 9, (8, bl_vocab)), gkv("tokenizer.ggml.merges", 9, (8, bl_merges)),
          gkv("tokenizer.ggml.bos_token_id", 4, 0)]
put("gguf", gguf(llama_kvs(32, 64, bl_tok), llama_tensors(32, 64, 288, False)))
put("gguf", gguf([gkv("general.architecture", 8, "gpt2"), gkv("a", 9, (5, [1, -2, 3])), gkv("b", 12, 0.5),
                  gkv("c", 1, -3), gkv("d", 10, 2**40)], [("t", [32, 2], 8, q8_0(list(range(64))))]))
with open(os.path.join(SHARED, "models/stories260K/stories260K.gguf"), "rb") as f:
    put("gguf", f.read(60000))  # the real file's metadata (its tensors are cut off)
put_dict("gguf", ["GGUF", "general.architecture", "general.alignment", "llama", "gpt2", "qwen2", "gemma",
                  "tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.merges",
                  "tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.pre", "block_count",
                  "token_embd.weight", "output.weight", "blk.0.attn_q.weight", "rope.scaling.type",
                  "\x00\x00\x00\x00\x00\x00\x00\x80", "\xff\xff\xff\xff\xff\xff\xff\xff", "\x09\x00\x00\x00",
                  "\x08\x00\x00\x00", "\x0c\x00\x00\x00", "\x1e\x00\x00\x00"])

# ---------------------------------------------------------------- llama2.c
def l2c(dim, hidden, layers, heads, kv, vocab, seq, shared=True):
    hs = dim // heads
    kvd = dim * kv // heads
    n = vocab * dim + layers * (2 * dim + 2 * dim * dim + 2 * kvd * dim + 3 * hidden * dim) + dim + seq * hs
    n += 0 if shared else vocab * dim
    hdr = struct.pack("<7i", dim, hidden, layers, heads, kv, vocab if shared else -vocab, seq)
    return hdr + (np.arange(n, dtype=np.float32) % 7 * 0.01).astype(np.float32).tobytes()


put("llama2c", b"\0" + l2c(8, 16, 1, 2, 2, 512, 8))
put("llama2c", b"\0" + l2c(8, 16, 2, 2, 1, 64, 4, shared=False))
with open(os.path.join(SHARED, "models/stories260K/stories260K.bin"), "rb") as f:
    put("llama2c", b"\0" + f.read(4096))
tok258 = raw[:4]
at = 4
for i in range(258):
    sc, n = struct.unpack_from("<fi", raw, at)
    tok258 += raw[at:at + 8 + n]
    at += 8 + n
put("llama2c", b"\1\xff" + tok258)
put("llama2c", b"\1\x00" + raw[:4] + struct.pack("<fi", 0, 5) + b"<unk>" + struct.pack("<fi", 0, 5) + b"\n<s>\n" +
    struct.pack("<fi", 0, 6) + b"\n</s>\n")

# ---------------------------------------------------------------- capture recipes (see fuzz_capture_read.c)
def recipe(P, N, D, S, offsets):
    b = [P - 1, N, D - 1, S - 1] + [1] * 7  # shape bytes, then seven plausible root attributes
    def ds(n, type_idx, vals, contiguous):
        out = [2, type_idx, 1] + [v & 0xFF for v in vals[:n]] + [0] * max(0, n - len(vals))
        return out + ([1] if contiguous else [0, 1, 1])
    b += ds(P * N * D, 1, list(range(P * N * D)), False)  # resid f32
    b += ds(N, 2, list(range(N)), False)                   # tokens i32
    b += ds(S + 1, 3, [o + 2 for o in offsets], True)      # seq_offsets i64 (value = byte - 2)
    b += ds(N * D, 0, [3] * (N * D), False)               # resid_final f16
    b += [1] * 6 + [1, 1]                                  # point_index = 0..5; points and point_index: P entries
    return bytes(b)


put("capture_read", recipe(2, 4, 2, 2, [0, 1, 4]))
put("capture_read", recipe(3, 5, 1, 1, [0, 5]))
put("capture_read", recipe(1, 0, 2, 1, [0, 0]))
