#!/usr/bin/env bash
# The README's serve command as a user runs it: scripts/serve.sh prints the
# gateway's address first, the printed moe-cli command streams a completion,
# and SIGTERM stops every process it started.
#   serve_test.sh ROOT BUILD_DIR
set -u
root=$1
export BUILD_DIR=$2
work=$(mktemp -d)
serve_pid=""
cleanup() {
  [ -n "$serve_pid" ] && kill -TERM "$serve_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
source "$(dirname "$0")/checks.sh"

"$root/scripts/serve.sh" --port 0 >"$work/serve.out" 2>"$work/serve.err" &
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
command=$(grep "moe-cli --address $address generate" "$work/serve.out")
check "printed moe-cli command" bash -c "$command --max-tokens 8 --temperature 0"
[ -s "$work/out" ] || { failed=$((failed + 1)); echo "FAIL: no text streamed"; }
grep -q "finish_reason=" "$work/err" || { failed=$((failed + 1)); echo "FAIL: no finish reason"; cat "$work/err"; }

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
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
