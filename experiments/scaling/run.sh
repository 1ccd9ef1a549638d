#!/usr/bin/env bash
# Scaling laws on byte-level text (paper Fig. 4 at CPU scale): the IsoFLOP sweep of
# configs/sweeps/text-bytes.json, then the fit. Run from the repository root.
# Usage: experiments/scaling/run.sh [OUT_DIR] [--parallel K]
# Killing it at any moment and running the same command again continues the sweep.
set -euo pipefail
out=${1:-runs/scaling-text-bytes}
shift || true
[ -f data/cache/text-bytes/train.tok ] ||
	go run ./cmd/train prepare --modality text --tokenizer bytes --out data/cache/text-bytes
go build -o "${TMPDIR:-/tmp}/train-sweep" ./cmd/train
"${TMPDIR:-/tmp}/train-sweep" sweep --config configs/sweeps/text-bytes.json --out "$out" "$@"
"${TMPDIR:-/tmp}/train-sweep" sweep fit --runs "$out/runs.csv" --json > "$out/fit-cli.json"
