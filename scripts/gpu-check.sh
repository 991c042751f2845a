#!/usr/bin/env bash
# The GPU checks, on a machine with an NVIDIA GPU: builds tests/gpu as a
# project of its own (it needs only CUDA and GoogleTest), runs every GPU test
# and the Skywork-MoE layer benchmark, and writes their logs to OUT_DIR.
#
# usage: scripts/gpu-check.sh [OUT_DIR]
#   ARCH=90            CUDA architectures to build for (default 90: H100/H200)
#   GTEST_SOURCE=DIR   a GoogleTest source tree, where none is installed
#                      (default: .gtest in the checkout when present, e.g. a
#                      copy of Debian's /usr/src/googletest)
#   QUICK=1            the benchmark's small smoke shapes
#   BUNDLE=DIR         also run the GPU tests that need gRPC, from a bundle
#                      made by scripts/gpu-bundle.sh on a build machine
#   PEER=1             with BUNDLE, only tests/gpu/torch_peer.py (the bundled
#                      programs against PyTorch's MixtralForCausalLM; needs
#                      torch and transformers), instead of the rest
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build-gpu/out}
build=${BUILD_DIR:-$root/build-gpu}
mkdir -p "$out"

flags=(-DCMAKE_BUILD_TYPE=Release "-DCMAKE_CUDA_ARCHITECTURES=${ARCH:-90}")
if [[ -z "${GTEST_SOURCE:-}" && -d "$root/.gtest" ]]; then
  GTEST_SOURCE=$root/.gtest
fi
if [[ -n "${GTEST_SOURCE:-}" ]]; then
  flags+=("-DGTEST_SOURCE_DIR=$GTEST_SOURCE")
fi
# NCCL for nccl_pipe_test: beside the CUDA toolkit, or PyTorch's wheel.
if [[ ! -e /usr/local/cuda/include/nccl.h ]]; then
  nccl=$(python3 -c 'import nvidia.nccl; print(list(nvidia.nccl.__path__)[0])' 2>/dev/null || true)
  if [[ -n "$nccl" && -e "$nccl/include/nccl.h" ]]; then
    flags+=("-DMOE_NCCL_INCLUDE_DIR=$nccl/include"
            "-DMOE_NCCL_LIBRARY=$(ls "$nccl"/lib/libnccl.so* | head -1)")
  fi
fi
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi

if [[ -n "${PEER:-}" ]]; then
  PYTHONUNBUFFERED=1 python3 "$root/tests/gpu/torch_peer.py" \
    --bin "${BUNDLE:?PEER needs BUNDLE}/bin" --out "$out" 2>&1 |
    tee "$out/torch_peer.log"
  exit "${PIPESTATUS[0]}"
fi

nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem,driver_version,compute_mode \
  --format=csv | tee "$out/device.txt" || true
cmake -S "$root/tests/gpu" -B "$build" "${generator[@]}" "${flags[@]}" \
  >"$out/configure.log"
cmake --build "$build" -j "$(nproc)" >"$out/build.log" 2>&1 ||
  { tail -50 "$out/build.log"; exit 1; }

status=0
(cd "$build" && NCCL_DEBUG=WARN ctest --timeout 120 --output-on-failure) \
  >"$out/tests.log" 2>&1 || status=$?
grep -E "tests passed|tests failed|Failed|\*\*\*" "$out/tests.log" || true

# Before the bundle's tests, which start processes that could hang.
benchmark_flags=()
if [[ -n "${QUICK:-}" ]]; then benchmark_flags=(--quick); fi
timeout 300 "$build/moe_layer_benchmark" "${benchmark_flags[@]}" |
  tee "$out/benchmark.txt" || status=1

if [[ -n "${BUNDLE:-}" ]]; then
  "$BUNDLE/run-gpu-tests.sh" "$out/bundle" || status=$?
fi
exit "$status"
