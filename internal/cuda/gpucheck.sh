#!/usr/bin/env bash
# gpucheck.sh: the whole GPU check of package cuda in one call, for a GPU host. It runs every test
# whose name contains CUDA (with MAMBA_CUDA_REQUIRE=1: a missing driver, GPU or cuBLAS fails them),
# the scan fixtures and a few tests again through the PTX (driver-compiled) path, compute-sanitizer
# on small cases where it exists, and the benchmarks; it prints a short summary last and exits
# non-zero when anything failed. About 2 minutes, at most 7 (every step has a timeout).
#
#   internal/cuda/gpucheck.sh [TEST_BINARY]
#
# TEST_BINARY (or $CUDA_TEST_BIN, or internal/cuda/cuda.test if present) is a test binary built on any
# machine with   CGO_ENABLED=0 go test -c -o internal/cuda/cuda.test ./internal/cuda   so that the host
# needs no Go toolchain, module cache or network. Without one the script builds it with the host's go.
# Scan fixtures: $SCAN_FIXTURES_DIR, else .gpu/fixtures or shared/fixtures inside the repository, or
# shared/fixtures beside it. For a device call that carries .gpu (ignored by git), in the repository:
#
#   mkdir -p .gpu/fixtures && cp ../shared/fixtures/scan_*.safetensors .gpu/fixtures/
#   CGO_ENABLED=0 go test -c -o .gpu/cuda.test ./internal/cuda
#   (device) bash internal/cuda/gpucheck.sh .gpu/cuda.test
# Logs go to $OUT (or ./gpucheck-out): host.log, tests.log, ptx.log, sanitizer.log, bench.log.
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${OUT:-$repo/gpucheck-out}
mkdir -p "$out"
bin=${1:-${CUDA_TEST_BIN:-}}
if [ -z "$bin" ] && [ -x "$here/cuda.test" ]; then bin=$here/cuda.test; fi
if [ -z "$bin" ]; then
	if ! command -v go >/dev/null; then
		echo "gpucheck: no test binary and no go: build one with CGO_ENABLED=0 go test -c -o internal/cuda/cuda.test ./internal/cuda" >&2
		exit 2
	fi
	bin=$out/cuda.test
	(cd "$repo" && CGO_ENABLED=0 go test -c -o "$bin" ./internal/cuda) || { echo "gpucheck: build failed" >&2; exit 2; }
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
if [ -z "${SCAN_FIXTURES_DIR:-}" ]; then
	for d in "$repo/.gpu/fixtures" "$repo/shared/fixtures" "$repo/../shared/fixtures"; do
		if ls "$d"/scan_*.safetensors >/dev/null 2>&1; then export SCAN_FIXTURES_DIR=$d; break; fi
	done
fi
export MAMBA_CUDA_REQUIRE=1
cd "$here"

