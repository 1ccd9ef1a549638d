#!/usr/bin/env bash
# Side-by-side CPU throughput on one machine and thread count: this project's
# `train bench`, a same-size PyTorch Transformer++ and transformers'
# MambaForCausalLM (where installed). Prints one markdown table; the JSON of
# each measurement is kept in --out.
#
#   experiments/bench/run.sh --threads 16 --config configs/bench.json
#   experiments/bench/run.sh --threads 16 --config configs/bench-transformer.json   # Transformer++ against PyTorch's
#   experiments/bench/run.sh --threads 2 --config configs/bench.json --train /path/to/train --steps 5
#
# Options:
#   --threads N     threads for every side (GOMAXPROCS, torch.set_num_threads); default: all cores
#   --config FILE   run config whose model and batch shape to time; default configs/bench.json
#   --steps N       timed training steps per side; default 10
#   --train BIN     a built train binary; default: build one (CGO_ENABLED=0) into --out
#   --out DIR       where the JSON results go; default a new temporary directory
#   --no-mamba-hf   skip transformers' MambaForCausalLM (slow: ~100× the others)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
threads=$(nproc)
config=$root/configs/bench.json
steps=10
bin=""
out=""
mamba_hf=1
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --train) bin=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-mamba-hf) mamba_hf=0; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$threads$steps" in *[!0-9]*) echo "run.sh: --threads and --steps take positive integers" >&2; exit 2 ;; esac
[ -f "$config" ] || { echo "run.sh: no config file $config" >&2; exit 2; }
[ -n "$out" ] || out=$(mktemp -d)
mkdir -p "$out"

if [ -z "$bin" ]; then
  bin=$out/train
  (cd "$root" && CGO_ENABLED=0 go build -o "$bin" ./cmd/train)
fi

echo "measuring on $threads threads, config $config, results in $out" >&2
GOMAXPROCS=$threads OMP_NUM_THREADS=1 "$bin" bench --config "$config" --steps "$steps" --json > "$out/go.json"

# The PyTorch sides take the shape the Go bench reports. torch_bench.py's Transformer++ has half
# the --n-layer it is given (the Mamba's rule): a Go Transformer++ (configs/bench-transformer.json)
# passes twice its layers, and has no MambaForCausalLM side.
shape=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); t=r.get("arch")=="transformer"; print(r["d_model"], r["n_layer"]*(2 if t else 1), r["vocab_size"], r["batch_size"], r["seq_len"], int(t))' "$out/go.json")
read -r d_model n_layer vocab batch seq_len transformer <<< "$shape"
[ "$transformer" = 1 ] && mamba_hf=0
common=(--threads "$threads" --d-model "$d_model" --vocab-size "$vocab" --batch-size "$batch" --seq-len "$seq_len" --steps "$steps")

OMP_NUM_THREADS=$threads python3 "$here/torch_bench.py" transformer "${common[@]}" --n-layer "$n_layer" > "$out/transformer.json" \
  || echo '{"error": "torch_bench.py transformer failed"}' > "$out/transformer.json"
if [ "$mamba_hf" = 1 ]; then
  OMP_NUM_THREADS=$threads python3 "$here/torch_bench.py" mamba-hf "${common[@]}" --n-layer "$n_layer" > "$out/mamba_hf.json" \
    || echo '{"error": "torch_bench.py mamba-hf failed"}' > "$out/mamba_hf.json"
fi

python3 "$here/table.py" "$out"
