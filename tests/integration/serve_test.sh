#!/usr/bin/env bash
# The README's serve command as a user runs it: scripts/serve.sh prints the
# gateway's address first, the printed moe-cli command streams a completion,
# a worker killed with -9 is started again at its address and used again,
# and SIGTERM stops every process it started. Then --workers 3 --copies 2
# on a small model: a request right after a worker is killed still
# completes. Then --tls.
#   serve_test.sh ROOT BUILD_DIR
set -u
root=$1
export BUILD_DIR=$2
bin=$BUILD_DIR/bin
logs=$BUILD_DIR/serve-logs
work=$(mktemp -d)
serve_pid=""
cleanup() {
  [ -n "$serve_pid" ] && kill -TERM "$serve_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
source "$(dirname "$0")/checks.sh"

serve() {  # ARGS...: starts scripts/serve.sh, sets $serve_pid and $address
  "$root/scripts/serve.sh" --port 0 "$@" >"$work/serve.out" 2>"$work/serve.err" &
  serve_pid=$!
  for _ in $(seq 600); do
    grep -q "Ctrl-C" "$work/serve.out" 2>/dev/null && break
    kill -0 "$serve_pid" 2>/dev/null || break
    sleep 0.5
  done
  address=$(head -1 "$work/serve.out")
  if ! [[ $address =~ ^127\.0\.0\.1:[0-9]+$ ]]; then
    echo "FAIL: first line is not an address: '$address'"; cat "$work/serve.out" "$work/serve.err"
    exit 1
  fi
}

generate() {  # NAME: a short greedy completion must stream
  check "$1" "$bin/moe-cli" --address "$address" generate "The capital of France is" \
    --max-tokens 8 --temperature 0
}

stop_serve() {  # SIGTERM ends serve.sh and every process it started
  local children
  children=$(pgrep -P "$serve_pid" | tr '\n' ' ')
  [ -n "$children" ] || { failed=$((failed + 1)); echo "FAIL: no cluster processes"; }
  kill -TERM "$serve_pid"
  for _ in $(seq 100); do kill -0 "$serve_pid" 2>/dev/null || break; sleep 0.1; done
  serve_pid=""
  for pid in $children; do
    if kill -0 "$pid" 2>/dev/null; then
      failed=$((failed + 1)); echo "FAIL: process $pid survived SIGTERM"; kill -KILL "$pid"
    else
      passed=$((passed + 1))
    fi
  done
}

serve
command=$(grep "moe-cli --address $address generate" "$work/serve.out")
check "printed moe-cli command" bash -c "$command --max-tokens 8 --temperature 0"
[ -s "$work/out" ] || { failed=$((failed + 1)); echo "FAIL: no text streamed"; }
grep -q "finish_reason=" "$work/err" || { failed=$((failed + 1)); echo "FAIL: no finish reason"; cat "$work/err"; }
for name in w0 w1 router gateway; do
  if kill -0 "$(cat "$logs/$name.pid" 2>/dev/null)" 2>/dev/null; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); echo "FAIL: no live pid in $logs/$name.pid"
  fi
done

# Supervision: w1 killed is started again, and the cluster serves.
old_pid=$(cat "$logs/w1.pid")
kill -KILL "$old_pid"
for _ in $(seq 200); do
  new_pid=$(cat "$logs/w1.pid")
  [ "$new_pid" != "$old_pid" ] && grep -q "listening on" <(tail -1 "$logs/w1.log") && break
  sleep 0.1
done
grep -q "w1 exited" "$work/serve.err" ||
  { failed=$((failed + 1)); echo "FAIL: serve.sh did not report w1's exit"; cat "$work/serve.err"; }
if [ "$new_pid" != "$old_pid" ] && kill -0 "$new_pid" 2>/dev/null; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: w1 was not started again"; tail -5 "$logs/w1.log"
fi
for _ in $(seq 50); do  # the router's probe finds it within a second
  "$bin/moe-cli" --address "$address" generate "The capital" --max-tokens 2 \
    >/dev/null 2>&1 && break
  sleep 0.2
done
generate "generate after a worker restart"
stop_serve

# Two copies of every expert on three workers: a worker killed does not
# fail the next request.
"$bin/moe-make-model" --out "$work/small" --arch skywork_moe --dtype fp8 --hidden 64 \
  --layers 2 --heads 4 --kv-heads 2 --experts 8 --intermediate 96 --vocab 500 >/dev/null
serve --model "$work/small" --workers 3 --copies 2
grep -q "every expert on at least 2" "$logs/plan.txt" ||
  { failed=$((failed + 1)); echo "FAIL: the plan lacks two copies"; cat "$logs/plan.txt"; }
kill -KILL "$(cat "$logs/w0.pid")"
generate "generate with w0 killed, two copies"
stop_serve

# --tls: the printed command (with the CA) streams over TLS, mTLS inside;
# a plaintext client is refused.
serve --model "$work/small" --tls
command=$(grep "moe-cli --address $address --tls-ca" "$work/serve.out")
check "printed moe-cli command over TLS" bash -c "$command --max-tokens 4 --temperature 0"
grep -q "finish_reason=length" "$work/err" ||
  { failed=$((failed + 1)); echo "FAIL: over TLS:"; cat "$work/err"; }
expect_error "plaintext to the TLS gateway" "UNAVAILABLE" \
  "$bin/moe-cli" --address "$address" --retries 0 info
stop_serve
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
