# Shell test helpers, sourced by the tool tests. They need $work (a scratch
# directory) and count into $passed and $failed; the cluster helpers need
# $bin (the binaries) and add the processes they start to $pids.
passed=0
failed=0

# make_work_dir: a scratch $work, and on exit the processes in $pids stopped
# and $work removed.
make_work_dir() {
  work=$(mktemp -d)
  pids=()
  trap stop_and_remove_work EXIT
}
stop_and_remove_work() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  rm -rf "$work"
}

check() {  # check NAME COMMAND...: the command must succeed
  local name=$1; shift
  if "$@" >"$work/out" 2>"$work/err"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $name"; cat "$work/out" "$work/err"
  fi
}

expect_error() {  # expect_error NAME PATTERN COMMAND...: must fail, stderr matching
  local name=$1 pattern=$2; shift 2
  if "$@" >"$work/out" 2>"$work/err"; then
    failed=$((failed + 1)); echo "FAIL: $name succeeded"
  elif grep -q -- "$pattern" "$work/err"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); echo "FAIL: $name: stderr lacks '$pattern'"; cat "$work/err"
  fi
}

expect_help_flag() {  # expect_help_flag PROGRAM FLAG: --help must list FLAG
  if "$1" --help 2>&1 | grep -q -- "$2"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); echo "FAIL: $(basename "$1") --help lacks $2"
  fi
}

skip_without_gateway() {  # ends the test, skipped (77), without moe-gateway
  [ -x "$bin/moe-gateway" ] && return 0
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ] || exit 1
  echo "SKIP: no moe-gateway in $bin"
  exit 77
}

address=""
start() {  # start NAME COMMAND...: runs it, sets $address from "NAME listening on"
  local name=$1; shift
  "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  address=""
  for _ in $(seq 600); do
    address=$(sed -n "s/^$name listening on //p" "$work/$name.out")
    [ -n "$address" ] && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "FAIL: $name did not start"; cat "$work/$name.err"
  exit 1
}

# start_tiny_gateway [MOE-MAKE-MODEL FLAGS...]: a tiny random Mixtral FP8
# model ($model) served by moe-router and moe-gateway on 127.0.0.1; sets
# $address to the gateway's.
start_tiny_gateway() {
  model="$work/tiny-mixtral"
  "$bin/moe-make-model" --out "$model" --arch mixtral --dtype fp8 --hidden 64 --layers 2 \
    --heads 4 --kv-heads 2 --experts 8 --intermediate 96 --vocab 500 "$@" >/dev/null || exit 1
  start moe-router "$bin/moe-router" --model "$model" --listen 127.0.0.1:0
  start moe-gateway "$bin/moe-gateway" --model "$model" --routers "$address" --listen 127.0.0.1:0
}
