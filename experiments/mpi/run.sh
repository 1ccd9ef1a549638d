#!/usr/bin/env bash
# Data-parallel efficiency on one host: RANKS ranks × THREADS threads against one
# process × RANKS·THREADS threads, at the same global batch (the one process runs
# grad_accum RANKS), so both runs train bitwise alike; prints tokens/s of each, the
# ratio (target ≥ 0.9) and whether the losses agree bit for bit.
#
# Usage (from anywhere):  experiments/mpi/run.sh [bench|d768|reduce]...   (default: bench d768)
#   bench   the benchmark model: vocabulary 256, d_model 256, 4 layers, batch 8 × 512
#   d768    the mamba-130m shape: vocabulary 50277, d_model 768, 24 layers, batch 2 × 1024
#   reduce  the communication of one step alone (train's BenchmarkDataParallelReduce)
#           for the ladder's sizes, on RANKS ranks
#
# Environment:
#   MPI_PREFIX  Open MPI installed somewhere else: a `--prefix` install (bin/, lib/,
#               etc/) or Debian packages unpacked with `dpkg -x PKG.deb $MPI_PREFIX`
#               (openmpi-bin, libopenmpi3, openmpi-common, libpmix2, libhwloc15,
#               libevent-core-2.1-7, libevent-pthreads-2.1-7, libfabric1, libucx0, ...):
#               the script points PATH, LD_LIBRARY_PATH, OPAL_PREFIX, OPAL_SYSCONFDIR and
#               PMIX_PREFIX at it.
#   RANKS, THREADS (4, 4), STEPS (8; tokens/s is taken over steps WARMUP+1..STEPS),
#   WARMUP (2), BIND (core: each rank bound to THREADS cores; none: not bound),
#   OUT (a temporary directory), BIN (a train binary; default: go build).
set -euo pipefail
cd "$(dirname "$0")/../.."
RANKS=${RANKS:-4} THREADS=${THREADS:-4} STEPS=${STEPS:-8} WARMUP=${WARMUP:-2} BIND=${BIND:-core}
OUT=${OUT:-$(mktemp -d /tmp/mpi-efficiency-XXXX)}
mkdir -p "$OUT"

if [ -n "${MPI_PREFIX:-}" ]; then
	root=$MPI_PREFIX
	[ -d "$root/usr/bin" ] && root=$root/usr # dpkg -x layout
	export OPAL_PREFIX=$root PATH=$root/bin:$PATH
	for d in etc/openmpi ../etc/openmpi etc; do
		if [ -f "$root/$d/openmpi-mca-params.conf" ]; then export OPAL_SYSCONFDIR=$root/$d; break; fi
	done
	libs=$root/lib
	for d in lib/x86_64-linux-gnu lib/x86_64-linux-gnu/openmpi/lib lib/x86_64-linux-gnu/pmix2/lib; do
		[ -d "$root/$d" ] && libs=$root/$d:$libs
	done
	if [ -d "$root/lib/x86_64-linux-gnu/pmix2" ]; then
		export PMIX_PREFIX=$root/lib/x86_64-linux-gnu/pmix2 PMIX_INSTALL_PREFIX=$root/lib/x86_64-linux-gnu/pmix2
	fi
	export LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	for l in "$root/lib/x86_64-linux-gnu/libmpi.so.40" "$root/lib/libmpi.so.40"; do
		if [ -f "$l" ]; then export MAMBA_MPI_LIB=$l; break; fi
	done
fi
mpirun=$(command -v mpirun || true)
if [ -n "${MPI_PREFIX:-}" ]; then
	for m in mpirun mpirun.openmpi orterun; do # Debian's mpirun is a link made at install time
		if [ -x "$root/bin/$m" ]; then mpirun=$root/bin/$m; break; fi
	done
fi
[ -n "$mpirun" ] || { echo "run.sh: no mpirun (install openmpi-bin or set MPI_PREFIX)" >&2; exit 2; }
mpi=("$mpirun" -q --allow-run-as-root -np "$RANKS" -x GOMAXPROCS="$THREADS")
if [ "$BIND" = core ]; then
	mpi+=(--map-by "slot:PE=$THREADS" --bind-to core)
