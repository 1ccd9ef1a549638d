#!/usr/bin/env python3
"""Prints the side-by-side markdown table of experiments/bench from the JSON files in DIR:
go.json (train bench --json), transformer.json and mamba_hf.json (torch_bench.py).

  table.py DIR
"""
import datetime
import json
import os
import platform
import sys


def load(d, name):
    try:
        with open(os.path.join(d, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def cpu():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def num(x, fmt="{:,.0f}"):
    return "—" if x is None else fmt.format(x)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    go = load(d, "go.json")
    if go is None:
        sys.exit(f"table.py: no go.json in {d}")
    sides = [("this project (Go)", go)]
    for name, title in (("transformer.json", "PyTorch Transformer++"), ("mamba_hf.json", "transformers MambaForCausalLM")):
        r = load(d, name)
        if r is not None:
            sides.append((title, r))
    blas = go["blas"] + (f" (core {go['blas_core']})" if go.get("blas_core") else "")
    torch = next((r.get("torch") for _, r in sides[1:] if r.get("torch")), "not installed")
    print(f"{cpu()}, {go['gomaxprocs']} threads, {datetime.date.today()}; BLAS {blas}; torch {torch}. "
          f"Batch {go['batch_size']} × {go['seq_len']}, fp32, AdamW.\n")
    print("| measurement | " + " | ".join(t for t, _ in sides) + " |")
    print("|---" * (len(sides) + 1) + "|")
    rows = [
        ("model", lambda r: r.get("model") or (f"{'Transformer++' if r.get('arch') == 'transformer' else 'Mamba'} d_model {r['d_model']}, {r['n_layer']} layers" if "d_model" in r else "—")),
        ("parameters", lambda r: num(r.get("params"))),
        ("training tokens/s", lambda r: num(r.get("tokens_per_s")) if "error" not in r else r["error"]),
        ("step time (ms)", lambda r: num(r.get("step_ms"), "{:,.1f}")),
        ("achieved GFLOP/s (6·N_mm + scan, conv or attention per token)", lambda r: num(r.get("achieved_gflops"), "{:,.1f}")),
        ("sgemm peak GFLOP/s, same threads", lambda r: num(r.get("sgemm_gflops"), "{:,.1f}")),
        ("MFU", lambda r: num(r.get("mfu"), "{:.2f}")),
        ("generation tokens/s, batch 1", lambda r: num(r.get("decode_tokens_per_s_b1")) if "decode_error" not in r else r["decode_error"]),
        ("generation tokens/s, batch 16", lambda r: num(r.get("decode_tokens_per_s_b16"))),
    ]
    for name, f in rows:
        print(f"| {name} | " + " | ".join(f(r) for _, r in sides) + " |")
    if go.get("ops"):
        print("\nWhere a training step of this project goes (train bench's per-op times):\n")
        print("| op | ms per step | share |")
        print("|---|---|---|")
        for o in sorted(go["ops"], key=lambda o: -o["ms_per_step"]):
            print(f"| {o['name']} | {o['ms_per_step']:.2f} | {100 * o['ms_per_step'] / go['step_ms']:.1f}% |")


if __name__ == "__main__":
    main()
