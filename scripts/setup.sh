#!/usr/bin/env bash
# Installs what unroll needs from Debian's packages (as root), then configures
# and builds it in ./build (Release). Safe to run again: it only does what is missing.
# With --tests, also what the test suite needs beyond the build (Chromium, Open MPI, PyTorch);
# with --no-build, only the packages.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(cmake ninja-build g++ pkg-config libdnnl-dev ocl-icd-opencl-dev libcli11-dev nlohmann-json3-dev libre2-dev
      libutf8proc-dev libgtest-dev libgmock-dev libbenchmark-dev linux-libc-dev zlib1g-dev libonnx-dev libprotobuf-dev)
# `setup.sh --tests` (scripts/test.sh) also installs a browser: a test opens the
# `unroll cells` page in headless Chromium and reads its screenshot; and Open
# MPI, for the data-parallel training tests (mpirun jobs); and PyTorch, which
# the parity tests check unroll against (tests/torch_parity.py); and Python's onnx,
# whose checker reads the exported ONNX files; and Node.js, if the machine has none, to
# run them in onnxruntime (npm's onnxruntime-node, below).
if [ "${1:-}" = "--tests" ]; then
  PKGS+=(chromium fonts-dejavu-core libopenmpi-dev openmpi-bin python3-torch python3-onnx clang-format git)
  command -v node >/dev/null && command -v npm >/dev/null || PKGS+=(nodejs npm)
fi
# Callers may need more (scripts/fuzz.sh: clang and libFuzzer).
PKGS+=(${EXTRA_PKGS:-})
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The test suite's npm packages, as package-lock.json pins them, into tests/onnx/node_modules.
# onnxruntime-node ships its CPU binaries in the package; its install script would only
# fetch GPU ones (from outside the npm registry), which the tests do not use: skipped.
# Done again only when the lock file changes (node_modules/.unroll-lock is the copy installed).
if [ "${1:-}" = "--tests" ] && ! cmp -s tests/onnx/package-lock.json tests/onnx/node_modules/.unroll-lock; then
  echo "setup: installing tests/onnx's npm packages (onnxruntime-node)"
  (cd tests/onnx && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error &&
     cp package-lock.json node_modules/.unroll-lock)
fi

# --no-build: only the packages.
[ "${1:-}" = "--no-build" ] && exit 0
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
