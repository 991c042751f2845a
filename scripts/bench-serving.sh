#!/usr/bin/env bash
# The serving sweep of docs/BENCHMARKS.md: moe-bench over the public API at
# several concurrencies, against the gateway with the experts in the router
# (embedded) and against the gateway, router and two expert workers
# (cluster, an even plan), all on this machine.
#
#   scripts/bench-serving.sh MODEL_DIR [--bin DIR] [--out DIR]
#       [--modes "embedded cluster"] [--concurrency "1 4 16 64"]
#       [--router-flags "..."] [--prompt-tokens D] [--output-tokens D]
#
# --bin may point at another build's bin/ (servers from there, moe-bench
# from this build), to compare versions. Writes one JSON report per run
# into --out and prints a table.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bench_bin=${BUILD_DIR:-$root/build}/bin
[ $# -ge 1 ] || { echo "usage: $0 MODEL_DIR [options]" >&2; exit 2; }
model=$1; shift
bin=$bench_bin
out=$(mktemp -d)
modes="embedded cluster"
concurrencies="1 4 16 64"
router_flags=""
prompt_tokens="uniform:16:48"
output_tokens=32
while [ $# -gt 0 ]; do
  case $1 in
    --bin) bin=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --concurrency) concurrencies=$2; shift 2 ;;
    --router-flags) router_flags=$2; shift 2 ;;
    --prompt-tokens) prompt_tokens=$2; shift 2 ;;
    --output-tokens) output_tokens=$2; shift 2 ;;
    *) echo "bench-serving: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
pids=()
stop() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; pids=(); }
trap stop EXIT

await_address() {  # LOG PID
  for _ in $(seq 1200); do
    if grep -q "listening on" "$1" 2>/dev/null; then
      awk '/listening on/ {print $NF; exit}' "$1"; return 0
    fi
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench-serving: $1 did not start:" >&2; tail -5 "$1" >&2; return 1
}

start_cluster() {  # MODE: sets $gateway
  local experts=""
  if [ "$1" = cluster ]; then
    local bytes
    bytes=$(du -cb "$model"/*.safetensors | awk 'END {print $1}')
    "$bin/moe-plan" --model "$model" --workers "w0=$bytes,w1=$bytes" \
      --out "$out/plan.json" >/dev/null
    local workers=""
    for id in w0 w1; do
      "$bin/moe-expert-worker" --model "$model" --plan "$out/plan.json" --worker-id "$id" \
        --threads 2 --listen 127.0.0.1:0 >"$out/$id.log" 2>&1 &
      pids+=($!)
      workers+="$id=$(await_address "$out/$id.log" "${pids[-1]}"),"
    done
    experts="--plan $out/plan.json --workers ${workers%,}"
  fi
  # shellcheck disable=SC2086
  "$bin/moe-router" --model "$model" --threads 2 --max-batch 64 $experts $router_flags \
    --listen 127.0.0.1:0 >"$out/router.log" 2>&1 &
  pids+=($!)
  local router
  router=$(await_address "$out/router.log" "${pids[-1]}")
  "$bin/moe-gateway" --model "$model" --routers "$router" --listen 127.0.0.1:0 \
    >"$out/gateway.log" 2>&1 &
  pids+=($!)
  gateway=$(await_address "$out/gateway.log" "${pids[-1]}")
}

printf "%-9s %5s %9s %10s %9s %9s %9s %9s %7s\n" mode conc "req/s" "out tok/s" \
  "ttft p50" "ttft p99" "itl p50" "itl p99" errors
for mode in $modes; do
  start_cluster "$mode"
  for c in $concurrencies; do
    requests=$((c * 2 > 8 ? c * 2 : 8))
    report="$out/$mode-c$c.json"
    "$bench_bin/moe-bench" --address "$gateway" --concurrency "$c" --requests "$requests" \
      --prompt-tokens "$prompt_tokens" --output-tokens "$output_tokens" --seed 1 \
      --warmup 2 --json "$report" >/dev/null
    python3 - "$mode" "$c" "$report" <<'PY'
import json, sys
mode, c, path = sys.argv[1:]
r = json.load(open(path))
ms = lambda s, k: "-" if s[k] is None else f"{s[k]:.0f}"
print(f"{mode:<9} {c:>5} {r['requests_per_s']:9.2f} {r['output_tokens_per_s']:10.1f} "
      f"{ms(r['ttft_ms'], 'p50'):>9} {ms(r['ttft_ms'], 'p99'):>9} "
      f"{ms(r['itl_ms'], 'p50'):>9} {ms(r['itl_ms'], 'p99'):>9} {r['failed']:>7}")
PY
  done
  stop
done
echo "reports: $out"
