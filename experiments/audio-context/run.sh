#!/usr/bin/env bash
# Audio bits per sample against context length (paper Fig. 7) at CPU scale: the sweep of
# configs/sweeps/audio-context.json. Run from the repository root.
# Usage: experiments/audio-context/run.sh [OUT_DIR] [--parallel K]
set -euo pipefail
out=${1:-runs/audio-context}
shift || true
# Synthesising the corpus needs espeak-ng, sox and flite (apt-get install espeak-ng sox flite).
[ -f data/cache/audio/train.tok ] || go run ./cmd/train prepare --modality audio --out data/cache/audio
go build -o "${TMPDIR:-/tmp}/train-sweep" ./cmd/train
"${TMPDIR:-/tmp}/train-sweep" sweep --config configs/sweeps/audio-context.json --out "$out" "$@"
