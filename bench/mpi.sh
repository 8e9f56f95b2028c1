#!/usr/bin/env bash
# Data-parallel scaling on this machine: training tokens/s of
#   1 rank × 1 thread, 1 rank × 2 threads, and 2 ranks × 1 thread
#   (mpirun, one rank pinned to each core)
# for the char-rnn models on tiny Shakespeare (batch 50, seq 50). Each cell is
# the median over REPEATS runs of the median progress-line speed (evaluation
# excluded), with the all-reduce share that rank 0 reports.
#   bash bench/mpi.sh                 # LSTM 2x128 and 2x512, 3 repeats
#   REPEATS=5 CONFIGS="lstm:2:512" bash bench/mpi.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/unroll}
DATA=${DATA:-../shared/data/tinyshakespeare/input.txt}
REPEATS=${REPEATS:-3}
CONFIGS=${CONFIGS:-"lstm:2:128 lstm:2:512"}
MPIRUN="mpirun --allow-run-as-root --bind-to core --map-by core"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

speed() {  # run folder -> median tokens/s of its step records after the first two
  python3 -c "
import json, statistics, sys
v = [json.loads(l)['tokens_per_s'] for l in open(sys.argv[1] + '/metrics.jsonl') if '\"kind\":\"step\"' in l]
print(round(statistics.median(v[2:] or v)))
" "$1"
}
run() {  # label cell layers hidden steps -> "tok/s [reduce%]"
  local label=$1 cell=$2 layers=$3 hidden=$4 steps=$5 out="$tmp/$1" log="$tmp/$1.log"
  rm -rf "$out"
  local args=(train "$DATA" --out "$out" --cell "$cell" --layers "$layers" --hidden "$hidden"
              --batch 50 --seq 50 --steps "$steps" --eval-every 0 --sample-every 0 --print-every 5)
  case $label in
    1x1) "$BIN" "${args[@]}" --threads 1 >"$log" 2>&1 ;;
    1x2) "$BIN" "${args[@]}" --threads 2 >"$log" 2>&1 ;;
    2x1) $MPIRUN -np 2 "$BIN" "${args[@]}" --threads 1 >"$log" 2>&1 ;;
  esac
  local pct
  pct=$(grep -o 'all-reduce took [0-9.]*%' "$log" | grep -o '[0-9.]*' || echo "")
  echo "$(speed "$out") ${pct:-}"
}
median() { python3 -c "import statistics, sys; print(round(statistics.median(float(x) for x in sys.argv[1:]), 1))" "$@"; }

echo "| model | 1 rank x 1 thread | 1 rank x 2 threads | 2 ranks x 1 thread | 2 ranks / 1x1 | 2 ranks / 1x2 | all-reduce share |"
echo "|---|---|---|---|---|---|---|"
for c in $CONFIGS; do
  IFS=: read -r cell layers hidden <<<"$c"
  steps=$(( hidden >= 512 ? 40 : 200 ))
  a=(); b=(); d=(); p=()
  for _ in $(seq "$REPEATS"); do  # interleaved, so drifts in machine speed hit all three alike
    a+=("$(run 1x1 "$cell" "$layers" "$hidden" "$steps" | cut -d' ' -f1)")
    b+=("$(run 1x2 "$cell" "$layers" "$hidden" "$steps" | cut -d' ' -f1)")
    r=$(run 2x1 "$cell" "$layers" "$hidden" "$steps")
    d+=("${r%% *}"); p+=("${r#* }")
  done
  A=$(median "${a[@]}"); B=$(median "${b[@]}"); D=$(median "${d[@]}"); P=$(median "${p[@]}")
  python3 -c "
import sys
a, b, d, p = map(float, sys.argv[2:6])
print(f'| {sys.argv[1]} | {a:,.0f} | {b:,.0f} | {d:,.0f} | {d/a:.2f} | {d/b:.2f} | {p:.1f}% |')
" "$c" "$A" "$B" "$D" "$P"
done
