#!/usr/bin/env bash
# The GPU check, on a machine with an NVIDIA GPU, from the bundle that
# scripts/gpu-bundle.sh made on a build machine. It builds nothing but the
# toolchain probe, and ends within LIMIT seconds in all (default 510): each
# part runs within its own limit and the time left, and a part with no time
# left is reported as not run. It writes six files to OUT_DIR:
#
#   summary.txt       each part's verdict and seconds, the tests' tallies
#   probe.txt         nvidia-smi, then the toolchain probe built with this
#                     machine's nvcc (cuBLASLt, NCCL headers, memory pools)
#   unit_tests.log    ctest --timeout 60 -V over every test of tests/gpu
#   benchmark.txt     moe_layer_benchmark at the Skywork-MoE layer shape
#   router_tests.log  gpu_model_runner_test, and cluster_test's GPU cases
#   sanitizer.log     compute-sanitizer memcheck on small expert, paged
#                     attention and gating cases
#
# Exits 0 when every part passed.
#   usage: scripts/gpu-check.sh OUT_DIR [BUNDLE_DIR]   (default build/gpu-bundle)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: scripts/gpu-check.sh OUT_DIR [BUNDLE_DIR]}
bundle=$(cd "${2:-$root/build/gpu-bundle}" 2>/dev/null && pwd) || bundle=
if [[ -z "$bundle" || ! -x "$bundle/run" ]]; then
  echo "gpu-check: no bundle; make one with scripts/gpu-bundle.sh" >&2
  exit 2
fi
mkdir -p "$out"
summary=$out/summary.txt
: >"$summary"
deadline=$((SECONDS + ${LIMIT:-510}))
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0

# part NAME LIMIT LOG COMMAND...: COMMAND within LIMIT seconds or the time
# left, whichever is less, its output appended to LOG; its verdict to
# summary.txt.
part() {
  local name=$1 limit=$2 log=$3
  shift 3
  local left=$((deadline - SECONDS - 5))
  if ((left < 10)); then
    printf '%-26s %s\n' "$name" "NOT RUN (no time left)" >>"$summary"
    status=1
    return
  fi
  if ((limit > left)); then limit=$left; fi
  local began=$SECONDS rc=0 verdict=passed
  echo "=== $name (limit ${limit}s): $*" >>"$log"
  timeout -k 5 "$limit" "$@" >>"$log" 2>&1 || rc=$?
  case $rc in
    0) ;;
    77) verdict="SKIPPED (no GPU seen)" status=1 ;;
    124 | 137) verdict="TIMED OUT after ${limit}s" status=1 ;;
    *) verdict="FAILED (exit $rc)" status=1 ;;
  esac
  printf '%-26s %-28s %4ds\n' "$name" "$verdict" $((SECONDS - began)) \
    >>"$summary"
}

# The probe, built with this machine's nvcc and NCCL headers where they
# are, else the bundle's copy.
probe() {
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem,driver_version,compute_mode \
    --format=csv || true
  local nvcc=nvcc nccl flags=()
  if ! command -v nvcc >/dev/null; then nvcc=/usr/local/cuda/bin/nvcc; fi
  "$nvcc" --version | tail -2 || echo "no nvcc"
  nccl=$(
    for dir in /usr/local/cuda/include /usr/include; do
      if [[ -e "$dir/nccl.h" ]]; then echo "$dir" && exit; fi
    done
    python3 -c 'import nvidia.nccl; print(list(nvidia.nccl.__path__)[0] + "/include")' 2>/dev/null
  )
  if [[ -n "$nccl" && -e "$nccl/nccl.h" ]]; then
    echo "nccl.h: $nccl"
    flags=(-DMOE_PROBE_NCCL "-I$nccl" "-L$nccl/../lib" -l:libnccl.so.2)
  else
    echo "nccl.h: not found"
  fi
  echo "common-licenses (test models' tokenizer corpus):" \
    "$(ls /usr/share/common-licenses 2>/dev/null | wc -l) files"
  if "$nvcc" -std=c++17 -O2 -o "$work/toolchain_probe" \
    "$root/tests/gpu/toolchain_probe.cu" -lcublasLt "${flags[@]}"; then
    echo "probe built with $nvcc:"
    "$bundle/run" "$work/toolchain_probe"
  else
    echo "the probe did not build here; the bundle's:"
    "$bundle/run" "$bundle/bin/toolchain_probe"
  fi
}
export -f probe
export root bundle work

# ctest over the bundle's tests of tests/gpu (gpu-tests.txt: name, binary).
{
  while read -r name binary; do
    echo "add_test($name \"$bundle/run\" \"$bundle/bin/$binary\")"
    echo "set_tests_properties($name PROPERTIES SKIP_RETURN_CODE 77" \
      "ENVIRONMENT NCCL_DEBUG=WARN)"
  done <"$bundle/gpu-tests.txt"
} >"$work/CTestTestfile.cmake"

part probe 90 "$out/probe.txt" bash -c probe
part unit_tests 240 "$out/unit_tests.log" \
  ctest --test-dir "$work" --timeout 60 -V
# Before the tests that start processes, which could hang.
part benchmark 150 "$out/benchmark.txt" \
  "$bundle/run" "$bundle/bin/moe_layer_benchmark"
part gpu_model_runner_test 120 "$out/router_tests.log" \
  "$bundle/run" "$bundle/bin/gpu_model_runner_test"
part cluster_test 150 "$out/router_tests.log" \
  "$bundle/run" "$bundle/bin/cluster_test" \
  --gtest_filter='*Gpu*:*DeviceTest*:NcclClusterTest.*'
sanitizer=$(command -v compute-sanitizer ||
  echo /usr/local/cuda/bin/compute-sanitizer)
for case in \
  "gpu_experts_test GpuExpertsTest.Fp8MatchesReferenceAtSmallShapes:GpuExpertsTest.Bf16FallbackMatchesReference:GpuExpertsTest.RejectsMissing*" \
  "paged_attention_test PagedAttentionTest.GroupedQuery*:PagedAttentionTest.SlidingWindow*:PagedAttentionTest.Rejects*" \
  "moe_gating_test *"; do
  read -r binary filter <<<"$case"
  part "memcheck $binary" 60 "$out/sanitizer.log" \
    "$bundle/run" "$sanitizer" --tool memcheck --error-exitcode 3 \
    "$bundle/bin/$binary" --gtest_filter="$filter"
done

{
  echo
  grep -h -E "tests passed|tests failed|\*\*\*(Failed|Skipped|Timeout)" \
    "$out/unit_tests.log"
  grep -h -E "\[  (PASSED|SKIPPED) +\] [0-9]+ tests?|\[  FAILED  \] |ERROR SUMMARY" \
    "$out/unit_tests.log" "$out/router_tests.log" "$out/sanitizer.log"
} >>"$summary" 2>/dev/null
cat "$summary"
exit "$status"
