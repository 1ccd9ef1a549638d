#!/usr/bin/env bash
# Induction heads (paper §4.1.2, Table 2): train configs/induction-heads.json at L = 256,
# then evaluate the final checkpoint at 4× to 64× the training length.
# Usage (from the repository root): run.sh OUT_DIR [extra --set flags...]
set -euo pipefail
out=${1:?usage: run.sh OUT_DIR [--set key=value ...]}
shift
go run ./cmd/train --config configs/induction-heads.json "$@" --out "$out" | grep -E '^eval step'
for L in 256 1024 4096 16384; do
	echo "== L=$L"
	go run ./cmd/train eval --checkpoint "$out" --set data.seq_len=$L --set data.batch_size=4 |
		grep -E 'val (loss|accuracy)'
done
