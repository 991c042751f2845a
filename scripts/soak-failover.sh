#!/usr/bin/env bash
# A soak of the elastic expert tier (not run in CI): scripts/serve.sh with
# --workers 3 --copies 2 on 127.0.0.1, moe-bench at a fixed concurrency for
# DURATION seconds, and every INTERVAL seconds one worker killed with -9 in
# turn (serve.sh starts it again). Prints moe-bench's table, the kills and
# restarts, the worst inter-token gaps, the failover time (from a kill to
# the next token of every stream running then, beside the same wait from
# instants halfway between kills, when nothing is killed), and the router's
# RSS growth from 60 s of load on. Exits 1 when a request failed or the
# router's RSS grew by 10% or more. The router's RSS at each kill goes to
# rss.log, to tell growth that levels off from growth that does not.
#
#   scripts/soak-failover.sh [--model DIR] [--duration 300] [--interval 30]
#       [--concurrency 64] [--output-tokens 64] [--out DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/lib/serve-in-background.sh"
build=${BUILD_DIR:-$root/build}
bin=$build/bin
logs=$build/serve-logs
model=""
duration=300
interval=30
concurrency=64
output_tokens=64
out=$(mktemp -d)
while [ $# -gt 0 ]; do
  case $1 in
    --model) model=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --interval) interval=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --output-tokens) output_tokens=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "soak-failover: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
: >"$out/kills.log"
: >"$out/rss.log"

serve_args=(--port 0 --workers 3 --copies 2)
[ -n "$model" ] && serve_args+=(--model "$model")
serve_pid=""
trap 'kill -TERM "$serve_pid" 2>/dev/null; wait "$serve_pid" 2>/dev/null' EXIT
serve_in_background "$out" "${serve_args[@]}"
rss() { awk '/^VmRSS/ {print $2}' "/proc/$(cat "$logs/router.pid")/status"; }

"$bin/moe-bench" --address "$address" --concurrency "$concurrency" \
  --duration "$duration" --output-tokens "$output_tokens" \
  --prompt-tokens uniform:16:48 --warmup 4 --json "$out/bench.json" \
  --token-arrivals "$out/arrivals.txt" >"$out/bench.txt" 2>"$out/bench.err" &
bench_pid=$!
# The router's RSS growth is measured from 60 s of load on (the second kill
# with the default interval): its allocations reach their working size in
# the first minute (a 10-minute run held 347 to 362 MiB from 66 s on, after
# 315 MiB at 36 s); growth after that would be a leak.
rss_start=""
kills=0
next=$((SECONDS + interval))
bench_start=$SECONDS
while kill -0 "$bench_pid" 2>/dev/null; do
  if ((SECONDS >= next)); then
    if [ -z "$rss_start" ] && ((SECONDS - bench_start >= 60)); then
      rss_start=$(rss)
    fi
    echo "$SECONDS $(rss)" >>"$out/rss.log"
    worker=w$((kills % 3))
    kill -KILL "$(cat "$logs/$worker.pid")" 2>/dev/null || true
    echo "$(date +%s.%N) killed $worker" >>"$out/kills.log"
    kills=$((kills + 1))
    next=$((SECONDS + interval))
  fi
  sleep 0.2
done
wait "$bench_pid" || true
rss_end=$(rss)
[ -n "$rss_start" ] || rss_start=$rss_end

cat "$out/bench.txt"
restarts=$(grep -c "starting it again" "$out/serve.err" || true)
echo "kills: $kills, restarts by serve.sh: $restarts (log: $out/kills.log)"
echo "router RSS (KiB) at each kill, by seconds since the start:" $(awk '{printf "%s:%s ", $1, $2}' "$out/rss.log")
kill_times=$(awk '{print $1}' "$out/kills.log" 2>/dev/null || true)
if [ -n "$kill_times" ]; then
  quiet_times=$(awk -v half=$((interval / 2)) '{printf "%.3f\n", $1 - half}' "$out/kills.log")
  echo "from a kill to the next token: $("$root/scripts/token_arrivals.py" gaps "$out/arrivals.txt" $kill_times)"
  echo "from a quiet instant (halfway between kills): $("$root/scripts/token_arrivals.py" gaps "$out/arrivals.txt" $quiet_times)"
fi
python3 - "$out/bench.json" "$rss_start" "$rss_end" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
start, end = int(sys.argv[2]), int(sys.argv[3])
itl = report["itl_ms"]
print(f"requests: {report['completed']} completed, {report['failed']} failed "
      f"{report['errors'] or ''}")
print(f"inter-token ms: p50 {itl['p50']:.1f}, p99 {itl['p99']:.1f}, "
      f"max {itl['max']:.1f}")
print(f"router RSS: {start / 1024:.1f} MiB -> {end / 1024:.1f} MiB "
      f"({100.0 * (end - start) / start:+.1f}%)")
sys.exit(1 if report["failed"] or end >= start * 1.1 else 0)
PY
