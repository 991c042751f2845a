#!/usr/bin/env bash
# compile.sh SOURCE DEST WITH_CUDA: the image's build stage. Installs the
# build dependencies, compiles the services (no tests) and collects them
# with their libraries into DEST (see collect-runtime.sh).
set -euo pipefail
source=$1
dest=$2
with_cuda=$3
apt-get update -qq
"$source/scripts/install-deps.sh"
cmake -S "$source" -B /tmp/build -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_TESTING=OFF -DMOE_WITH_CUDA="$with_cuda"
cmake --build /tmp/build -j "$(nproc)" --target moe-router moe-expert-worker \
  moe-gateway moe-cli moe-admin moe-bench moe-plan
"$source/deploy/docker/collect-runtime.sh" /tmp/build/bin "$dest"
rm -rf /tmp/build /var/lib/apt/lists/*