else
	mpi+=(--bind-to none)
fi
echo "mpirun: $mpirun ($("$mpirun" --version | head -1)); $(nproc) cores; out $OUT"

if [ -z "${BIN:-}" ]; then
	BIN=$OUT/train
	CGO_ENABLED=0 go build -o "$BIN" ./cmd/train
fi

# tokps DIR: tokens/s over steps WARMUP+1..STEPS from metrics.jsonl, and the mean
# communication wait per step.
tokps() {
	awk -v w="$WARMUP" -v s="$STEPS" -v tok="$2" '
		{ match($0, /"step":[0-9]+/); st = substr($0, RSTART + 7, RLENGTH - 7) + 0
		  match($0, /"elapsed_s":[0-9.e+-]+/); el[st] = substr($0, RSTART + 12, RLENGTH - 12) + 0
		  if (match($0, /"comm_s":[0-9.e+-]+/)) { c += substr($0, RSTART + 9, RLENGTH - 9); n++ } }
		END { printf "%.0f %.1f", tok * (s - w) / (el[s] - el[w]), n ? 1e3 * c / n : 0 }' "$1/metrics.jsonl"
}

efficiency() {
	local name=$1 batch=$2 len=$3
	shift 3
	local common=("$@" --set data.task=selective_copying --set data.vocab=256 --set data.tokens=16
		--set data.batch_size="$batch" --set data.seq_len="$len" --set data.eval_batches=1
		--set run.max_steps="$STEPS" --set run.log_every=1 --set run.eval_every=0 --set run.checkpoint_every=0
		--set optim.warmup_steps=1)
	local tokens=$((batch * len * RANKS)) one=$OUT/$name-1x$((RANKS * THREADS)) par=$OUT/$name-${RANKS}x$THREADS
	rm -rf "$one" "$par"
	GOMAXPROCS=$((RANKS * THREADS)) "$BIN" "${common[@]}" --set optim.grad_accum="$RANKS" --out "$one" >"$one.log"
	"${mpi[@]}" "$BIN" "${common[@]}" --set optim.grad_accum=1 --out "$par" >"$par.log"
	read -r a _ <<<"$(tokps "$one" "$tokens")"
	read -r b comm <<<"$(tokps "$par" "$tokens")"
	same=no
	if cmp -s <(cut -d, -f1,2,4 "$one/metrics.csv") <(cut -d, -f1,2,4 "$par/metrics.csv"); then same=yes; fi
	printf '%-6s 1 × %-2d threads %8d tok/s | %d ranks × %d threads %8d tok/s, comm %s ms/step | ratio %.3f | losses bitwise equal: %s\n' \
		"$name" $((RANKS * THREADS)) "$a" "$RANKS" "$THREADS" "$b" "$comm" "$(awk -v a="$a" -v b="$b" 'BEGIN{print b/a}')" "$same"
}

reduce() {
	go test -c -o "$OUT/train.test" ./train
	rm -rf "$OUT/reduce"
	TRAIN_RANK_BENCH=1 "${mpi[@]}" --output-filename "$OUT/reduce" "$OUT/train.test" -test.run '^$' \
		-test.bench DataParallelReduce -test.benchtime 5x >/dev/null
	grep -E '^(Benchmark|cpu)' "$OUT"/reduce/*/rank.0/stdout
}

for what in "${@:-bench d768}"; do
	for w in $what; do
		case $w in
		bench) efficiency bench 8 512 --set model.vocab_size=256 --set model.d_model=256 --set model.n_layer=4 ;;
		d768) efficiency d768 2 1024 --set model.vocab_size=50277 --set model.d_model=768 --set model.n_layer=24 ;;
		reduce) reduce ;;
		*) echo "run.sh: unknown experiment $w (bench, d768, reduce)" >&2; exit 2 ;;
		esac
	done
done
