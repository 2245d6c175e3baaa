#!/usr/bin/env python3
"""The same forward in PyTorch eager (Debian python3-torch), as a researcher without lsa would run it:
the model built from the same safetensors files in HF's Llama / GPT-2 layout (transformers is not
packaged in Debian 12, so the modules are written out here, numerically the same), all hidden states
kept. Usage: forward_torch.py MODEL_DIR T [reps] [threads]. Prints one JSON line like bench_forward."""
import json
import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def load(path):
    with open(path + "/model.safetensors", "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        hdr = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        dt = {"F32": np.float32, "F16": np.float16}[v["dtype"]]
        out[k] = torch.from_numpy(np.frombuffer(data[b:e], dtype=dt).reshape(v["shape"]).astype(np.float32).copy())
    return out


def rms(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def attend(q, k, v):
    """HF's eager attention: masked scores, float32 softmax, weighted values."""
    T, dh = q.shape[1], q.shape[2]
    mask = torch.full((T, T), float("-inf")).triu(1)
    p = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(dh) + mask, -1)
    return p @ v


def rot(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), -1)


def llama(W, c, ids):
    d, H, Hkv, L = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["num_hidden_layers"]
    dh, T = d // H, ids.shape[0]
    theta = c.get("rope_parameters", {}).get("rope_theta", 10000.0)
    inv = 1.0 / (theta ** (torch.arange(0, dh, 2).float() / dh))
    ang = torch.outer(torch.arange(T).float(), inv)
    cos, sin = torch.cat((ang, ang), -1).cos(), torch.cat((ang, ang), -1).sin()
    x = W["model.embed_tokens.weight"][ids]
    hs = [x]
    for i in range(L):
        p = f"model.layers.{i}."
        h = rms(x, W[p + "input_layernorm.weight"], 1e-5)
        q = (h @ W[p + "self_attn.q_proj.weight"].T).view(T, H, dh).transpose(0, 1)
        k = (h @ W[p + "self_attn.k_proj.weight"].T).view(T, Hkv, dh).transpose(0, 1)
        v = (h @ W[p + "self_attn.v_proj.weight"].T).view(T, Hkv, dh).transpose(0, 1)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        k, v = k.repeat_interleave(H // Hkv, 0), v.repeat_interleave(H // Hkv, 0)
        a = attend(q, k, v).transpose(0, 1).reshape(T, d)
        x = x + a @ W[p + "self_attn.o_proj.weight"].T
        h = rms(x, W[p + "post_attention_layernorm.weight"], 1e-5)
        g = F.silu(h @ W[p + "mlp.gate_proj.weight"].T) * (h @ W[p + "mlp.up_proj.weight"].T)
        x = x + g @ W[p + "mlp.down_proj.weight"].T
        hs.append(x)
    x = rms(x, W["model.norm.weight"], 1e-5)
    head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    return hs, x @ head.T


def gpt2(W, c, ids):
    d, H, L, T = c["n_embd"], c["n_head"], c["n_layer"], ids.shape[0]
    dh = d // H
    x = W["transformer.wte.weight"][ids] + W["transformer.wpe.weight"][:T]
    hs = [x]
    for i in range(L):
        p = f"transformer.h.{i}."
        h = F.layer_norm(x, (d,), W[p + "ln_1.weight"], W[p + "ln_1.bias"], 1e-5)
        qkv = h @ W[p + "attn.c_attn.weight"] + W[p + "attn.c_attn.bias"]
        q, k, v = (t.view(T, H, dh).transpose(0, 1) for t in qkv.split(d, -1))
        a = attend(q, k, v).transpose(0, 1).reshape(T, d)
        x = x + a @ W[p + "attn.c_proj.weight"] + W[p + "attn.c_proj.bias"]
        h = F.layer_norm(x, (d,), W[p + "ln_2.weight"], W[p + "ln_2.bias"], 1e-5)
        h = F.gelu(h @ W[p + "mlp.c_fc.weight"] + W[p + "mlp.c_fc.bias"], approximate="tanh")
        x = x + h @ W[p + "mlp.c_proj.weight"] + W[p + "mlp.c_proj.bias"]
        hs.append(x)
    x = F.layer_norm(x, (d,), W["transformer.ln_f.weight"], W["transformer.ln_f.bias"], 1e-5)
    return hs, x @ W["transformer.wte.weight"].T


def main():
    path, T = sys.argv[1], int(sys.argv[2])
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    torch.set_num_threads(int(sys.argv[4]) if len(sys.argv) > 4 else 2)
    c = json.load(open(path + "/config.json"))
    W = load(path)
    fwd = llama if c["model_type"] == "llama" else gpt2
    V = c["vocab_size"]
    ids = torch.tensor([(t * 7919 + 13) % V for t in range(T)])
    best = 1e30
    with torch.inference_mode():
        # warm up for half a second (as bench_forward does): thread pools settle, caches fill
        start, r = time.perf_counter(), 0
        while r < 1 or time.perf_counter() - start < 0.5:
            fwd(W, c, ids)
            r += 1
        for r in range(reps):
            t0 = time.perf_counter()
            hs, logits = fwd(W, c, ids)
            F.cross_entropy(logits[:-1], ids[1:])
            e = time.perf_counter() - t0
            best = min(best, e)
    print(json.dumps({"model": path, "T": T, "seconds": round(best, 5), "tokens_per_s": round(T / best, 1),
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
