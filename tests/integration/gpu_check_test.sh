#!/usr/bin/env bash
# scripts/gpu-bundle.sh and scripts/gpu-check.sh as a GPU machine runs them,
# on whatever this machine has (without a GPU the GPU tests skip): the
# bundle holds every test of tests/gpu; the check writes its six files,
# gives every part a verdict, keeps to its overall limit, and leaves the
# parts it has no time for as not run.
#   gpu_check_test.sh SOURCE_DIR BUILD_DIR
set -u
source_dir=$1
build_dir=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$(dirname "$0")/checks.sh"

check "gpu-bundle" env BUILD_DIR="$build_dir" "$source_dir/scripts/gpu-bundle.sh" "$work/bundle"
tests=$(cd "$build_dir/tests/gpu" && ctest -N | grep -c "Test *#")
if [[ "$(wc -l <"$work/bundle/gpu-tests.txt")" -eq "$tests" ]] &&
  [[ -x "$work/bundle/bin/spm_train" && -x "$work/bundle/bin/moe_layer_benchmark" ]]; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: the bundle lacks tests or programs"
  cat "$work/bundle/gpu-tests.txt"; ls "$work/bundle/bin"
fi
if "$work/bundle/run" spm_train --help 2>&1 | grep -q -- --vocab_size; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: the bundle's spm_train does not run"
fi

# Whole: every part has a verdict, within the limit (bash counts whole
# seconds, so the script's and this test's clocks may each be a second off).
began=$SECONDS
LIMIT=240 "$source_dir/scripts/gpu-check.sh" "$work/check" "$work/bundle" >/dev/null 2>&1
elapsed=$((SECONDS - began))
files=(summary.txt probe.txt unit_tests.log benchmark.txt router_tests.log sanitizer.log)
for file in "${files[@]}"; do
  if [[ -s "$work/check/$file" ]]; then passed=$((passed + 1)); else
    failed=$((failed + 1)); echo "FAIL: no $file"; fi
done
if [[ "$(ls "$work/check" | wc -l)" -eq ${#files[@]} ]]; then passed=$((passed + 1)); else
  failed=$((failed + 1)); echo "FAIL: other files than the six:"; ls "$work/check"; fi
for name in probe unit_tests benchmark gpu_model_runner_test cluster_test \
  "memcheck gpu_experts_test" "memcheck paged_attention_test" "memcheck moe_gating_test"; do
  if grep -E "^$name +(passed|FAILED|SKIPPED|TIMED OUT)" "$work/check/summary.txt" >/dev/null; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); echo "FAIL: no verdict for $name"; cat "$work/check/summary.txt"
  fi
done
if grep -q "out of $tests" "$work/check/unit_tests.log"; then passed=$((passed + 1)); else
  failed=$((failed + 1)); echo "FAIL: ctest did not run the $tests GPU tests"; tail "$work/check/unit_tests.log"; fi
if ((elapsed <= 242)); then passed=$((passed + 1)); else
  failed=$((failed + 1)); echo "FAIL: the check took ${elapsed}s, over its 240s limit"; fi

# Short of time: it stops within the limit and says what did not run.
began=$SECONDS
LIMIT=20 "$source_dir/scripts/gpu-check.sh" "$work/short" "$work/bundle" >/dev/null 2>&1
elapsed=$((SECONDS - began))
if ((elapsed <= 22)) && grep -q "NOT RUN (no time left)" "$work/short/summary.txt"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: LIMIT=20 took ${elapsed}s or ran every part"
  cat "$work/short/summary.txt"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
