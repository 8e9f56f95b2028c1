#!/usr/bin/env bash
# Zaremba, Sutskever & Vinyals (2014), "Recurrent Neural Network
# Regularization": the non-regularized small model on Penn Treebank.
# Published: validation perplexity 120.7, test perplexity 114.5.
#
#   bash examples/ptb-small.sh            # the full recipe, 13 epochs
#   EPOCHS=2 bash examples/ptb-small.sh   # a shorter run
#
# 2 layers of 200 LSTM units, embedding 200, weights uniform in ±0.1, SGD
# (no momentum) at learning rate 1 for 4 epochs, then halved every epoch,
# batch 20, unroll 20, gradient norm clipped at 5, no dropout, loss summed
# over the unrolled steps and averaged over the batch (as in the paper's code).
# Every epoch prints validation and test perplexity (one eval line per epoch).
set -euo pipefail
cd "$(dirname "$0")/.."
PTB=${PTB:-../shared/data/ptb}
RUN=${RUN:-runs/ptb-small}
EPOCHS=${EPOCHS:-13}
for f in ptb.train.txt ptb.valid.txt ptb.test.txt; do
  [ -f "$PTB/$f" ] || { echo "missing $PTB/$f (set PTB=folder with the Penn Treebank files)" >&2; exit 1; }
done
[ -x build/unroll ] || bash scripts/setup.sh
rm -rf "$RUN"
# One epoch is (tokens - 1) / 20 / 20 chunks: 929,589 tokens with <eos> -> 2,323.
CHUNKS=2323
./build/unroll train "$PTB/ptb.train.txt" --val "$PTB/ptb.valid.txt" --test "$PTB/ptb.test.txt" \
  --pretokenized --out "$RUN" \
  --cell lstm --layers 2 --hidden 200 --embed 200 --init-scale 0.1 \
  --optim sgd --momentum 0 --lr 1 --lr-decay 0.5 --lr-decay-after 4 \
  --batch 20 --seq 20 --clip 5 --loss-norm batch \
  --epochs "$EPOCHS" --eval-every "$CHUNKS" --sample-every 0 --print-every 500
echo
echo "== test perplexity of the best checkpoint (by validation) =="
./build/unroll eval "$RUN/best.safetensors" --data "$PTB/ptb.test.txt" --batch 20 --seq 20
