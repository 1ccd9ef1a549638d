#!/usr/bin/env bash
# gpucheck.sh: the whole GPU check of the repository in one call on a GPU host: the CUDA tests of
# internal/cuda (kernels against float64 references, the scan fixtures), internal/gpu (a training
# step against the CPU's, precisions, generation against the CPU's greedy tokens) and train (50
# quickstart steps against the CPU, resuming across devices), the train command on the GPU, train
# bench --device cuda on the bench model and on d768 × 24, the scan benchmark, and
# compute-sanitizer on small cases. Every step has a time limit and no step starts after
# $GPUCHECK_BUDGET seconds (default 270), so the run ends within about 5 minutes whatever happens; the
# steps run in order of importance and a compact summary is printed last.
#
#   internal/cuda/gpucheck.sh --build      here, with Go (no GPU needed): writes .gpu/gpucheck.tgz,
#                                           CGO_ENABLED=0 binaries and the scan fixtures (about 27 MB)
#   bash internal/cuda/gpucheck.sh          on the GPU host, from the repository (carry .gpu)
#
# The host needs no Go: the binaries come in .gpu/gpucheck.tgz. The CPU side of the parity tests uses
# OpenBLAS when the host has it, else gonum's pure-Go products (slower, same results within the
# tolerances). Logs, JSON and the summary go to $OUT (or ./gpucheck-out). GPUCHECK_DRY=1 runs every
# step with tiny shapes (MAMBA_CUDA_EMULATED=1 and tiny bench models): a rehearsal of the script on
# the host emulator (MAMBA_CUDA_LIB and MAMBA_CUBLAS_LIB naming its libraries).
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

if [ "${1:-}" = "--build" ]; then
	set -e
	fixtures=${SCAN_FIXTURES_DIR:-}
	for d in "$repo/shared/fixtures" "$repo/../shared/fixtures"; do
		if [ -z "$fixtures" ] && ls "$d"/scan_*.safetensors >/dev/null 2>&1; then fixtures=$d; fi
	done
	if [ -z "$fixtures" ]; then
		echo "gpucheck --build: no scan fixtures (set SCAN_FIXTURES_DIR)" >&2
		exit 2
	fi
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	cd "$repo"
	for p in internal/cuda internal/gpu train; do
		CGO_ENABLED=0 go test -c -trimpath -ldflags='-s -w' -o "$tmp/$(basename "$p").test" "./$p"
	done
	CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$tmp/train" ./cmd/train
	mkdir -p "$tmp/fixtures" .gpu
	cp "$fixtures"/scan_*.safetensors "$tmp/fixtures/"
	git rev-parse --short HEAD >"$tmp/commit" 2>/dev/null || echo unknown >"$tmp/commit"
	tar czf .gpu/gpucheck.tgz -C "$tmp" .
	ls -l .gpu/gpucheck.tgz
	exit 0
fi

out=${OUT:-$repo/gpucheck-out}
mkdir -p "$out"
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
if ! tar xzf "$repo/.gpu/gpucheck.tgz" -C "$bin" 2>"$out/unpack.log"; then
	echo "gpucheck: cannot unpack $repo/.gpu/gpucheck.tgz ($(head -c 200 "$out/unpack.log")): run internal/cuda/gpucheck.sh --build where Go is, and carry .gpu"
	exit 2
fi
export MAMBA_CUDA_REQUIRE=1 SCAN_FIXTURES_DIR=$bin/fixtures
budget=${GPUCHECK_BUDGET:-270}
small=(--d-model 768 --n-layer 24 --vocab-size 256)
if [ "${GPUCHECK_DRY:-}" = 1 ]; then
	export MAMBA_CUDA_EMULATED=1
	small=(--d-model 16 --n-layer 2 --vocab-size 32)
fi
start=$SECONDS
results=$out/steps.tsv
: >"$results"

# step NAME LIMIT LOG DIR COMMAND...: runs COMMAND in DIR with its output in LOG, within LIMIT seconds
# and the budget left, and records its status.
step() {
	local name=$1 limit=$2 log=$3 dir=$4
	shift 4
	local left=$((budget - (SECONDS - start)))
	if [ "$left" -lt 10 ]; then
		printf '%s\tnot run (time budget spent)\t0\n' "$name" >>"$results"
		echo "== $name: not run (time budget spent)"
		return
	fi
	[ "$limit" -gt "$left" ] && limit=$left
	echo "== $name (at most ${limit}s)"
	local t0=$SECONDS rc
	(cd "$dir" && timeout -k 5 "$limit" "$@") >"$out/$log" 2>&1
	rc=$?
	local status="ok"
	case $rc in
	0) ;;
	124 | 137) status="TIMED OUT after ${limit}s" ;;
	*) status="FAILED (exit $rc)" ;;
	esac
	printf '%s\t%s\t%d\n' "$name" "$status" $((SECONDS - t0)) >>"$results"
	echo "   $status in $((SECONDS - t0))s"
}