{
	echo "== host"; date -u; uname -r
	nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv 2>&1 | head -3
	echo "fixtures: ${SCAN_FIXTURES_DIR:-none}"
	ldconfig -p 2>/dev/null | grep -E 'libcuda\.so|libcublas\.so' | head -6
	ls -d /usr/local/cuda*/lib64/libcublas.so.* /opt/*/.venv/lib/python3*/site-packages/nvidia/*/lib/libcublas.so.* 2>/dev/null | head -4
} >"$out/host.log" 2>&1
cat "$out/host.log"

echo "== tests (cubin)"
timeout 150 "$bin" -test.run CUDA -test.v -test.count 1 -test.timeout 140s >"$out/tests.log" 2>&1
tests_rc=$?
grep -E '^(--- |    --- )(FAIL|SKIP)|FAIL|panic' "$out/tests.log" | head -40

echo "== tests (ptx)"
MAMBA_CUDA_PTX=1 timeout 45 "$bin" -test.run 'CUDAOpen|CUDAScanFixtures|CUDAScanReset|CUDARMSNorm|CUDAAdamW' -test.v -test.count 1 >"$out/ptx.log" 2>&1
ptx_rc=$?
grep -E 'Image|^--- (FAIL|SKIP)' "$out/ptx.log" | head -10

san_summary="not run (no compute-sanitizer)"
san_fail=0
san=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ -n "$san" ]; then
	echo "== compute-sanitizer"
	: >"$out/sanitizer.log"
	san_summary=""
	for tool in memcheck racecheck synccheck; do
		timeout 45 "$san" --tool "$tool" "$bin" -test.count 1 \
			-test.run 'CUDAScanMatchesReference/(1x1x1x1|2x37x5x3|2x260x70x17)|CUDAScanReset/1x64|CUDARMSNorm/37x100|CUDAConv1d/.Batch:2_Len:90|CUDACrossEntropy/50x7|CUDAEmbedding|CUDAAdamW.*/clip=1$' \
			>"$out/.san.log" 2>&1
		rc=$?
		cat "$out/.san.log" >>"$out/sanitizer.log"
		# "ERROR SUMMARY: 0 errors" (memcheck, synccheck) or "RACECHECK SUMMARY: 0 hazards displayed"
		line=$(grep -E '(ERROR|RACECHECK) SUMMARY' "$out/.san.log" | tail -1 | sed 's/^========= //')
		if [ -z "$line" ]; then
			line="did not run (exit $rc): $(grep -m1 -E 'Error|error|Unable' "$out/.san.log" | cut -c1-80)"
		elif ! echo "$line" | grep -qE ': 0 (errors|hazards)'; then
			san_fail=1
		fi
		if [ $rc -ne 0 ] && grep -q '^--- FAIL' "$out/.san.log"; then san_fail=1; fi
		rm -f "$out/.san.log"
		san_summary="$san_summary$tool: $line; "
		echo "$tool: $line (exit $rc)"
	done
fi

echo "== benchmarks"
timeout 100 "$bin" -test.run '^$' -test.bench CUDA -test.benchtime 5x -test.v >"$out/bench.log" 2>&1
bench_rc=$?
grep -E '^Benchmark|bench_test' "$out/bench.log"

echo
echo "==================== gpucheck summary ===================="
grep -m1 -o '{Ordinal.*' "$out/tests.log" | sed 's/DriverPath/\n  DriverPath/' | cut -c1-200
for f in tests ptx; do
	p=$(grep -cE '^--- PASS' "$out/$f.log"); x=$(grep -cE '^--- FAIL' "$out/$f.log"); s=$(grep -cE '^--- SKIP' "$out/$f.log")
	printf '%-22s %3d passed %3d failed %3d skipped   (%s)\n' "tests ($f):" "$p" "$x" "$s" "$(grep -E '^--- FAIL' "$out/$f.log" | awk '{print $3}' | paste -sd ' ')"
done
awk '/rel L2/ { for (i = 1; i <= NF; i++) if ($i == "L2") { v = $(i+1) + 0; if (v > m) { m = v; w = $0 } } }
	END { printf "worst rel L2 in tests:  %.3g  (%s)\n", m, substr(w, 1, 110) }' "$out/tests.log"
echo "sanitizer:             $san_summary"
awk '/^BenchmarkCUDAScan\// { delete m; for (i = 1; i <= NF; i++) m[$(i+1)] = $i; split($1, a, "/"); sub(/-[0-9]+$/, "", a[2])
	printf "scan %-17s fwd %s ms  bwd %s ms  floor %s ms (%s MB at %s GB/s copy)  => %s x floor (target <= 2), %s ps/elem\n",
		a[2] ":", m["fwd-ms"], m["bwd-ms"], m["floor-ms"], m["MB-moved"], m["copy-GB/s"], m["x-floor"], m["ps/elem"] }
	/^BenchmarkCUDAGemm\// { split($1, a, "/"); sub(/-[0-9]+$/, "", a[2]); g = g sprintf(" %s %s", a[2], $(NF-1)) }
	END { if (g != "") print "cuBLAS 4096^3 TFLOP/s:" g }' "$out/bench.log"
echo "exit codes: tests $tests_rc, ptx $ptx_rc, bench $bench_rc, sanitizer findings $san_fail; logs in $out"
[ $tests_rc -eq 0 ] && [ $ptx_rc -eq 0 ] && [ $bench_rc -eq 0 ] && [ $san_fail -eq 0 ]
