# Shared by the Penn Treebank recipes (ptb-small.sh, ptb-medium.sh); sourced.
# ptb_run NAME SEQ TRAIN-OPTIONS...: checks the data, builds if needed, trains
# on ptb.train.txt with ptb.valid.txt for validation and ptb.test.txt reported
# every epoch (batch 20, pre-tokenized with <eos>, SGD, norm clipping at 5,
# loss summed over the steps and averaged over the batch), then prints the
# test perplexity of the best checkpoint. PTB, RUN and EPOCHS may be set.
ptb_run() {
  local name=$1 seq=$2
  shift 2
  PTB=${PTB:-../shared/data/ptb}
  RUN=${RUN:-runs/ptb-$name}
  for f in ptb.train.txt ptb.valid.txt ptb.test.txt; do
    [ -f "$PTB/$f" ] || { echo "missing $PTB/$f (set PTB=folder with the Penn Treebank files)" >&2; exit 1; }
  done
  [ -x build/unroll ] || bash scripts/setup.sh
  rm -rf "$RUN"
  # One epoch is (929,589 tokens with <eos> - 1) / 20 / seq chunks: validate once per epoch.
  local chunks=$(( (929589 - 1) / 20 / seq ))
  ./build/unroll train "$PTB/ptb.train.txt" --val "$PTB/ptb.valid.txt" --test "$PTB/ptb.test.txt" \
    --pretokenized --out "$RUN" --optim sgd --momentum 0 --batch 20 --seq "$seq" --clip 5 \
    --loss-norm batch --epochs "$EPOCHS" --eval-every "$chunks" --sample-every 0 "$@"
  echo
  echo "== test perplexity of the best checkpoint (by validation) =="
  ./build/unroll eval "$RUN/best.safetensors" "$PTB/ptb.test.txt" --batch 20 --seq "$seq"
}
