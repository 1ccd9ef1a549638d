#!/usr/bin/env bash
# Generation tokens/s against context length, Mamba against Transformer++ at the same width and
# about the same parameters, batch 1 and 16 (see README.md). Prints the markdown table; the JSON,
# the table and the plots go to --out.
#
#   experiments/generation/run.sh --threads 16
#   experiments/generation/run.sh --threads 2 --out /tmp/gen -- --pairs bench --seconds 0.2
#
# Options:
#   --threads N   GOMAXPROCS; default: all cores
#   --out DIR     results folder; default experiments/generation/results
#   -- ...        flags for the command itself (go run ./experiments/generation --help)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
threads=$(nproc)
out=$here/results
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$threads" in ''|*[!0-9]*) echo "run.sh: --threads takes a positive integer" >&2; exit 2 ;; esac
mkdir -p "$out"
out=$(cd "$out" && pwd)
bin=$(mktemp -d)/generation
(cd "$root" && CGO_ENABLED=0 go build -o "$bin" ./experiments/generation)
start=$(date +%s)
GOMAXPROCS=$threads "$bin" --out "$out" "$@"
rm -r "$(dirname "$bin")"
echo "took $(( $(date +%s) - start )) s on $threads threads ($(nproc) cores); results in $out" >&2
