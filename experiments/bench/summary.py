#!/usr/bin/env python3
"""Prints the markdown summary of a measure.sh run: issue 8's targets against the measured
figures, both vector paths, the per-op times and PyTorch's Transformer++ beside them.

  summary.py OUT_DIR THREADS
"""
import json
import os
import sys


def load(d, name):
    try:
        with open(os.path.join(d, name + ".json")) as f:
            r = json.load(f)
        return None if "error" in r else r
    except (OSError, ValueError):
        return None


def get(r, key, fmt="{:,.0f}"):
    return "—" if r is None or r.get(key) is None else fmt.format(r[key])


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    d, t = sys.argv[1], sys.argv[2]
    b16, b2, d768 = load(d, f"bench_{t}"), load(d, "bench_2"), load(d, "bench_d768")
    avx2, avx512 = load(d, f"bench_{t}_avx2"), load(d, f"bench_{t}_avx512")
    torch16, torch2 = load(d, f"torch_{t}"), load(d, "torch_2")
    head = next((r for r in (b16, b2, d768) if r), None)
    if head is None:
        sys.exit(f"summary.py: no train bench result in {d}")
    print(f"BLAS {head['blas']} (core {head.get('blas_core', '?')}), vector path {head.get('vector_path', '?')}\n")
    print("| measurement | measured | target |")
    print("|---|---|---|")
    rows = [
        (f"bench model training, {t} threads (tok/s)", get(b16, "tokens_per_s"), "≥ 35,000"),
        ("bench model training, GOMAXPROCS 2 (tok/s)", get(b2, "tokens_per_s"), "≥ 10,000"),
        ("MFU at GOMAXPROCS 2 (this host)", get(b2, "mfu", "{:.2f}"), "(≥ 0.45 on the 2-core box)"),
        (f"d768×24 training, {t} threads (tok/s)", get(d768, "tokens_per_s"), "≥ 1,300"),
        (f"generation bench model, batch 1, {t} threads", get(b16, "decode_tokens_per_s_b1"), "≥ 10,000"),
        (f"generation bench model, batch 16, {t} threads", get(b16, "decode_tokens_per_s_b16"), "≥ 60,000"),
        ("generation bench model, batch 1, GOMAXPROCS 2", get(b2, "decode_tokens_per_s_b1"), "not slower than at all threads"),
        (f"generation d768×24, batch 1, {t} threads", get(d768, "decode_tokens_per_s_b1"), "≥ 150"),
        (f"generation d768×24, batch 16, {t} threads", get(d768, "decode_tokens_per_s_b16"), "—"),
        (f"MFU bench model, {t} threads", get(b16, "mfu", "{:.2f}"), "—"),
        (f"sgemm peak, {t} threads (GFLOP/s)", get(b16, "sgemm_gflops"), "—"),
        (f"PyTorch Transformer++ training, {t} threads (tok/s)", get(torch16, "tokens_per_s"), "—"),
        ("PyTorch Transformer++ training, 2 threads (tok/s)", get(torch2, "tokens_per_s"), "—"),
    ]
    for r in rows:
        print("| " + " | ".join(r) + " |")
    if avx2 or avx512:
        print(f"\nVector paths, bench model at {t} threads (MAMBA_VECTOR):\n")
        print("| path | training tok/s | Scan ms | Scan backward ms | Conv1d ms | generation b1 | b16 |")
        print("|---|---|---|---|---|---|---|")
        for name, r in (("avx2", avx2), ("avx512", avx512)):
            if r is None:
                continue
            ops = {o["name"]: o["ms_per_step"] for o in r["ops"]}
            print(f"| {name} | {get(r, 'tokens_per_s')} | {ops.get('Scan', 0):.1f} | {ops.get('Scan backward', 0):.1f} | "
                  f"{ops.get('Conv1d', 0):.1f} | {get(r, 'decode_tokens_per_s_b1')} | {get(r, 'decode_tokens_per_s_b16')} |")
    runs = [(n, r) for n, r in ((f"{t} threads", b16), ("2 threads", b2), ("d768×24", d768)) if r]
    names = []
    for _, r in runs:
        for o in r["ops"]:
            if o["name"] not in names:
                names.append(o["name"])
    print("\nPer-op time (ms per step; the step's total last):\n")
    print("| op | " + " | ".join(n for n, _ in runs) + " |")
    print("|---" * (len(runs) + 1) + "|")
    for name in names:
        cells = []
        for _, r in runs:
            ms = next((o["ms_per_step"] for o in r["ops"] if o["name"] == name), None)
            cells.append("—" if ms is None else f"{ms:.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("| step | " + " | ".join(f"{r['step_ms']:.1f}" for _, r in runs) + " |")


if __name__ == "__main__":
    main()
