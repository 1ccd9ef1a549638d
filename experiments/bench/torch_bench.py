#!/usr/bin/env python3
"""PyTorch sides of experiments/bench: training and generation throughput on CPU.

  torch_bench.py transformer --threads 16 --d-model 256 --n-layer 4 --vocab-size 256 --batch-size 8 --seq-len 512
  torch_bench.py mamba-hf    (same flags)

transformer: a Transformer++ (Llama-style: pre-RMSNorm, rotary embeddings, causal
attention through scaled_dot_product_attention, a SwiGLU MLP of width int(8·d/3), no
biases, head tied to the embedding, head size 64) of the same width as the Mamba and
half its layers (the paper's rule: a Mamba of width d has twice the layers of a
Transformer of the same width and about the same parameters). Generation uses a KV cache.

mamba-hf: transformers' MambaForCausalLM with the Mamba's exact config (the slow
PyTorch path when mamba_ssm's kernels are absent, as on a CPU); generation through
its recurrent cache.

Both train with AdamW (lr 1e-3, betas 0.9/0.95, weight decay 0.1) in fp32 on random
tokens, 2 warm-up steps and then --steps timed ones, with torch.set_num_threads(--threads).
Generation: after a 16-token prompt, greedy steps at batch 1 and 16, timed after 4 warm-up
steps. Prints one JSON object.
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope(x, pos, theta=10000.0):
    """Rotates pairs (x[..., :h/2], x[..., h/2:]) of x (B, H, L, h) by angle pos·θ^(−2i/h)."""
    h = x.shape[-1]
    inv = theta ** (-torch.arange(0, h // 2, dtype=torch.float32) * 2 / h)
    ang = pos[:, None].float() * inv[None, :]
    cos, sin = ang.cos(), ang.sin()
    a, b = x[..., : h // 2], x[..., h // 2:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads, self.hd = heads, d // heads
        self.norm1, self.norm2 = RMSNorm(d), RMSNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.o = nn.Linear(d, d, bias=False)
        f = int(8 * d / 3)
        self.gate_up = nn.Linear(d, 2 * f, bias=False)
        self.down = nn.Linear(f, d, bias=False)

    def forward(self, x, pos, cache=None):
        B, L, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, L, 3, self.heads, self.hd).permute(2, 0, 3, 1, 4)
        q, k = rope(q, pos), rope(k, pos)
        if cache is not None:
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        a = F.scaled_dot_product_attention(q, k, v, is_causal=(cache is None or L > 1))
        x = x + self.o(a.transpose(1, 2).reshape(B, L, d))
        g, u = self.gate_up(self.norm2(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(g) * u)


class TransformerPP(nn.Module):
    def __init__(self, vocab, d, layers):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList([Block(d, max(1, d // 64)) for _ in range(layers)])
        self.norm = RMSNorm(d)
        nn.init.normal_(self.emb.weight, std=0.02)

    def forward(self, ids, start=0, caches=None):
        x = self.emb(ids)
        pos = torch.arange(start, start + ids.shape[1])
        for i, b in enumerate(self.blocks):
            x = b(x, pos, None if caches is None else caches[i])
        return self.norm(x) @ self.emb.weight.t()


def params(model):
    return sum(p.numel() for p in model.parameters())


def time_training(model, vocab, batch, seq_len, steps, logits_of):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    ids = torch.randint(0, vocab, (batch, seq_len))
    tgt = torch.roll(ids, -1, dims=1)

    def step():
        opt.zero_grad(set_to_none=True)
        logits = logits_of(ids)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    for _ in range(2):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    dt = (time.perf_counter() - t) / steps
    return batch * seq_len / dt, 1e3 * dt


@torch.no_grad()
def time_generation(prefill, step, vocab, batch):
    """prefill(ids) → state; step(state, tok, pos) → logits (B, V) of the next token."""
    prompt = torch.randint(0, vocab, (batch, 16))
    state = prefill(prompt)
    tok = torch.randint(0, vocab, (batch, 1))
    for i in range(4):
        tok = step(state, tok, 16 + i).argmax(-1, keepdim=True)
    n, t = 0, time.perf_counter()
    while n < 32 or time.perf_counter() - t < 0.25:
        tok = step(state, tok, 20 + n).argmax(-1, keepdim=True)
        n += 1
    return n * batch / (time.perf_counter() - t)


def transformer(a):
    layers = max(1, a.n_layer // 2)
    model = TransformerPP(a.vocab_size, a.d_model, layers)
    tps, ms = time_training(model, a.vocab_size, a.batch_size, a.seq_len, a.steps, model)
    model.eval()

    def prefill(ids):
        caches = [{} for _ in model.blocks]
        model(ids, 0, caches)
        return caches

    gen = {b: time_generation(prefill, lambda c, tok, pos: model(tok, pos, c)[:, -1], a.vocab_size, b) for b in (1, 16)}
    return {"model": f"Transformer++ d_model {a.d_model}, {layers} layers", "params": params(model), "tokens_per_s": tps,
            "step_ms": ms, "decode_tokens_per_s_b1": gen[1], "decode_tokens_per_s_b16": gen[16]}


def mamba_hf(a):
    from transformers import MambaConfig, MambaForCausalLM

    cfg = MambaConfig(vocab_size=a.vocab_size, hidden_size=a.d_model, num_hidden_layers=a.n_layer, state_size=16, expand=2,
                      conv_kernel=4, use_bias=False, use_conv_bias=True, tie_word_embeddings=True)
    model = MambaForCausalLM(cfg)
    tps, ms = time_training(model, a.vocab_size, a.batch_size, a.seq_len, a.steps, lambda ids: model(input_ids=ids).logits)
    model.eval()

    def prefill(ids):
        out = model(input_ids=ids, use_cache=True)
        return {"cache": out.cache_params, "pos": ids.shape[1]}

    def step(state, tok, pos):
        out = model(input_ids=tok, cache_params=state["cache"], use_cache=True,
                    cache_position=torch.tensor([state["pos"]]))
        state["cache"], state["pos"] = out.cache_params, state["pos"] + 1
        return out.logits[:, -1]

    r = {"model": f"transformers MambaForCausalLM d_model {a.d_model}, {a.n_layer} layers", "params": params(model),
         "tokens_per_s": tps, "step_ms": ms}
    try:  # the cache API has changed across transformers releases: keep the training figure if it fails
        gen = {b: time_generation(prefill, step, a.vocab_size, b) for b in (1, 16)}
        r.update({"decode_tokens_per_s_b1": gen[1], "decode_tokens_per_s_b16": gen[16]})
    except Exception as e:  # noqa: BLE001 - reported in the table
        r["decode_error"] = f"{type(e).__name__}: {e}"
    return r


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("which", choices=["transformer", "mamba-hf"])
    for flag in ("threads", "d-model", "n-layer", "vocab-size", "batch-size", "seq-len", "steps"):
        p.add_argument("--" + flag, type=int, required=flag != "steps", default=10)
    a = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    r = transformer(a) if a.which == "transformer" else mamba_hf(a)
    r.update({"which": a.which, "threads": a.threads, "torch": torch.__version__,
              "batch_size": a.batch_size, "seq_len": a.seq_len})
    json.dump(r, sys.stdout)
    print()


if __name__ == "__main__":
    main()
