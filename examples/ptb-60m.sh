#!/usr/bin/env bash
# Penn Treebank, word level, in 60 minutes on two cores (issue 18's target:
# test perplexity at most 100). An AWD-style LSTM, scaled to the budget:
# 2 layers of 400 units, a 400-wide embedding tied to the head (Press & Wolf),
# variational (locked) dropout 0.35 on the embedding, between the layers and
# before the head, whole words dropped at 0.05, DropConnect 0.2 on W_hh; Adam
# 2e-3 with a 300-step warm-up and a cosine decay to 1e-5 over 14 epochs
# (about what 60 minutes hold on two cores), batch 20 x unroll 35, validation
# and test perplexity every epoch; then the test perplexity of the best
# checkpoint. docs/results.md has what it reached.
#
#   bash examples/ptb-60m.sh
#   EPOCHS=1 TIME=5m bash examples/ptb-60m.sh   # a short try
set -euo pipefail
cd "$(dirname "$0")/.."
PTB=${PTB:-../shared/data/ptb}
RUN=${RUN:-runs/ptb-60m}
EPOCHS=${EPOCHS:-14}
TIME=${TIME:-60m}
THREADS=${THREADS:-2}
for f in ptb.train.txt ptb.valid.txt ptb.test.txt; do
  [ -f "$PTB/$f" ] || { echo "missing $PTB/$f (set PTB=folder with the Penn Treebank files)" >&2; exit 1; }
done
[ -x build/unroll ] || bash scripts/setup.sh
rm -rf "$RUN"
# One epoch: (929,589 tokens with <eos> - 1) / 20 streams / 35 steps = 1,327 chunks; validating
# every 1,328 steps (as the measured run did) comes one step into the next epoch.
./build/unroll train "$PTB/ptb.train.txt" --val "$PTB/ptb.valid.txt" --test "$PTB/ptb.test.txt" \
  --pretokenized --out "$RUN" --layers 2 --hidden 400 --embed 400 --tie \
  --locked-dropout --dropout 0.35 --embed-dropout 0.05 --weight-drop 0.2 \
  --batch 20 --seq 35 --lr 2e-3 --warmup 300 --lr-schedule cosine --lr-min 1e-5 \
  --epochs "$EPOCHS" --time "$TIME" --eval-every 1328 --sample-every 0 --threads "$THREADS"
echo
echo "== test perplexity of the best checkpoint (by validation) =="
./build/unroll eval "$RUN/best.safetensors" "$PTB/ptb.test.txt" --batch 20 --seq 35
