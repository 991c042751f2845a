#!/usr/bin/env bash
# moe-bench as a user runs it: its flag errors and an unreachable gateway,
# then (when BIN_DIR has moe-gateway) closed- and open-loop runs against
# moe-router and moe-gateway serving a tiny random Mixtral FP8 model on
# 127.0.0.1, checked from the JSON report.
# Exits 77 (skipped) after the first part when there is no moe-gateway.
set -u
bin="$1"
unset MOE_ADDRESS

source "$(dirname "$0")/checks.sh"
make_work_dir

# json_check NAME FILE EXPRESSION: a Python expression over the report `r`
# (and `math`) must be true.
json_check() {
  local name=$1 file=$2 expression=$3
  if python3 -c "
import json, math, sys
r = json.load(open(sys.argv[1]))
sys.exit(0 if ($expression) else 1)" "$file"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); echo "FAIL: $name: not ($expression) in:"; cat "$file"
  fi
}

bench="$bin/moe-bench"
expect_error "no address" 'INVALID_ARGUMENT: --address (or $MOE_ADDRESS) is needed' \
  "$bench" --requests 1
# Flags are checked before the gateway is called (nothing listens on port 1).
expect_error "bad prompt distribution" \
  'INVALID_ARGUMENT: --prompt-tokens: "uniform:12:4" has MIN above MAX' \
  "$bench" --address 127.0.0.1:1 --requests 1 --prompt-tokens uniform:12:4
expect_error "bad output length" \
  'INVALID_ARGUMENT: --output-tokens: "six" is not a token count' \
  "$bench" --address 127.0.0.1:1 --requests 1 --output-tokens six
expect_error "no stop condition" "INVALID_ARGUMENT: give --requests N and/or --duration" \
  "$bench" --address 127.0.0.1:1
expect_error "negative rate" "INVALID_ARGUMENT: --rate must be" \
  "$bench" --address 127.0.0.1:1 --requests 1 --rate -2
expect_error "positional argument" 'INVALID_ARGUMENT: unexpected argument "run"' \
  "$bench" --address 127.0.0.1:1 --requests 1 run
expect_error "unreachable" \
  "UNAVAILABLE: cannot get the model's info from 127.0.0.1:1" \
  "$bench" --address 127.0.0.1:1 --requests 1 --json "$work/none.json"
if [ -s "$work/out" ] || [ -e "$work/none.json" ]; then
  failed=$((failed + 1)); echo "FAIL: unreachable: a report was written"; cat "$work/out"
else
  passed=$((passed + 1))
fi
expect_error "unreachable from \$MOE_ADDRESS" "UNAVAILABLE: cannot get the model's info" \
  env MOE_ADDRESS=127.0.0.1:1 "$bench" --requests 1
expect_help_flag "$bench" --request_timeout

skip_without_gateway
start_tiny_gateway --max-position 256

check "closed loop" "$bench" --address "$address" --concurrency 4 --requests 8 \
  --prompt-tokens uniform:4:12 --output-tokens 6 --seed 3 --json "$work/closed.json" \
  --token-arrivals "$work/arrivals.txt"
if grep -q "8 completed, 0 failed" "$work/out" && grep -q "^time to first token" "$work/out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: closed loop table:"; cat "$work/out"
fi
report="$work/closed.json"
json_check "completed" "$report" 'r["completed"] == 8 and r["failed"] == 0 and r["errors"] == {}'
json_check "output tokens" "$report" 'r["output_tokens"] == 48 and r["output_tokens_per_s"] > 0'
json_check "prompt tokens" "$report" '8 * 4 <= r["prompt_tokens"] <= 8 * 12'
json_check "rates" "$report" 'r["wall_time_s"] > 0 and math.isclose(r["requests_per_s"], 8 / r["wall_time_s"])'
for metric in ttft_ms itl_ms e2e_latency_ms; do
  json_check "$metric percentiles" "$report" \
    "0 < r['$metric']['p50'] <= r['$metric']['p90'] <= r['$metric']['p99']"
done
json_check "samples" "$report" 'r["ttft_ms"]["count"] == 8 and r["e2e_latency_ms"]["count"] == 8 and 0 < r["itl_ms"]["count"] <= 40'
# Every token of the 8 requests, at a Unix time of this run, in order per request.
if python3 - "$work/arrivals.txt" <<'PY'
import sys, time
rows = [line.split() for line in open(sys.argv[1])]
per = {}
for r, t, k in rows:
    per.setdefault(int(r), []).append((float(t), int(k)))
now = time.time()
ok = sorted(per) == list(range(8)) and all(
    sum(k for _, k in a) == 6 and all(now - 600 < t <= now for t, _ in a) and
    [t for t, _ in a] == sorted(t for t, _ in a) for a in per.values())
sys.exit(0 if ok else 1)
PY
then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: token arrivals:"; head "$work/arrivals.txt"
fi
json_check "settings" "$report" 'r["settings"]["concurrency"] == 4 and r["settings"]["mode"] == "closed_loop" and r["settings"]["prompt_tokens"] == "uniform:4:12" and r["settings"]["output_tokens"] == "6" and r["settings"]["seed"] == 3'

check "open loop" "$bench" --address "$address" --rate 20 --concurrency 2 --requests 4 \
  --prompt-tokens 5 --output-tokens 3 --warmup 0 --json "$work/open.json"
json_check "open loop" "$work/open.json" 'r["completed"] == 4 and r["output_tokens"] == 12 and r["prompt_tokens"] == 20 and r["settings"]["mode"] == "open_loop" and r["settings"]["rate"] == 20'

# Failed requests are reported, and the run still succeeds.
check "timeouts" "$bench" --address "$address" --concurrency 2 --requests 2 --warmup 0 \
  --prompt-tokens 4 --output-tokens 200 --request-timeout 0.001 --json "$work/timeouts.json"
json_check "timeouts reported" "$work/timeouts.json" 'r["completed"] == 0 and r["failed"] == 2 and r["errors"] == {"DEADLINE_EXCEEDED": 2} and r["ttft_ms"]["p50"] is None'
if grep -q "DEADLINE_EXCEEDED" "$work/out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: the table lacks the errors:"; cat "$work/out"
fi

expect_error "beyond the context" \
  "INVALID_ARGUMENT: --prompt-tokens 200 and --output-tokens 100 reach 200 + 100 = 300 tokens, more than the model's context length of 256" \
  "$bench" --address "$address" --requests 1 --prompt-tokens 200 --output-tokens 100

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
