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
source examples/ptb-common.sh
EPOCHS=${EPOCHS:-39}
ptb_run medium 35 --cell lstm --layers 2 --hidden 650 --embed 650 --dropout 0.5 --init-scale 0.05 \
  --lr 1 --lr-decay 0.8333333 --lr-decay-after 6 --print-every 200
