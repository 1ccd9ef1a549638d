#!/usr/bin/env bash
# DNA perplexity against context length (paper Fig. 5 right) at CPU scale: the sweep of
# configs/sweeps/dna-context.json. Run from the repository root.
# Usage: experiments/dna-context/run.sh [OUT_DIR] [--parallel K]
set -euo pipefail
out=${1:-runs/dna-context}
shift || true
[ -f data/cache/dna/train.tok ] || go run ./cmd/train prepare --modality dna --out data/cache/dna
go build -o "${TMPDIR:-/tmp}/train-sweep" ./cmd/train
"${TMPDIR:-/tmp}/train-sweep" sweep --config configs/sweeps/dna-context.json --out "$out" "$@"
