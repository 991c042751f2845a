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

cat >"$out/run-gpu-tests.sh" <<'EOF'
#!/usr/bin/env bash
# Runs the bundled GPU tests with the bundled libraries; logs to OUT_DIR.
#   run-gpu-tests.sh [OUT_DIR]   (default: logs beside this script)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/logs}
mkdir -p "$out"
export LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
status=0
"$here/bin/gpu_model_runner_test" >"$out/gpu_model_runner_test.log" 2>&1 ||
  status=1
"$here/bin/cluster_test" --gtest_filter='*Gpu*:*DeviceTest*:NcclClusterTest.*' \
  >"$out/cluster_test.log" 2>&1 || status=1
grep -h -E "^\[==========\] .* ran|^\[  (PASSED|FAILED)  \]" "$out"/*.log
exit "$status"
EOF
chmod +x "$out/run-gpu-tests.sh"
du -sh "$out"
