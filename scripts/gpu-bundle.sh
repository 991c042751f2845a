#!/usr/bin/env bash
# Packs, for a GPU machine without gRPC or Abseil, the GPU tests that need
# them (the router's forward pass on a GPU, the cluster on a GPU) and the
# programs tests/gpu/torch_peer.py runs: stripped, with the shared libraries
# they load from outside the C library and the CUDA toolkit, and
# run-gpu-tests.sh to run the tests there.
#   scripts/gpu-bundle.sh [OUT_DIR]   (default build/gpu-bundle; after a build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
out=${1:-$build/gpu-bundle}
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib"
for program in gpu_model_runner_test cluster_test moe-router moe-expert-worker \
  moe-generate moe-make-model moe-plan; do
  strip -o "$out/bin/$program" "$build/bin/$program"
done
cp "$build/bin/libmoe_sentencepiece_shim.so" "$out/bin/"
for file in "$out"/bin/*; do ldd "$file"; done |
  awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u |
  grep -v -E '/(libc|libm|libdl|libpthread|librt|ld-linux-x86-64)\.so|^/usr/local/cuda' |
  while read -r library; do cp -L "$library" "$out/lib/"; done

cat >"$out/env.sh" <<'EOF'
# Sourced: the library path of the bundled programs, and only theirs (the
# bundle's libraries may be older than those Python's packages need): the
# bundle's, the CUDA toolkit's, and NCCL and the CUDA runtime from PyTorch's
# wheels where the toolkit lacks them.
bundle_paths=("$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib")
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
export LD_LIBRARY_PATH
EOF

cat >"$out/run-gpu-tests.sh" <<'EOF'
#!/usr/bin/env bash
# Runs the bundled GPU tests with the bundled libraries, each within a time
# limit; logs to OUT_DIR.
#   run-gpu-tests.sh [OUT_DIR]   (default: logs beside this script)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/logs}
mkdir -p "$out"
source "$here/env.sh"
status=0
timeout 240 "$here/bin/gpu_model_runner_test" \
  >"$out/gpu_model_runner_test.log" 2>&1 || status=1
timeout 300 "$here/bin/cluster_test" \
  --gtest_filter='*Gpu*:*DeviceTest*:NcclClusterTest.*' \
  >"$out/cluster_test.log" 2>&1 || status=1
grep -h -E "^\[==========\] .* ran|^\[  (PASSED|FAILED)  \]" "$out"/*.log
exit "$status"
EOF
chmod +x "$out/run-gpu-tests.sh"
du -sh "$out"
