#!/usr/bin/env bash
# Selectivity ablation (paper §4.1.1, Table 1): the quickstart's selective-copying task
# trained by the same Mamba with the selective scan (S6) and with its LTI ablation
# (model.selective=false: Δ, B, C input-independent, an S4D-like layer of the same width).
# Usage: run.sh OUT_DIR [extra --set flags...]
set -euo pipefail
out=${1:?usage: run.sh OUT_DIR [--set key=value ...]}
shift
for sel in true false; do
	go run ./cmd/train --set model.selective=$sel "$@" --out "$out/selective-$sel" |
		grep -E '^eval step' | sed "s/^/selective=$sel /"
done
