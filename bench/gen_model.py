#!/usr/bin/env python3
"""Write a random-weight Hugging Face checkpoint (config.json + model.safetensors, optionally sharded)
of Llama or GPT-2 shape, so that benchmarks need no download. numpy only.

    bench/gen_model.py OUT_DIR --arch llama|gpt2 --d 1024 --layers 8 [--heads 16] [--kv-heads 4]
                       [--ff 2816] [--vocab 4096] [--ctx 2048] [--dtype f32|f16|bf16] [--shards 1]
                       [--untied] [--rope-theta 10000]
Weights ~ N(0, 0.02); norms 1. Copies a tokenizer.json if --tokenizer is given.
"""
import argparse
import json
import os
import shutil

import numpy as np


def tensors(a):
    rng = np.random.default_rng(0)
    d, L, V = a.d, a.layers, a.vocab
    hd = d // a.heads
    kv = a.kv_heads * hd

    def w(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)

    t = {}
    if a.arch == "llama":
        t["model.embed_tokens.weight"] = w(V, d)
        for i in range(L):
            p = f"model.layers.{i}."
            t[p + "input_layernorm.weight"] = np.ones(d, np.float32)
            t[p + "post_attention_layernorm.weight"] = np.ones(d, np.float32)
            t[p + "self_attn.q_proj.weight"] = w(d, d)
            t[p + "self_attn.k_proj.weight"] = w(kv, d)
            t[p + "self_attn.v_proj.weight"] = w(kv, d)
            t[p + "self_attn.o_proj.weight"] = w(d, d)
            t[p + "mlp.gate_proj.weight"] = w(a.ff, d)
            t[p + "mlp.up_proj.weight"] = w(a.ff, d)
            t[p + "mlp.down_proj.weight"] = w(d, a.ff)
        t["model.norm.weight"] = np.ones(d, np.float32)
        if a.untied:
            t["lm_head.weight"] = w(V, d)
    else:
        t["transformer.wte.weight"] = w(V, d)
        t["transformer.wpe.weight"] = w(a.ctx, d)
        for i in range(L):
            p = f"transformer.h.{i}."
            for n in ("ln_1", "ln_2"):
                t[p + n + ".weight"] = np.ones(d, np.float32)
                t[p + n + ".bias"] = np.zeros(d, np.float32)
            t[p + "attn.c_attn.weight"] = w(d, 3 * d)
            t[p + "attn.c_attn.bias"] = w(3 * d)
            t[p + "attn.c_proj.weight"] = w(d, d)
            t[p + "attn.c_proj.bias"] = w(d)
            t[p + "mlp.c_fc.weight"] = w(d, a.ff)
            t[p + "mlp.c_fc.bias"] = w(a.ff)
            t[p + "mlp.c_proj.weight"] = w(a.ff, d)
            t[p + "mlp.c_proj.bias"] = w(d)
        t["transformer.ln_f.weight"] = np.ones(d, np.float32)
        t["transformer.ln_f.bias"] = np.zeros(d, np.float32)
    return t


def encode(x, dtype):
    if dtype == "f32":
        return "F32", x.astype("<f4").tobytes()
    if dtype == "f16":
        return "F16", x.astype("<f2").tobytes()
    u = x.astype("<f4").view("<u4")
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")  # round to nearest even
    return "BF16", u.tobytes()


def write_safetensors(path, items, dtype):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, x in items:
        dt, b = encode(x, dtype)
        header[name] = {"dtype": dt, "shape": list(x.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
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
    items = list(tensors(a).items())
    if a.shards == 1:
        write_safetensors(os.path.join(a.out, "model.safetensors"), items, a.dtype)
    else:
        per = -(-len(items) // a.shards)
        wm = {}
        for s in range(a.shards):
            name = f"model-{s + 1:05d}-of-{a.shards:05d}.safetensors"
            part = items[s * per : (s + 1) * per]
            write_safetensors(os.path.join(a.out, name), part, a.dtype)
            wm.update({n: name for n, _ in part})
        with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": wm}, f, indent=1)
    if a.tokenizer:
        shutil.copy(a.tokenizer, os.path.join(a.out, "tokenizer.json"))
    n = sum(x.size for _, x in items)
    print(f"{a.out}: {a.arch} d={a.d} L={a.layers} heads={a.heads}/{a.kv_heads} ff={a.ff} V={a.vocab} "
          f"{n / 1e6:.1f}M params {a.dtype}")


if __name__ == "__main__":
    main()
