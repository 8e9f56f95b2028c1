#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j2 --timeout 900