{
	echo "== host"
	date -u
	uname -r
	echo "binaries of commit $(cat "$bin/commit")"
	nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.mem --format=csv 2>&1 | head -3
	ldconfig -p 2>/dev/null | grep -E 'libcuda\.so|libcublas\.so|libopenblas' | head -6
	nproc
} >"$out/host.log" 2>&1
cat "$out/host.log"

T=$bin
step "cuda: kernel tests" 90 tests-cuda.log "$repo/internal/cuda" "$T/cuda.test" -test.run CUDA -test.v -test.count 1
step "gpu: step, precisions, decoding vs CPU" 150 tests-gpu.log "$repo/internal/gpu" "$T/gpu.test" -test.run CUDA -test.v -test.count 1
bench() { # NAME LOG ARGS...
	local name=$1 log=$2
	shift 2
	step "$name" 120 "$log" "$repo" "$T/train" bench --device cuda --json "$@"
}
if [ "${GPUCHECK_DRY:-}" = 1 ]; then
	bench "bench model fp32" bench-small-fp32.json "${small[@]}" --batch-size 2 --seq-len 16 --steps 2
	bench "bench model tf32" bench-small-tf32.json "${small[@]}" --batch-size 2 --seq-len 16 --steps 2 --precision tf32
	bench "d768x24 8x512 tf32" bench-d768-tf32.json "${small[@]}" --batch-size 2 --seq-len 8 --steps 2 --precision tf32
	bench "d768x24 16x2048 bf16" bench-d768-bf16.json "${small[@]}" --batch-size 2 --seq-len 12 --steps 2 --precision bf16
else
	bench "bench model fp32" bench-small-fp32.json --config configs/bench.json --steps 30
	bench "bench model tf32" bench-small-tf32.json --config configs/bench.json --steps 30 --precision tf32
	bench "d768x24 8x512 tf32" bench-d768-tf32.json "${small[@]}" --batch-size 8 --seq-len 512 --steps 10 --precision tf32
	bench "d768x24 16x2048 bf16" bench-d768-bf16.json "${small[@]}" --batch-size 16 --seq-len 2048 --steps 5 --precision bf16
fi
if [ "${GPUCHECK_DRY:-}" != 1 ]; then
	step "scan benchmark" 60 bench-scan.log "$repo/internal/cuda" "$T/cuda.test" -test.run '^$' -test.bench CUDAScan -test.benchtime 3x -test.v
fi
step "train: quickstart and resume vs CPU" 100 tests-train.log "$repo/train" "$T/train.test" -test.run CUDA -test.v -test.count 1
cli() {
	local run=$bin/cli-run
	rm -rf "$run"
	"$T/train" --device cuda --precision tf32 --out "$run" --set run.max_steps=20 --set run.eval_every=10 --set run.log_every=5 \
		--set run.checkpoint_every=10 --set optim.warmup_steps=5 --set data.batch_size=4 || return 1
	"$T/train" eval --checkpoint "$run" --device cuda || return 1
	local a b
	a=$("$T/train" generate --checkpoint "$run" --prompt-ids 1,2,3,4 --tokens 12 --temperature 0) || return 1
	b=$("$T/train" generate --checkpoint "$run" --prompt-ids 1,2,3,4 --tokens 12 --temperature 0 --device cuda) || return 1
	echo "generate cpu:  $a"
	echo "generate cuda: $b"
	[ "$a" = "$b" ] || { echo "greedy tokens differ"; return 1; }
	MAMBA_CUDA_LIB=/nonexistent/libcuda.so.1 "$T/train" bench --device cuda --d-model 16 --n-layer 1 2>&1
	[ $? -eq 2 ] || { echo "no driver: want exit 2"; return 1; }
	echo "train, eval, generate (cpu = cuda) and the no-driver refusal: ok"
}
export -f cli
export T bin
step "train command on the GPU" 60 cli.log "$repo" bash -c cli

san=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ "${GPUCHECK_DRY:-}" = 1 ]; then
	printf 'compute-sanitizer	not run (rehearsal)	0
' >>"$results"
elif [ -n "$san" ]; then
	step "memcheck: backend, scan, step kernels" 60 memcheck.log "$repo/internal/cuda" "$san" --tool memcheck --error-exitcode 9 \
		"$T/cuda.test" -test.count 1 -test.run 'CUDABackend|CUDAScanMatchesReference/(1x1x1x1|2x37x5x3|2x260x70x17)|CUDAScanReset/1x64'
	step "racecheck: scan" 60 racecheck.log "$repo/internal/cuda" "$san" --tool racecheck --error-exitcode 9 \
		"$T/cuda.test" -test.count 1 -test.run 'CUDAScanMatchesReference/(2x37x5x3|2x260x70x17)'
	step "memcheck: decoder and trainer (small)" 60 memcheck-gpu.log "$repo/internal/gpu" env MAMBA_CUDA_EMULATED=1 "$san" --tool memcheck \
		--error-exitcode 9 "$T/gpu.test" -test.count 1 -test.run 'CUDADecoderMatchesCPU|CUDATrainerMatchesCPU'
else
	printf 'compute-sanitizer\tnot run (not installed)\t0\n' >>"$results"
fi

