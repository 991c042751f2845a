#!/usr/bin/env bash
# Packs, on a build machine (after a build with CUDA), everything the GPU
# checks run, for a GPU machine that has the driver, the CUDA toolkit and
# PyTorch but none of the project's build dependencies. Nothing is compiled
# there: scripts/gpu-check.sh and scripts/gpu-peer.sh run the bundle.
#
# bin/: every test of tests/gpu (gpu-tests.txt lists them), the layer
# benchmark, the toolchain probe, the router's and the cluster's GPU tests,
# the programs those tests and tests/gpu/torch_peer.py start, and Debian's
# spm_train (test models train their tokenizer with it); stripped.
# lib/: the shared libraries they load, except the C and C++ runtimes and
# the CUDA libraries (cudart, cuBLASLt, NCCL), which come from the GPU
# machine. env.sh sets the programs' paths; `run PROGRAM ARGS...` runs one
# with them.
#
#   scripts/gpu-bundle.sh [OUT_DIR]   (default build/gpu-bundle)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
out=${1:-$build/gpu-bundle}
if [[ ! -x "$build/bin/moe_layer_benchmark" ]]; then
  echo "gpu-bundle: no CUDA build in $build (needs nvcc at configure time)" >&2
  exit 1
fi
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib"

(cd "$build/tests/gpu" && ctest --show-only=json-v1) | python3 -c '
import json, os, sys
for test in json.load(sys.stdin)["tests"]:
    print(test["name"], os.path.basename(test["command"][0]))' \
  >"$out/gpu-tests.txt"
programs=($(awk '{ print $2 }' "$out/gpu-tests.txt" | sort -u)
  moe_layer_benchmark toolchain_probe gpu_model_runner_test cluster_test
  moe-router moe-expert-worker moe-generate moe-make-model moe-plan)
for program in "${programs[@]}"; do
  strip -o "$out/bin/$program" "$build/bin/$program"
done
strip -o "$out/bin/spm_train" "$(command -v spm_train)"
cp "$build/bin/libmoe_sentencepiece_shim.so" "$out/bin/"
for file in "$out"/bin/*; do ldd "$file"; done |
  awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u |
  grep -v -E '/(libc|libm|libdl|libpthread|librt|ld-linux-x86-64|libstdc\+\+|libgcc_s)\.so|^/usr/local/cuda' |
  while read -r library; do cp -L "$library" "$out/lib/"; done

cat >"$out/env.sh" <<'EOF'
# Sourced: the bundled programs' paths. PATH gains bin/ (spm_train);
# LD_LIBRARY_PATH the bundle's libraries, the CUDA toolkit's, and NCCL,
# cuBLAS and the CUDA runtime from PyTorch's wheels where the toolkit lacks
# them.
bundle_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bundle_paths=("$bundle_dir/lib")
for dir in /usr/local/cuda/lib64 /usr/local/cuda/lib; do
  if [[ -d "$dir" ]]; then bundle_paths+=("$dir"); fi
done
while read -r dir; do
  bundle_paths+=("$dir")
done < <(python3 - 2>/dev/null <<'PY' || true
import os
import nvidia
for base in nvidia.__path__:
    for sub in ("nccl/lib", "cu13/lib", "cublas/lib", "cuda_runtime/lib"):
        if os.path.isdir(os.path.join(base, sub)):
            print(os.path.join(base, sub))
PY
)
LD_LIBRARY_PATH="$(IFS=:; echo "${bundle_paths[*]}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
PATH="$bundle_dir/bin:$PATH"
export LD_LIBRARY_PATH PATH
EOF

cat >"$out/run" <<'EOF'
#!/usr/bin/env bash
# run PROGRAM ARGS...: PROGRAM with the bundle's paths (env.sh).
source "$(dirname "$0")/env.sh"
exec "$@"
EOF
chmod +x "$out/run"
du -sh "$out"
