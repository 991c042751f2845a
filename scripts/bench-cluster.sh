#!/usr/bin/env bash
# Reproduces the cluster rows of docs/BENCHMARKS.md: decode tokens/s of the
# embedded engine against a router with two expert workers on this machine,
# at batch 1 and 16, on the FP8 benchmark model (see scripts/bench.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
bin="$build/bin"
model="$root/models/bench-fp8"
[ -f "$model/config.json" ] || { echo "run scripts/bench.sh first (it writes $model)"; exit 1; }
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

run() {  # label, extra flags...
  local label=$1; shift
  for batch in 1 16; do
    for run in 1 2 3; do
      "$bin/moe-generate" --model "$model" --prompt-ids 1,100,200,300,400,500,600,700 \
        --max-tokens 64 --ignore-eos --batch "$batch" --threads 2 "$@" 2>&1 >/dev/null |
        sed "s/^/$label: /"
    done
  done
}

run embedded
for plan in even:w0=700MB,w1=700MB uneven:w0=700MB,w1=500MB; do
  name=${plan%%:*}
  "$bin/moe-plan" --model "$model" --workers "${plan#*:}" --out "$work/$name.json" >/dev/null
  workers=""
  for id in w0 w1; do
    "$bin/moe-expert-worker" --model "$model" --plan "$work/$name.json" --worker-id "$id" \
      --threads 2 >"$work/$id.out" 2>/dev/null &
    pids+=($!)
  done
  for id in w0 w1; do
    until grep -q "listening on" "$work/$id.out"; do sleep 0.1; done
    workers+="$id=$(awk '{print $NF}' "$work/$id.out"),"
  done
  run "cluster $name" --plan "$work/$name.json" --workers "$workers"
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true; pids=()
done
