#!/usr/bin/env python3
"""Write a random-weight Hugging Face checkpoint (config.json + model.safetensors, or shards + index) of
Llama or GPT-2 shape, so that benchmarks need no download. numpy only; tensors are generated and written
one at a time, so an 8B-parameter checkpoint needs no more memory than its largest tensor.

    bench/gen_model.py OUT_DIR [--preset llama3-8b|mistral-7b] [--arch llama|gpt2] [--d 1024] [--layers 8]
                       [--heads H] [--kv-heads K] [--ff F] [--vocab V] [--ctx C] [--dtype f32|f16|bf16]
                       [--shards N] [--untied] [--rope-theta T] [--tokenizer tokenizer.json]
Weights ~ U(±0.03) (f32/f16) or random bf16 of magnitude ~0.004-0.03; norms 1, biases 0.
"""
import argparse
import json
import os
import shutil

import numpy as np

PRESETS = {
    "llama3-8b": dict(arch="llama", d=4096, layers=32, heads=32, kv_heads=8, ff=14336, vocab=128256, ctx=8192,
                      untied=True, rope_theta=500000.0, dtype="bf16", shards=4),
    "mistral-7b": dict(arch="llama", d=4096, layers=32, heads=32, kv_heads=8, ff=14336, vocab=32000, ctx=32768,
                       untied=True, rope_theta=1000000.0, dtype="bf16", shards=3),
}


