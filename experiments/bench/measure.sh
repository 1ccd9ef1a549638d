#!/usr/bin/env bash
# Every measurement of issue 8's targets in one run (about 3 minutes on 16 cores, the
# build included when Go's cache is warm): training and generation of the bench model at
# all threads and at 2, the d768 × 24 model, both vector paths of the scan, PyTorch's
# Transformer++ beside them, and the Go benchmarks that explain them (fork/join cost, the
# products' cut, the decoder's products, the scan per path). Prints summary.md.
#
#   experiments/bench/measure.sh OUT_DIR [--threads N] [--no-torch] [--no-d768]
#
# OUT_DIR receives host.txt (CPU, topology, memory), the binaries (built with
# CGO_ENABLED=0), bench_*.json (train bench --json), *.prof (CPU profiles of the timed
# training steps: go tool pprof OUT_DIR/train OUT_DIR/bench_16.prof), torch_*.json,
# gobench.txt and summary.md.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=""
threads=$(nproc)
torch=1
d768=1
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --no-torch) torch=0; shift ;;
    --no-d768) d768=0; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    -*) echo "measure.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    *) out=$1; shift ;;
  esac
done
[ -n "$out" ] || { echo "measure.sh: give an output directory (see --help)" >&2; exit 2; }
case "$threads" in ''|*[!0-9]*) echo "measure.sh: --threads takes a positive integer" >&2; exit 2 ;; esac
mkdir -p "$out"
out=$(cd "$out" && pwd)
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

{ date -u; uname -a; echo "nproc $(nproc)"; lscpu 2>/dev/null || grep -m1 "model name" /proc/cpuinfo; free -g 2>/dev/null || true; } > "$out/host.txt" 2>&1

log "building (CGO_ENABLED=0)"
cd "$root"
CGO_ENABLED=0 go build -o "$out/train" ./cmd/train
CGO_ENABLED=0 go test -c -o "$out/" ./internal/parallel ./internal/kernel ./scan ./internal/math32

cfg=configs/bench.json
bench() { # name, GOMAXPROCS, extra env (or -), then train bench flags
  local name=$1 procs=$2 env=$3; shift 3
  if [ "$env" = - ]; then env=""; fi
  log "train bench $name (GOMAXPROCS=$procs${env:+, $env})"
  env $env GOMAXPROCS="$procs" OMP_NUM_THREADS=1 "$out/train" bench --json --cpuprofile "$out/$name.prof" "$@" > "$out/$name.json" \
    || { echo "{\"error\": \"train bench $name failed\"}" > "$out/$name.json"; log "  failed"; }
}
bench "bench_$threads" "$threads" - --config $cfg --steps 10
bench "bench_${threads}_avx2" "$threads" MAMBA_VECTOR=avx2 --config $cfg --steps 10
if grep -q avx512f /proc/cpuinfo; then
  bench "bench_${threads}_avx512" "$threads" MAMBA_VECTOR=avx512 --config $cfg --steps 10
fi
if [ "$threads" != 2 ]; then
  bench bench_2 2 - --config $cfg --steps 5
fi
if [ "$d768" = 1 ]; then
  bench bench_d768 "$threads" - --config $cfg --d-model 768 --n-layer 24 --steps 2
fi

if [ "$torch" = 1 ] && python3 -c "import torch" 2>/dev/null; then
  for t in "$threads" 2; do
    log "PyTorch Transformer++ ($t threads)"
    OMP_NUM_THREADS=$t python3 "$here/torch_bench.py" transformer --threads "$t" --d-model 256 --n-layer 4 \
      --vocab-size 256 --batch-size 8 --seq-len 512 --steps 10 > "$out/torch_$t.json" \
      || echo '{"error": "torch_bench.py failed"}' > "$out/torch_$t.json"
  done
fi

log "Go benchmarks"
{
  echo "## parallel: one fork and join of 4·GOMAXPROCS items of ~0.25 µs (spin vs park, idle vs loaded)"
  "$out/parallel.test" -test.run XXX -test.bench Barrier -test.benchtime 20000x -test.cpu "$threads"
  echo "## kernel: the products' cut (items=1 is one BLAS call) on 1 and $threads threads; the decoder's products"
  GOMAXPROCS=$threads "$out/kernel.test" -test.run XXX -test.bench 'Sgemm|DotRows' -test.benchtime 10x
  echo "## scan: each vector path, forward+backward on 1 and 2 workers, and the one-token step"
  "$out/scan.test" -test.run XXX -test.bench 'Scan/(avx512|avx2)/b8_' -test.benchtime 3x
  "$out/scan.test" -test.run XXX -test.bench 'Step/(avx512|avx2)/' -test.benchtime 3x
  echo "## math32: the row functions on each path"
  "$out/math32.test" -test.run XXX -test.bench Rows -test.benchtime 20000x
} > "$out/gobench.txt" 2>&1 || log "a Go benchmark failed: see gobench.txt"

python3 "$here/summary.py" "$out" "$threads" | tee "$out/summary.md"
log "done: $out"
