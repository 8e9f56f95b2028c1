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
source examples/ptb-common.sh
EPOCHS=${EPOCHS:-13}
ptb_run small 20 --cell lstm --layers 2 --hidden 200 --embed 200 --init-scale 0.1 \
  --lr 1 --lr-decay 0.5 --lr-decay-after 4 --print-every 500
