#!/usr/bin/env bash
# moe-cli as a user runs it: its errors, then (when BIN_DIR has moe-gateway)
# health, info, tokenize, detokenize, streamed generation and API keys against moe-router and
# moe-gateway serving a tiny random Mixtral FP8 model on 127.0.0.1.
# Exits 77 (skipped) after the first part when there is no moe-gateway.
set -u
export LC_ALL=C.UTF-8  # ${text:i:n} counts characters, not bytes
bin="$1"
unset MOE_ADDRESS MOE_API_KEY

source "$(dirname "$0")/checks.sh"
make_work_dir

expect_output() {  # expect_output NAME EXPECTED FILE
  if [ "$(cat "$3")" == "$2" ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); echo "FAIL: $1: expected '$2', got:"; cat "$3"
  fi
}

cli="$bin/moe-cli"
expect_error "no address" 'INVALID_ARGUMENT: --address (or $MOE_ADDRESS) is needed' "$cli" info
expect_error "unknown command" "INVALID_ARGUMENT: expected generate PROMPT" "$cli" --address 127.0.0.1:1 list
expect_error "stop without value" "INVALID_ARGUMENT: --stop needs a value" \
  "$cli" --address 127.0.0.1:1 generate x --stop
# Nothing listens on port 1: refused, retried, then reported.
expect_error "unreachable" "UNAVAILABLE: .*(after 2 attempts)" "$cli" --address 127.0.0.1:1 --retries 1 info
expect_error "unreachable from \$MOE_ADDRESS" "UNAVAILABLE" env MOE_ADDRESS=127.0.0.1:1 "$cli" --retries 0 info
expect_error "health of nothing" "UNAVAILABLE" "$cli" --address 127.0.0.1:1 health
expect_help_flag "$cli" --deadline_ms

skip_without_gateway
start_tiny_gateway
export MOE_ADDRESS="$address"

check "health" "$cli" health
expect_output "health says" "SERVING" "$work/out"
expect_error "health of an unknown service" "NOT_FOUND" "$cli" health no.such.Service
check "info" "$cli" info
if grep -qx "architecture: mixtral" "$work/out" && grep -qx "vocab_size: 500" "$work/out" \
    && grep -qx "num_experts: 8" "$work/out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: info printed:"; cat "$work/out"
fi

check "tokenize" "$cli" tokenize "The licensee may copy"
ids=$(cat "$work/out")
check "detokenize" "$cli" detokenize "$ids"
expect_output "detokenize of tokenize" "The licensee may copy" "$work/out"

sample=(generate "Permission is granted" --max-tokens 12 --ignore-eos --temperature 1.5 --top-k 50
        --top-p 0.95 --deadline-ms 60000)
check "tokenize with BOS" "$cli" tokenize "Permission is granted" --add-special-tokens
prompt_tokens=$(tr ',' '\n' <"$work/out" | wc -l)
check "generate" "$cli" "${sample[@]}" --seed 5
cp "$work/out" "$work/a"
expect_output "finish reason and usage" \
  "finish_reason=length prompt_tokens=$prompt_tokens completion_tokens=12" "$work/err"
"$cli" "${sample[@]}" --seed 5 >"$work/b" 2>/dev/null
"$cli" "${sample[@]}" --seed 6 >"$work/c" 2>/dev/null
if [ -s "$work/a" ] && cmp -s "$work/a" "$work/b" && ! cmp -s "$work/a" "$work/c"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: seeded generation not reproducible"
fi

# The text stops just before the first match of any --stop string.
text=$(cat "$work/a")
stop=${text:4:2}
check "generate with stops" "$cli" "${sample[@]}" --seed 5 --stop "no such text" --stop "$stop"
expect_output "text before the stop string" "${text%%"$stop"*}" "$work/out"
if grep -q "^finish_reason=stop " "$work/err"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: generate with stops:"; cat "$work/err"
fi

expect_error "bad max tokens" "INVALID_ARGUMENT: .*max_tokens" "$cli" generate x --max-tokens 0
expect_error "bad top-p" "INVALID_ARGUMENT: .*top_p" "$cli" generate x --top-p 1.5
expect_error "deadline" "DEADLINE_EXCEEDED" "$cli" generate x --max-tokens 500 --ignore-eos --deadline-ms 1

# A gateway asking for API keys: refused without one or with a wrong one,
# served with --api-key or $MOE_API_KEY.
router=$(sed -n 's/^moe-router listening on //p' "$work/moe-router.out")
printf 'cli %s\n' "$(printf %s cli-secret | sha256sum | cut -d' ' -f1)" >"$work/keys"
start moe-gateway "$bin/moe-gateway" --model "$model" --routers "$router" \
  --listen 127.0.0.1:0 --api-keys "$work/keys"
expect_error "no API key" "UNAUTHENTICATED" "$cli" --address "$address" info
expect_error "a wrong API key" "UNAUTHENTICATED: the API key is not known" \
  "$cli" --address "$address" --api-key nope info
check "with --api-key" "$cli" --address "$address" --api-key cli-secret info
check "with \$MOE_API_KEY" env MOE_API_KEY=cli-secret "$cli" --address "$address" info

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
