#!/usr/bin/env bash
# Runs the quickstart exactly as `train` with no arguments does, plus harder variants,
# each pinned to its own two cores; prints wall time and final accuracy of each.
# Usage: validate.sh TRAIN_BINARY OUT_DIR
set -u
bin=$1 out=$2
variants=(
  "default"
  "tok6 --set data.tokens=6"
  "len48 --set data.seq_len=48"
  "tok8 --set data.tokens=8 --set run.max_steps=1000"
)
i=0
for v in "${variants[@]}"; do
  set -- $v
  name=$1; shift
  ( start=$(date +%s)
    taskset -c $((2*i)),$((2*i+1)) env GOMAXPROCS=2 "$bin" "$@" --out "$out/$name" > "$out/$name.log" 2>&1
    echo "$name: exit $? wall $(( $(date +%s) - start )) s; $(grep 'eval step' "$out/$name.log" | tail -1)" ) &
  i=$((i+1))
done
wait
