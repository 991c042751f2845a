#!/usr/bin/env bash
# Installs the Debian 12 packages the build needs, when missing; with
# --test also what the tests alone need (a Docker engine and compose for the
# compose cluster, debootstrap for its base image, kubectl for kustomize).
set -euo pipefail
packages=(cmake ninja-build g++ pkg-config python3 python3-venv
          libabsl-dev nlohmann-json3-dev libsentencepiece-dev sentencepiece
          libgtest-dev libgmock-dev libbenchmark-dev libpcre2-dev
          libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
          prometheus-cpp-dev prometheus libssl-dev)
if [ "${1:-}" = "--test" ]; then
  packages+=(docker.io docker-compose debootstrap)
  command -v kubectl >/dev/null || packages+=(kubernetes-client)
fi
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi
