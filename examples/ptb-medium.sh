#!/usr/bin/env bash
# Zaremba, Sutskever & Vinyals (2014), "Recurrent Neural Network
# Regularization": the regularized medium model on Penn Treebank.
# Published: validation perplexity 86.2, test perplexity 82.7.
#
#   bash examples/ptb-medium.sh             # the full recipe, 39 epochs (many hours on 2 cores)
#   EPOCHS=1 bash examples/ptb-medium.sh    # one epoch, to see the speed
#
# 2 layers of 650 LSTM units, embedding 650, dropout 0.5 on the non-recurrent
# connections, weights uniform in ±0.05, SGD (no momentum) at learning rate 1
# for 6 epochs, then divided by 1.2 every epoch, 39 epochs, batch 20, unroll
# 35, gradient norm clipped at 5, loss summed over the unrolled steps and
# averaged over the batch. Not yet run to the end: see docs/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PTB=${PTB:-../shared/data/ptb}
RUN=${RUN:-runs/ptb-medium}
EPOCHS=${EPOCHS:-39}
for f in ptb.train.txt ptb.valid.txt ptb.test.txt; do
  [ -f "$PTB/$f" ] || { echo "missing $PTB/$f (set PTB=folder with the Penn Treebank files)" >&2; exit 1; }
done
[ -x build/unroll ] || bash scripts/setup.sh
rm -rf "$RUN"
# One epoch is (929,589 - 1) / 20 / 35 chunks: 1,327.
CHUNKS=1327
./build/unroll train "$PTB/ptb.train.txt" --val "$PTB/ptb.valid.txt" --test "$PTB/ptb.test.txt" \
  --pretokenized --out "$RUN" \
  --cell lstm --layers 2 --hidden 650 --embed 650 --dropout 0.5 --init-scale 0.05 \
  --optim sgd --momentum 0 --lr 1 --lr-decay 0.8333333 --lr-decay-after 6 \
  --batch 20 --seq 35 --clip 5 --loss-norm batch \
  --epochs "$EPOCHS" --eval-every "$CHUNKS" --sample-every 0 --print-every 200
echo
echo "== test perplexity of the best checkpoint (by validation) =="
./build/unroll eval "$RUN/best.safetensors" --data "$PTB/ptb.test.txt" --batch 20 --seq 35
