#!/usr/bin/env bash
# The expert tier changing under load (not run in CI): scripts/serve.sh with
# --workers 3 on 127.0.0.1, moe-bench at a fixed concurrency for DURATION
# seconds; a third of the way in, a fourth worker starts empty, joins
# (moe-admin add-worker) and a rebalance gives it experts; two thirds of the
# way in, it is drained. Prints moe-bench's table, what each change did and
# how long it took, and the output tokens per second in the 10 s before each
# change, during it, and in the 10 s after. Exits 1 when a request failed.
#
#   scripts/bench-rebalance.sh [--model DIR] [--duration 120]
#       [--concurrency 32] [--copies 1] [--out DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/lib/serve-in-background.sh"
build=${BUILD_DIR:-$root/build}
bin=$build/bin
logs=$build/serve-logs
model=""
duration=120
concurrency=32
copies=1
out=$(mktemp -d)
while [ $# -gt 0 ]; do
  case $1 in
    --model) model=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --copies) copies=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "bench-rebalance: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"

serve_args=(--port 0 --workers 3 --copies "$copies")
[ -n "$model" ] && serve_args+=(--model "$model")
serve_pid=""
joiner_pid=""
trap 'kill -TERM $joiner_pid "$serve_pid" 2>/dev/null; wait "$serve_pid" 2>/dev/null' EXIT
serve_in_background "$out" "${serve_args[@]}"
router=$(awk '/listening on/ {print $NF; exit}' "$logs/router.log")
model_dir=$(ps -o args= -p "$(cat "$logs/router.pid")" | awk '{for (i = 1; i < NF; i++) if ($i == "--model") print $(i + 1)}')
# The joining worker gets the budget of w1.
budget=$(python3 -c "import json, sys; p = json.load(open(sys.argv[1])); print(next(w['memory_bytes'] for w in p['workers'] if w['id'] == 'w1'))" "$logs/plan.json")

"$bin/moe-bench" --address "$address" --concurrency "$concurrency" \
  --duration "$duration" --output-tokens 64 --prompt-tokens uniform:16:48 \
  --warmup 4 --json "$out/bench.json" --token-arrivals "$out/arrivals.txt" \
  >"$out/bench.txt" 2>"$out/bench.err" &
bench_pid=$!

# change NAME ARGS...: runs moe-admin, logging its output and the Unix
# times it started and ended to $out/NAME.{txt,times}.
change() {
  local name=$1
  shift
  local start
  start=$(date +%s.%N)
  "$bin/moe-admin" --router "$router" "$@" >"$out/$name.txt" 2>&1
  echo "$start $(date +%s.%N)" >"$out/$name.times"
}

sleep $((duration / 3))
"$bin/moe-expert-worker" --model "$model_dir" --worker-id w3 \
  --memory "$budget" --listen 127.0.0.1:0 >"$out/w3.log" 2>&1 &
joiner_pid=$!
for _ in $(seq 600); do
  grep -q "listening on" "$out/w3.log" && break
  sleep 0.1
done
joiner=$(awk '/listening on/ {print $NF; exit}' "$out/w3.log")
change add-worker add-worker "w3=$joiner"
change rebalance rebalance
sleep $((duration / 3))
change drain-worker drain-worker w3
wait "$bench_pid" || true

cat "$out/bench.txt"
rate() { "$root/scripts/token_arrivals.py" rate "$out/arrivals.txt" "$1" "$2"; }
for name in add-worker rebalance drain-worker; do
  echo "== moe-admin $name"
  cat "$out/$name.txt"
  read -r start end <"$out/$name.times"
  if [ "$name" != add-worker ]; then
    before=$(rate "$(awk -v t="$start" 'BEGIN {printf "%.6f", t - 10}')" "$start")
    during=$(rate "$start" "$end")
    after=$(rate "$end" "$(awk -v t="$end" 'BEGIN {printf "%.6f", t + 10}')")
    echo "output tokens/s: $before in the 10 s before, $during during," \
      "$after in the 10 s after"
  fi
done
python3 - "$out/bench.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
print(f"requests: {report['completed']} completed, {report['failed']} failed "
      f"{report['errors'] or ''}")
sys.exit(1 if report["failed"] else 0)
PY
