#!/usr/bin/env bash
# Quickstart tuning sweep: each variant of configs/quickstart.json trains on its own
# two cores (taskset) for at most $LIMIT seconds; metrics.jsonl of each run shows when
# validation accuracy passed 95%. Usage: sweep.sh TRAIN_BINARY OUT_DIR
set -u
bin=$1 out=$2 LIMIT=${LIMIT:-200}
common=(--set optim.schedule=constant --set optim.warmup_steps=30 --set run.max_steps=100000
        --set run.eval_every=25 --set run.log_every=25 --set run.checkpoint_every=0 --set data.eval_batches=2)
variants=(
  "A --set data.seq_len=64 --set data.tokens=8 --set data.batch_size=32 --set optim.lr=3e-3"
  "B --set data.seq_len=32 --set data.tokens=4 --set data.batch_size=32 --set optim.lr=3e-3"
  "C --set data.seq_len=64 --set data.tokens=8 --set data.batch_size=16 --set optim.lr=5e-3"
  "D --set data.seq_len=48 --set data.tokens=6 --set data.batch_size=32 --set optim.lr=5e-3 --set model.d_model=32"
  "E --set data.seq_len=64 --set data.tokens=8 --set data.batch_size=16 --set optim.lr=2e-3 --set model.d_model=128"
  "F --set data.seq_len=32 --set data.tokens=8 --set data.batch_size=32 --set optim.lr=3e-3"
  "G --set data.seq_len=64 --set data.tokens=4 --set data.batch_size=32 --set optim.lr=5e-3"
)
i=0
for v in "${variants[@]}"; do
  set -- $v
  name=$1; shift
  taskset -c $((2*i)),$((2*i+1)) env GOMAXPROCS=2 timeout "$LIMIT" "$bin" "${common[@]}" "$@" --out "$out/$name" > "$out/$name.log" 2>&1 &
  i=$((i+1))
done
wait
