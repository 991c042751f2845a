#!/usr/bin/env bash
# The PyTorch comparison, on a machine with an NVIDIA GPU, torch and
# transformers, from the bundle that scripts/gpu-bundle.sh made on a build
# machine: tests/gpu/torch_peer.py (moe-serve's cluster on the GPU against
# MixtralForCausalLM on the same checkpoint: logits, greedy tokens, decode
# tokens/s beside eager and torch.compile'd PyTorch), ended after LIMIT
# seconds (default 420). Writes torch_peer.log and torch_peer.json to
# OUT_DIR; exits with the script's status (124 when it ran out of time).
#   usage: scripts/gpu-peer.sh OUT_DIR [BUNDLE_DIR]   (default build/gpu-bundle)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: scripts/gpu-peer.sh OUT_DIR [BUNDLE_DIR]}
bundle=${2:-$root/build/gpu-bundle}
if [[ ! -x "$bundle/run" ]]; then
  echo "gpu-peer: no bundle at $bundle; make one with scripts/gpu-bundle.sh" >&2
  exit 2
fi
mkdir -p "$out"
PYTHONUNBUFFERED=1 timeout -k 5 "${LIMIT:-420}" python3 \
  "$root/tests/gpu/torch_peer.py" --bin "$bundle/bin" --out "$out" 2>&1 |
  tee "$out/torch_peer.log"
exit "${PIPESTATUS[0]}"
