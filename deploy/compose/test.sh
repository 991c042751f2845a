#!/usr/bin/env bash
# deploy/compose/test.sh BIN_DIR: the compose cluster, really run. Starts a
# Docker engine when none runs (no bridge, no iptables: every container uses
# the host's network, and this test's traffic goes to 127.0.0.1 only; the
# engine is stopped again at the end), builds the images from the binaries
# in BIN_DIR, brings the cluster up on the demo model, streams a generation
# through the gateway with moe-cli, runs moe-bench for 20 requests, asks
# Prometheus for a moe_ series of every service, restarts a worker and
# generates again, then takes the cluster down.
#
# Needs root, docker.io, docker-compose and debootstrap (Debian's packages)
# and the demo model. Under CI=true it fails when it cannot run; elsewhere it
# exits 77 (skipped) saying why.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(cd "$1" && pwd)
compose_dir=$root/deploy/compose
model=${MOE_MODEL_DIR:-$root/models/smollm2-moe-16x-fp8}
work=$(mktemp -d)
project=moe-compose-test
export MOE_MODEL_DIR=$model
# Off the default and below the ephemeral port range.
export MOE_GATEWAY_ADDRESS=127.0.0.1:17001
started_dockerd=""
up=false

cannot_run() {
  if [ "${CI:-}" = "true" ]; then
    echo "FAIL: $1 (the compose test must run in CI)"
    exit 1
  fi
  echo "skipped: $1"
  exit 77
}

step() {  # step NAME: prints what runs and since when
  echo "[$(($(date +%s) - t0)) s] $1"
}

compose=(docker-compose -f "$compose_dir/compose.yaml" -p "$project")

cleanup() {
  if $up; then
    "${compose[@]}" logs --no-color >"$work/compose.log" 2>&1
    timeout 120 "${compose[@]}" down --remove-orphans >/dev/null 2>&1
  fi
  docker image prune -f >/dev/null 2>&1
  if [ -n "$started_dockerd" ]; then
    kill "$started_dockerd" 2>/dev/null
    wait "$started_dockerd" 2>/dev/null
  fi
  rm -rf "$work"
}

fail() {
  echo "FAIL: $1"
  if $up; then
    "${compose[@]}" ps
    "${compose[@]}" logs --no-color --tail 30
  fi
  exit 1
}

[ "$(id -u)" -eq 0 ] || cannot_run "not root: it starts a Docker engine"
for tool in dockerd docker docker-compose debootstrap; do
  command -v "$tool" >/dev/null ||
    cannot_run "no $tool (scripts/install-deps.sh --test installs it)"
done
[ -f "$model/config.json" ] || cannot_run "no demo model at $model (scripts/get-demo-model.sh)"
trap cleanup EXIT
t0=$(date +%s)

if ! docker info >/dev/null 2>&1; then
  step "starting dockerd"
  dockerd --bridge=none --iptables=false --ip6tables=false \
    >"$work/dockerd.log" 2>&1 &
  started_dockerd=$!
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    kill -0 "$started_dockerd" 2>/dev/null || break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { tail -20 "$work/dockerd.log"; fail "dockerd did not start"; }
fi

step "building the images from $bin"
timeout 300 "$root/deploy/docker/build-image.sh" --binaries "$(dirname "$bin")" --prometheus ||
  fail "build-image.sh"

step "docker-compose up"
up=true
timeout 300 "${compose[@]}" up -d || fail "docker-compose up"
healthy=false
for _ in $(seq 120); do
  state=$(docker inspect --format '{{.State.Health.Status}}' "$("${compose[@]}" ps -q gateway)" 2>/dev/null)
  [ "$state" = "healthy" ] && { healthy=true; break; }
  sleep 1
done
$healthy || fail "the gateway is not healthy after 120 s"

step "generating through the gateway"
cli=("$bin/moe-cli" --address "$MOE_GATEWAY_ADDRESS" --deadline-ms 60000)
"${cli[@]}" generate "The capital of France is" --max-tokens 8 --temperature 0 \
  >"$work/generate.out" 2>"$work/generate.err" || fail "moe-cli generate: $(cat "$work/generate.err")"
grep -q "Paris" "$work/generate.out" || fail "the demo model did not say Paris: $(cat "$work/generate.out")"
grep -q "finish_reason=length prompt_tokens=[0-9]* completion_tokens=8" "$work/generate.err" ||
  fail "usage: $(cat "$work/generate.err")"

step "moe-bench, 20 requests"
timeout 120 "$bin/moe-bench" --address "$MOE_GATEWAY_ADDRESS" --requests 20 --concurrency 4 \
  --prompt-tokens 16 --output-tokens 8 --json "$work/bench.json" >"$work/bench.out" 2>&1 ||
  fail "moe-bench: $(tail -5 "$work/bench.out")"
python3 - "$work/bench.json" <<'PY' || fail "moe-bench report: $(cat "$work/bench.out")"
import json, sys
report = json.load(open(sys.argv[1]))
assert report["completed"] == 20 and report["failed"] == 0, report
PY

step "asking Prometheus for a moe_ series of every service"
query='count by (job, instance) ({__name__=~"moe_.+"})'
found=""
for _ in $(seq 30); do
  found=$(python3 - "$query" <<'PY'
import json, sys, urllib.parse, urllib.request
url = "http://127.0.0.1:9090/api/v1/query?" + urllib.parse.urlencode({"query": sys.argv[1]})
try:
    result = json.load(urllib.request.urlopen(url, timeout=5))["data"]["result"]
except Exception:
    result = []
print(" ".join(sorted(r["metric"]["instance"] for r in result)))
PY
)
  [ "$found" = "127.0.0.1:19101 127.0.0.1:19102 127.0.0.1:19111 127.0.0.1:19112 127.0.0.1:19113" ] && break
  sleep 1
done
[ "$found" = "127.0.0.1:19101 127.0.0.1:19102 127.0.0.1:19111 127.0.0.1:19112 127.0.0.1:19113" ] ||
  fail "Prometheus has moe_ series of '$found' only"

step "restarting worker-1"
timeout 120 "${compose[@]}" restart worker-1 >/dev/null 2>&1 || fail "docker-compose restart worker-1"
generated=false
for _ in $(seq 30); do
  if "${cli[@]}" generate "The capital of France is" --max-tokens 8 --temperature 0 \
      >"$work/generate.out" 2>"$work/generate.err"; then
    generated=true
    break
  fi
  sleep 1
done
$generated || fail "no generation within 30 s of the restart: $(cat "$work/generate.err")"
grep -q "Paris" "$work/generate.out" || fail "after the restart: $(cat "$work/generate.out")"

step "docker-compose down"
timeout 120 "${compose[@]}" down --remove-orphans >/dev/null 2>&1 || fail "docker-compose down"
up=false
step "passed"
