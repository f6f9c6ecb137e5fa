#!/usr/bin/env python3
"""Independent check of a `scalevec export` folder (docs/export.md).

Reads config.json and the safetensors files with its own parser (no `safetensors`, no
`transformers`: neither is packaged for Debian), runs a plain PyTorch forward of the architecture
written from the transformers model definitions' semantics (Llama, Qwen3, Mixtral, Qwen3-MoE:
RMSNorm, rotate_half RoPE, grouped-query attention via repeat_kv, SwiGLU, softmax top-k routing),
and compares its logits with those `scalevec eval --logits-out` wrote for the same tokens.

usage: check_export.py HF_DIR LOGITS.safetensors [--tol REL] [--dtype float64|float32]
                       [--rope scalevec|transformers]
exit 0 when max |ours - scalevec| / max |scalevec| <= tol, 1 otherwise.
"""
import argparse
import json
import math
import os
import struct
import sys

import torch

DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
          "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32,
          "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}


def read_safetensors(path):
    """The format: u64 little-endian header size N, N bytes of JSON, then the raw data."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = DTYPES[info["dtype"]]
        shape = info["shape"]
        numel = math.prod(shape)
        buf = bytearray(raw[base + begin:base + end])
        t = torch.frombuffer(buf, dtype=dtype) if numel else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(shape).clone()
    return out


def read_folder(d):
    index = os.path.join(d, "model.safetensors.index.json")
    if not os.path.exists(index):
        return read_safetensors(os.path.join(d, "model.safetensors"))
    with open(index) as f:
        weight_map = json.load(f)["weight_map"]
    tensors = {}
    for shard in sorted(set(weight_map.values())):
        tensors.update(read_safetensors(os.path.join(d, shard)))
    missing = set(weight_map) - set(tensors)
    if missing:
        sys.exit(f"index lists tensors no shard holds: {sorted(missing)[:5]}")
    return tensors


def rms_norm(x, weight, eps):
    # LlamaRMSNorm / Qwen3RMSNorm: x * rsqrt(mean(x^2) + eps), then the weight.
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope_tables(seq_len, head_dim, theta, dtype, rope):
    """cos/sin of position * theta^(-2i/d), duplicated over both halves (rotate_half layout).

    rope="scalevec": angles in float64, tables rounded once to float32 (what scalevec stores).
    rope="transformers": inv_freq and angles in float32, as LlamaRotaryEmbedding computes them;
    at late positions the float32 angle is off by up to ~position * 6e-8 radians.
    """
    if rope == "transformers":
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
        freqs = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype), emb.sin().to(dtype)
    inv_freq = torch.pow(theta, -torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    freqs = torch.outer(torch.arange(seq_len, dtype=torch.float64), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().float().to(dtype), emb.sin().float().to(dtype)


def attention(x, w, p, cfg, cos, sin):
    B, T, _ = x.shape
    H, KV = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    D = cfg.get("head_dim", cfg["hidden_size"] // H)
    q = (x @ w[p + "q_proj.weight"].T).view(B, T, H, D)
    k = (x @ w[p + "k_proj.weight"].T).view(B, T, KV, D)
    v = (x @ w[p + "v_proj.weight"].T).view(B, T, KV, D)
    if cfg["model_type"] in ("qwen3", "qwen3_moe"):  # QK-norm over head_dim, before RoPE
        q = rms_norm(q, w[p + "q_norm.weight"], cfg["rms_norm_eps"])
        k = rms_norm(k, w[p + "k_norm.weight"], cfg["rms_norm_eps"])
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    rep = H // KV  # repeat_kv: each key/value head serves rep consecutive query heads
    k = k[:, :, None].expand(B, KV, rep, T, D).reshape(B, H, T, D)
    v = v[:, :, None].expand(B, KV, rep, T, D).reshape(B, H, T, D)
    scores = q @ k.transpose(-1, -2) / math.sqrt(D)
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    scores = scores.masked_fill(mask, float("-inf"))
    y = torch.softmax(scores, dim=-1) @ v
    return y.transpose(1, 2).reshape(B, T, H * D) @ w[p + "o_proj.weight"].T


def swiglu(x, gate, up, down):
    return (torch.nn.functional.silu(x @ gate.T) * (x @ up.T)) @ down.T


def sparse_moe(x, w, p, cfg):
    mixtral = cfg["model_type"] == "mixtral"
    E = cfg["num_local_experts"] if mixtral else cfg["num_experts"]
    k = cfg["num_experts_per_tok"]
    pre = p + ("block_sparse_moe." if mixtral else "mlp.")
    flat = x.reshape(-1, x.shape[-1])
    probs = torch.softmax(flat @ w[pre + "gate.weight"].T, dim=-1)
    top_p, top_i = probs.topk(k, dim=-1)
    if mixtral or cfg.get("norm_topk_prob", False):
        top_p = top_p / top_p.sum(-1, keepdim=True)
    out = torch.zeros_like(flat)
    names = ("w1", "w3", "w2") if mixtral else ("gate_proj", "up_proj", "down_proj")
    for e in range(E):
        rows, slot = (top_i == e).nonzero(as_tuple=True)
        if rows.numel() == 0:
            continue
        ex = pre + f"experts.{e}."
        y = swiglu(flat[rows], *(w[ex + n + ".weight"] for n in names))
        out.index_add_(0, rows, y * top_p[rows, slot, None])
    return out.reshape(x.shape)


def forward(cfg, w, tokens, dtype, rope="scalevec"):
    w = {k: v.to(dtype) for k, v in w.items()}
    eps = cfg["rms_norm_eps"]
    H = cfg["num_attention_heads"]
    D = cfg.get("head_dim", cfg["hidden_size"] // H)
    cos, sin = rope_tables(tokens.shape[1], D, cfg.get("rope_theta", 10000.0), dtype, rope)
    x = w["model.embed_tokens.weight"][tokens]
    moe = cfg["model_type"] in ("mixtral", "qwen3_moe")
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = x + attention(rms_norm(x, w[p + "input_layernorm.weight"], eps), w, p + "self_attn.",
                          cfg, cos, sin)
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        if moe:
            x = x + sparse_moe(h, w, p, cfg)
        else:
            x = x + swiglu(h, w[p + "mlp.gate_proj.weight"], w[p + "mlp.up_proj.weight"],
                           w[p + "mlp.down_proj.weight"])
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else w["lm_head.weight"]
    return x @ head.T


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("hf_dir")
    ap.add_argument("logits", help="scalevec eval --logits-out file (tokens, logits)")
    ap.add_argument("--tol", type=float, default=1e-9, help="max relative logit difference")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--rope", default="scalevec", choices=["scalevec", "transformers"],
                    help="RoPE tables as scalevec stores them or as transformers computes them")
    args = ap.parse_args()
    with open(os.path.join(args.hf_dir, "config.json")) as f:
        cfg = json.load(f)
    if cfg["model_type"] not in ("llama", "qwen3", "mixtral", "qwen3_moe"):
        sys.exit(f"model_type {cfg['model_type']} is not one this check implements")
    ref = read_safetensors(args.logits)
    tokens, expect = ref["tokens"], ref["logits"].to(torch.float64)
    with torch.no_grad():
        got = forward(cfg, read_folder(args.hf_dir), tokens, getattr(torch, args.dtype), args.rope)
    rel = ((got.to(torch.float64) - expect).abs().max() / expect.abs().max()).item()
    verdict = "ok" if rel <= args.tol else "FAIL"
    print(f"{verdict}: {cfg['architectures'][0]} on {list(tokens.shape)} tokens: max relative "
          f"logit difference {rel:.3e} (tol {args.tol:.0e}, {args.dtype} forward, {args.rope} RoPE "
          f"tables, {ref['logits'].dtype} reference)")
    return 0 if rel <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
