#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
# The tests cover data-parallel training: MPI is required, not optional, here.
CMAKE_ARGS="-DUNROLL_MPI=ON ${CMAKE_ARGS:-}" bash scripts/setup.sh --tests
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j2 --timeout 900