def specs(a):
    """(name, shape, kind) for every tensor; kind is 'w' (random), 'one' or 'zero'."""
    d, L, V = a.d, a.layers, a.vocab
    kv = a.kv_heads * (d // a.heads)
    t = []
    if a.arch == "llama":
        t.append(("model.embed_tokens.weight", (V, d), "w"))
        for i in range(L):
            p = f"model.layers.{i}."
            t += [(p + "input_layernorm.weight", (d,), "one"), (p + "post_attention_layernorm.weight", (d,), "one"),
                  (p + "self_attn.q_proj.weight", (d, d), "w"), (p + "self_attn.k_proj.weight", (kv, d), "w"),
                  (p + "self_attn.v_proj.weight", (kv, d), "w"), (p + "self_attn.o_proj.weight", (d, d), "w"),
                  (p + "mlp.gate_proj.weight", (a.ff, d), "w"), (p + "mlp.up_proj.weight", (a.ff, d), "w"),
                  (p + "mlp.down_proj.weight", (d, a.ff), "w")]
        t.append(("model.norm.weight", (d,), "one"))
        if a.untied:
            t.append(("lm_head.weight", (V, d), "w"))
    else:
        t += [("transformer.wte.weight", (V, d), "w"), ("transformer.wpe.weight", (a.ctx, d), "w")]
        for i in range(L):
            p = f"transformer.h.{i}."
            for n in ("ln_1", "ln_2"):
                t += [(p + n + ".weight", (d,), "one"), (p + n + ".bias", (d,), "zero")]
            t += [(p + "attn.c_attn.weight", (d, 3 * d), "w"), (p + "attn.c_attn.bias", (3 * d,), "w"),
                  (p + "attn.c_proj.weight", (d, d), "w"), (p + "attn.c_proj.bias", (d,), "w"),
                  (p + "mlp.c_fc.weight", (d, a.ff), "w"), (p + "mlp.c_fc.bias", (a.ff,), "w"),
                  (p + "mlp.c_proj.weight", (a.ff, d), "w"), (p + "mlp.c_proj.bias", (d,), "w")]
        t += [("transformer.ln_f.weight", (d,), "one"), ("transformer.ln_f.bias", (d,), "zero")]
    return t


SIZE = {"f32": 4, "f16": 2, "bf16": 2}
TAG = {"f32": "F32", "f16": "F16", "bf16": "BF16"}


def data(rng, shape, kind, dtype):
    n = int(np.prod(shape))
    if kind != "w":
        v = np.ones(n, np.float32) if kind == "one" else np.zeros(n, np.float32)
        if dtype == "bf16":
            return (v.view(np.uint32) >> 16).astype("<u2").tobytes()
        return v.astype("<f4" if dtype == "f32" else "<f2").tobytes()
    if dtype == "bf16":  # random sign, exponent 2^-8..2^-6, random mantissa: cheap for billions of values
        bits = rng.integers(0, 1 << 16, n, dtype=np.uint16)
        v = (bits & 0x807F) | (((bits >> 7) % 3 + 0x3B) << 7).astype(np.uint16)
        return v.astype("<u2").tobytes()
    v = rng.random(n, dtype=np.float32) * 0.06 - 0.03
    return v.astype("<f4" if dtype == "f32" else "<f2").tobytes()


def write_safetensors(path, items, dtype, rng):
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, _ in items:
        nb = int(np.prod(shape)) * SIZE[dtype]
        header[name] = {"dtype": TAG[dtype], "shape": list(shape), "data_offsets": [off, off + nb]}
        off += nb
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for name, shape, kind in items:
            f.write(data(rng, shape, kind, dtype))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--preset", choices=sorted(PRESETS))
    ap.add_argument("--arch", choices=["llama", "gpt2"], default="llama")
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=0)
    ap.add_argument("--kv-heads", type=int, default=0)
    ap.add_argument("--ff", type=int, default=0)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--untied", action="store_true")
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--tokenizer")
    a = ap.parse_args()
    if a.preset:
        for k, v in PRESETS[a.preset].items():
            setattr(a, k, v)
    a.heads = a.heads or max(1, a.d // 64)
    a.kv_heads = a.kv_heads or a.heads
    a.ff = a.ff or (4 * a.d if a.arch == "gpt2" else int(8 * a.d / 3 + 255) // 256 * 256)
    os.makedirs(a.out, exist_ok=True)
    dt = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}[a.dtype]
    if a.arch == "llama":
        cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": a.d,
               "num_hidden_layers": a.layers, "num_attention_heads": a.heads, "num_key_value_heads": a.kv_heads,
               "intermediate_size": a.ff, "vocab_size": a.vocab, "max_position_embeddings": a.ctx,
               "rms_norm_eps": 1e-5, "hidden_act": "silu", "tie_word_embeddings": not a.untied,
               "rope_parameters": {"rope_theta": a.rope_theta, "rope_type": "default"}, "dtype": dt,
               "bos_token_id": 1, "eos_token_id": 2}
    else:
        cfg = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": a.d, "n_layer": a.layers,
               "n_head": a.heads, "n_inner": a.ff, "vocab_size": a.vocab, "n_positions": a.ctx,
               "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "tie_word_embeddings": True,
               "dtype": dt}
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    rng = np.random.default_rng(0)
    items = specs(a)
    if a.shards == 1:
        write_safetensors(os.path.join(a.out, "model.safetensors"), items, a.dtype, rng)
    else:
        per = -(-len(items) // a.shards)
        wm = {}
        for s in range(a.shards):
            name = f"model-{s + 1:05d}-of-{a.shards:05d}.safetensors"
            part = items[s * per : (s + 1) * per]
            write_safetensors(os.path.join(a.out, name), part, a.dtype, rng)
            wm.update({n: name for n, _, _ in part})
        with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": wm}, f, indent=1)
    if a.tokenizer:
        shutil.copy(a.tokenizer, os.path.join(a.out, "tokenizer.json"))
    n = sum(int(np.prod(s)) for _, s, _ in items)
    print(f"{a.out}: {a.arch} d={a.d} L={a.layers} heads={a.heads}/{a.kv_heads} ff={a.ff} V={a.vocab} "
          f"{n / 1e6:.1f}M params {a.dtype}, {a.shards} shard(s)")


if __name__ == "__main__":
    main()
