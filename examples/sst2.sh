#!/usr/bin/env bash
# SST-2 sentence sentiment (../shared/data/sst2/, "label sentence" lines):
# a word-level bidirectional LSTM with embeddings learned from scratch,
# the mean of its states over the sentence, dropout 0.5; validated on the dev
# set (early stopping), then scored on the test set. ~30 s per seed.
#
#   bash examples/sst2.sh          # seed 1
#   SEED=3 bash examples/sst2.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SST=${SST:-../shared/data/sst2}
SEED=${SEED:-1}
[ -f "$SST/stsa.binary.train" ] || { echo "missing $SST/stsa.binary.train (set SST=folder)" >&2; exit 1; }
[ -x build/unroll ] || bash scripts/setup.sh
rm -rf runs/sst2
./build/unroll classify train "$SST/stsa.binary.train" --separator space --pretokenized --min-count 2 \
  --val "$SST/stsa.binary.dev" --bidirectional --summary mean --embed 100 --hidden 100 --dropout 0.5 \
  --batch 50 --lr 0.001 --epochs 20 --patience 3 --seed "$SEED" --out runs/sst2
echo
echo "== test set =="
./build/unroll classify eval runs/sst2/best.safetensors "$SST/stsa.binary.test" --html runs/sst2/test.html
