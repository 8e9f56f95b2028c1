#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer in ./build-fuzz, then runs each for SECONDS
# (default 60) from the seed corpus in fuzz/corpus. Exits non-zero if any
# target finds a crash, a sanitizer report, an uncaught exception, a hang
# (over 10 s for one input) or an allocation over 512 MB; the input that did
# it is saved in build-fuzz/artifacts/.
#   bash scripts/fuzz.sh            # 60 s each
#   bash scripts/fuzz.sh 600        # longer
#   bash scripts/fuzz.sh 60 text    # one target: checkpoint, metadata, text, options, sampler or import
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
ONLY=${2:-}

EXTRA_PKGS="clang libclang-rt-14-dev libomp-14-dev" bash scripts/setup.sh --no-build
BUILD=build-fuzz
CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DUNROLL_FUZZ=ON -DUNROLL_TESTS=OFF -DUNROLL_NATIVE=OFF -DUNROLL_MPI=OFF >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target fuzz_checkpoint fuzz_metadata fuzz_text fuzz_options fuzz_sampler fuzz_import

mkdir -p "$BUILD/artifacts"
status=0
for target in checkpoint metadata text options sampler import; do
  [ -n "$ONLY" ] && [ "$ONLY" != "$target" ] && continue
  work="$BUILD/corpus/$target"  # new inputs go here; the repository's seeds stay as they are
  mkdir -p "$work"
  log="$BUILD/fuzz_$target.log"
  echo "== fuzz_$target: ${SECONDS_EACH} s"
  if UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
     "$BUILD/fuzz/fuzz_$target" "$work" "fuzz/corpus/$target" -max_total_time="$SECONDS_EACH" \
       -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1 \
       -artifact_prefix="$BUILD/artifacts/$target-" >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    echo "   ok: $runs inputs run, $cov, corpus $(ls "$work" | wc -l) files"
  else
    status=1
    echo "   FAILED (log: $log):"
    grep -E "ERROR|runtime error|terminate|SUMMARY|Test unit written" "$log" | head -20 || tail -30 "$log"
  fi
done
exit $status
