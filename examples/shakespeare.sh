#!/usr/bin/env bash
# Tiny Shakespeare, character level: the default 2×128 LSTM for 10 minutes,
# then a sample primed with "ROMEO:" and the run's report page.
#
#   bash examples/shakespeare.sh
#   TIME=30m bash examples/shakespeare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/tinyshakespeare/input.txt}
TIME=${TIME:-10m}
[ -f "$DATA" ] || { echo "missing $DATA (set DATA=the text file)" >&2; exit 1; }
[ -x build/unroll ] || bash scripts/setup.sh
rm -rf runs/shakespeare
./build/unroll train "$DATA" --out runs/shakespeare --time "$TIME" --eval-every 500 --sample-every 1000
./build/unroll sample runs/shakespeare/best.safetensors --prime "ROMEO:" -n 500 -t 0.8 --seed 1
echo "report: runs/shakespeare/report.html"
