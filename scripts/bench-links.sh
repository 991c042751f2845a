#!/usr/bin/env bash
# Reproduces the activation-link rows of docs/BENCHMARKS.md: the cost of one
# router-to-workers round trip per layer with Compute RPCs against activation
# links over gRPC streams, on a 3-layer model of hidden 64 where the experts'
# compute is small, three workers of one thread each.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BUILD_DIR:-$root/build}/bin
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

"$bin/moe-make-model" --out "$work/model" --dtype fp8 --layers 3 --experts 8 \
  --hidden 64 --intermediate 2048 >/dev/null 2>&1
"$bin/moe-plan" --model "$work/model" --workers w0=5MB,w1=4MB,w2=3MB \
  --out "$work/plan.json" >/dev/null
workers=""
for id in w0 w1 w2; do
  "$bin/moe-expert-worker" --model "$work/model" --plan "$work/plan.json" \
    --worker-id "$id" --threads 1 >"$work/$id.out" 2>/dev/null &
  pids+=($!)
done
for id in w0 w1 w2; do
  until grep -q "listening on" "$work/$id.out"; do sleep 0.1; done
  workers+="$id=$(awk '{print $NF}' "$work/$id.out"),"
done
for run in 1 2 3; do
  for link in rpc stream; do
    for batch in 1 16; do
      "$bin/moe-generate" --model "$work/model" --prompt-ids 1,2,3,4,5,6,7,8 \
        --max-tokens 256 --ignore-eos --batch "$batch" --threads 1 \
        --plan "$work/plan.json" --workers "$workers" --activation-link "$link" \
        2>&1 >/dev/null | grep -E "decode|worker w0" | sed "s/^/$link batch $batch: /"
    done
  done
done
