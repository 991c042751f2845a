#!/usr/bin/env bash
# Reproduces docs/BENCHMARKS.md: memory bandwidth, the expert FFN benchmark,
# and decode tokens/s of the FP8 benchmark model (hidden 1024, 8 layers, 16
# experts, intermediate 2816, vocab 32000), written once under models/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build" -G Ninja >/dev/null
cmake --build "$build" -j 2 >/dev/null
model="$root/models/bench-fp8"
if [ ! -f "$model/config.json" ]; then
  # 32000 pieces need more text than the license texts: the packages'
  # copyright files.
  corpus=$(ls /usr/share/doc/*/copyright | paste -sd,)
  "$build/bin/moe-make-model" --out "$model" --arch mixtral --dtype fp8 \
    --hidden 1024 --layers 8 --heads 16 --kv-heads 4 --experts 16 \
    --intermediate 2816 --vocab 32000 --max-position 4096 --corpus "$corpus" >/dev/null
fi
"$build/bin/memory_bandwidth_benchmark"
"$build/bin/expert_ffn_benchmark"
for run in 1 2 3; do
  "$build/bin/moe-generate" --model "$model" --prompt "The license grants you the right to copy" \
    --max-tokens 128 --ignore-eos >/dev/null
done
