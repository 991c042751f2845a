#!/usr/bin/env bash
# Builds moe-serve's image (deploy/docker/Dockerfile).
#
#   build-image.sh [--binaries BUILD_DIR] [--tag NAME] [--prometheus]
#   build-image.sh --gpu [--cuda-devel IMAGE] [--cuda-runtime IMAGE] [--tag NAME]
#
# By default the image's build stage compiles the project (CPU) and the tag
# is moe-serve:latest. --binaries takes the binaries of a build on this
# machine instead (it compiles nothing). --prometheus also builds
# moe-serve-prometheus:latest (Debian's Prometheus on the same base), which
# deploy/compose runs. --gpu builds the CUDA variant, moe-serve:gpu, from
# NVIDIA's CUDA images (they must be pullable or present).
#
# No registry may be reachable: when there is no debian:bookworm image, the
# script makes one from a Debian root file system (debootstrap, from
# $MOE_DEBIAN_MIRROR or deb.debian.org) and says so.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
binaries=""
tag=""
prometheus=false
gpu=false
cuda_devel=nvidia/cuda:13.0.0-devel-ubuntu24.04
cuda_runtime=nvidia/cuda:13.0.0-runtime-ubuntu24.04
while [ $# -gt 0 ]; do
  case $1 in
    --binaries) binaries=$(cd "$2" && pwd); shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --prometheus) prometheus=true; shift ;;
    --gpu) gpu=true; shift ;;
    --cuda-devel) cuda_devel=$2; shift 2 ;;
    --cuda-runtime) cuda_runtime=$2; shift 2 ;;
    *) echo "build-image: unknown argument $1 (see the top of $0)" >&2; exit 2 ;;
  esac
done
# The classic builder: BuildKit needs the buildx plugin, which Debian's
# docker.io lacks. It runs every stage before the target, so the Dockerfile
# chooses between compiling and prebuilt binaries inside its build stage.
export DOCKER_BUILDKIT=0
base=debian:bookworm

make_base_image() {
  local rootfs
  rootfs=$(mktemp -d)
  echo "build-image: no $base image here: making one with debootstrap" >&2
  debootstrap --variant=minbase bookworm "$rootfs" \
    "${MOE_DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$rootfs.log" 2>&1 ||
    { tail -20 "$rootfs.log" >&2; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import --change 'CMD ["bash"]' - "$base" >/dev/null
  rm -rf "$rootfs" "$rootfs.log"
}

if $gpu; then
  docker build --network host -f "$root/deploy/docker/Dockerfile" \
    --build-arg BUILD_IMAGE="$cuda_devel" --build-arg RUNTIME_IMAGE="$cuda_runtime" \
    --build-arg MOE_WITH_CUDA=ON -t "${tag:-moe-serve:gpu}" "$root"
  exit 0
fi
docker image inspect "$base" >/dev/null 2>&1 || make_base_image
if [ -n "$binaries" ]; then
  staged=$root/.image-prebuilt
  rm -rf "$staged"
  trap 'rm -rf "$staged"' EXIT
  "$root/deploy/docker/collect-runtime.sh" "$binaries/bin" "$staged"
  docker build -q -f "$root/deploy/docker/Dockerfile" \
    --build-arg PREBUILT=.image-prebuilt -t "${tag:-moe-serve:latest}" "$root" >/dev/null
else
  # The build stage installs the build dependencies: it needs the network.
  docker build --network host -f "$root/deploy/docker/Dockerfile" \
    -t "${tag:-moe-serve:latest}" "$root"
fi
echo "built ${tag:-moe-serve:latest}"
if $prometheus; then
  docker build -q --network host -f "$root/deploy/docker/prometheus.Dockerfile" \
    -t moe-serve-prometheus:latest "$root/deploy/docker" >/dev/null
  echo "built moe-serve-prometheus:latest"
fi