# Summary.
num() { grep -o "\"$2\":[-0-9.e+]*" "$out/$1" 2>/dev/null | head -1 | cut -d: -f2; }
fmt() { [ -n "$1" ] && awk -v x="$1" -v f="$2" 'BEGIN { printf f, x }' || printf 'n/a'; }
{
	echo
	echo "==================== gpucheck summary ===================="
	grep -m1 -o '{Ordinal.*' "$out/tests-cuda.log" 2>/dev/null | cut -c1-160
	echo "binaries of commit $(cat "$bin/commit"); logs in $out"
	echo
	printf '%-42s %-28s %s\n' "step" "status" "s"
	awk -F'\t' '{ printf "%-42s %-28s %s\n", $1, $2, $3 }' "$results"
	echo
	for f in tests-cuda tests-gpu tests-train; do
		[ -f "$out/$f.log" ] || continue
		p=$(grep -cE '^--- PASS' "$out/$f.log")
		x=$(grep -cE '^\s*--- FAIL' "$out/$f.log")
		s=$(grep -cE '^\s*--- SKIP' "$out/$f.log")
		printf '%-12s %3d passed %3d failed %3d skipped  %s\n' "$f:" "$p" "$x" "$s" "$(grep -E '^\s*--- FAIL' "$out/$f.log" | awk '{print $3}' | head -6 | paste -sd ' ')"
	done
	awk '/rel L2/ { for (i = 1; i <= NF; i++) if ($i == "L2") { v = $(i+1) + 0; if (v > m) { m = v; w = $0 } } }
		END { if (m > 0) printf "worst rel L2 in the kernel tests: %.3g (%s)\n", m, substr(w, 1, 100) }' "$out/tests-cuda.log" 2>/dev/null
	grep -hE 'loss: cpu|gradient norm: cpu|accuracy cpu|replayed step|captured into' "$out/tests-gpu.log" "$out/tests-train.log" 2>/dev/null | sed 's/^ *//' | sort | uniq -c | sed 's/^ *//' | head -8
	echo
	printf '%-34s %12s %10s %8s %10s %10s  %s\n' "bench (train bench --device cuda)" "tokens/s" "target" "MFU" "gen b1" "gen b16" "graph, kernel calls"
	for r in "bench model fp32:bench-small-fp32.json:400000" "bench model tf32:bench-small-tf32.json:400000" \
		"d768x24 8x512 tf32:bench-d768-tf32.json:60000" "d768x24 16x2048 bf16:bench-d768-bf16.json:250000"; do
		IFS=: read -r name f target <<<"$r"
		printf '%-34s %12s %10s %8s %10s %10s  %s %s\n' "$name" "$(fmt "$(num "$f" tokens_per_s)" '%.0f')" ">=$target" \
			"$(fmt "$(num "$f" mfu)" '%.3f')" "$(fmt "$(num "$f" decode_tokens_per_s_b1)" '%.0f')" \
			"$(fmt "$(num "$f" decode_tokens_per_s_b16)" '%.0f')" "$(grep -o '"cuda_graph":"[^"]*"' "$out/$f" 2>/dev/null | cut -d'"' -f4 | cut -c1-40)" \
			"$(num "$f" kernel_calls)"
	done
	echo "generation d768x24 batch 1 (target >= 500 tok/s): $(fmt "$(num bench-d768-tf32.json decode_tokens_per_s_b1)" '%.0f') tok/s"
	for f in bench-d768-bf16.json bench-d768-tf32.json bench-small-fp32.json; do
		[ -s "$out/$f" ] || continue
		echo "top ops of $f (ms per step):"
		grep -o '{"name":"[^"]*","ms_per_step":[0-9.e+-]*' "$out/$f" | sed 's/{"name":"//; s/","ms_per_step":/\t/' |
			sort -t"$(printf '\t')" -k2 -g -r | head -7 | awk -F'\t' '{ printf "   %-34s %8.3f\n", $1, $2 }'
	done
	awk '/^BenchmarkCUDAScan\// { delete m; for (i = 1; i <= NF; i++) m[$(i+1)] = $i; split($1, a, "/"); sub(/-[0-9]+$/, "", a[3])
		printf "scan %-16s %-9s fwd %6s ms  bwd %6s ms  floor %6s ms (%s GB/s copy)  => %5s x floor (target <= 2)\n",
			a[2], a[3], m["fwd-ms"], m["bwd-ms"], m["floor-ms"], m["copy-GB/s"], m["x-floor"] }' "$out/bench-scan.log" 2>/dev/null
	for f in memcheck racecheck memcheck-gpu; do
		[ -f "$out/$f.log" ] && echo "$f: $(grep -E '(ERROR|RACECHECK) SUMMARY' "$out/$f.log" | tail -1 | sed 's/^========= //')"
	done
	echo "total $((SECONDS - start))s"
} | tee "$out/summary.txt"
# Exit status: 1 when a step failed, timed out or was cut by the time budget.
awk -F'\t' '$2 ~ /^(FAILED|TIMED OUT|not run \(time budget)/ { bad = 1 } END { exit bad }' "$results"
