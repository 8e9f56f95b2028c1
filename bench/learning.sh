#!/usr/bin/env bash
# Learning per step, unroll against PyTorch (issue 18): the same model,
# data split, batches, optimizer and validation scheme on both sides
# (bench/learning_torch.py says what is matched), one thread each, run one
# after the other; prints the validation loss of each at every evaluation,
# and draws both curves (against step and against time) on one page with
# `unroll report`: runs/learning/report.html (OUT=folder to change).
#   bash bench/learning.sh                                   # tiny Shakespeare, LSTM 2x256, embedding 64
#   STEPS=1000 INIT=uniform bash bench/learning.sh           # unroll's char-rnn start on both sides
#   PTB=1 bash bench/learning.sh    # Penn Treebank, word level: LSTM 2x200, embedding 200, batch 20 x seq 35
#   MODEL="--hidden 128 --embed 0 --dropout 0 --seq 50" STEPS=2000 bash bench/learning.sh
#   TIME=12m bash bench/learning.sh   # equal wall time: both at once, one pinned core each
# Needs Debian's PyTorch and OpenBLAS: apt-get install python3-torch libopenblas0-pthread
# (without OpenBLAS Debian's torch runs on the reference BLAS, about 6x slower:
# 6.3 s against 1.0 s a step for LSTM 2x256, batch 50 x seq 100, one thread).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/tinyshakespeare/input.txt}
STEPS=${STEPS:-400}
EVERY=${EVERY:-100}
INIT=${INIT:-pytorch}          # both sides start this way: pytorch or uniform
FORGET=${FORGET:-0}            # LSTM forget-gate bias, both sides
SEED=${SEED:-1}
TIME=${TIME:-}                 # e.g. 12m: run both at once for this long, one core each
VAL=${VAL:-}                   # a validation file instead of the last 10% of DATA
if [ -n "${PTB:-}" ]; then     # Penn Treebank's own split, words
  P=../shared/data/ptb
  DATA=$P/ptb.train.txt VAL=$P/ptb.valid.txt
  MODEL=${MODEL:---pretokenized --layers 2 --hidden 200 --embed 200 --dropout 0.1 --batch 20 --seq 35 --lr 2e-3 --clip 5}
fi
# The model and its training, on both sides (MODEL="..." to change; the
# default unroll train model: MODEL="--layers 2 --hidden 128 --embed 0
# --dropout 0 --batch 50 --seq 50 --lr 2e-3 --clip 5").
read -r -a MODEL <<< "${MODEL:---layers 2 --hidden 256 --embed 64 --dropout 0.1 --batch 50 --seq 100 --lr 2e-3 --clip 5}"
for f in "$DATA" $VAL; do
  [ -f "$f" ] || { echo "no data at $f (../shared/data beside the repository)" >&2; exit 1; }
done
if [ -n "$VAL" ]; then SPLIT=(--val "$VAL"); TORCH_SPLIT=(--val-file "$VAL"); else SPLIT=(--split 0.9,0.1); TORCH_SPLIT=(--train 0.9 --val 0.1); fi
[ -x build/unroll ] || bash scripts/setup.sh
OUT=${OUT:-runs/learning}   # the two run folders and their overlaid report page
rm -rf "$OUT/unroll" "$OUT/pytorch"
mkdir -p "$OUT"

ours=(./build/unroll train "$DATA" --out "$OUT/unroll" "${MODEL[@]}" "${SPLIT[@]}" --init "$INIT"
  --forget-bias "$FORGET" --eval-every "$EVERY" --sample-every 0 --seed "$SEED" --threads 1)
theirs=(/usr/bin/python3 bench/learning_torch.py --data "$DATA" "${MODEL[@]}" "${TORCH_SPLIT[@]}"
  --init "$INIT" --forget-bias "$FORGET" --eval-every "$EVERY" --seed "$SEED" --threads 1
  --out "$OUT/pytorch")
if [ -z "$TIME" ]; then  # equal steps: one after the other
  "${ours[@]}" --steps "$STEPS" > "$OUT/unroll.log"
  "${theirs[@]}" --steps "$STEPS" > "$OUT/torch.jsonl"
else  # equal wall time: side by side, each on its own core, evaluations counted as time
  case $TIME in
    *h) secs=$(( ${TIME%h} * 3600 ));; *m) secs=$(( ${TIME%m} * 60 ));; *s) secs=${TIME%s};; *) secs=$TIME;;
  esac
  [ "$(nproc)" -ge 2 ] || { echo "TIME= runs both tools at once and needs two cores" >&2; exit 1; }
  taskset -c 0 "${ours[@]}" --time "${secs}s" > "$OUT/unroll.log" &
  pid_ours=$!
  taskset -c 1 "${theirs[@]}" --steps 100000000 --time "$secs" > "$OUT/torch.jsonl" &
  pid_theirs=$!
  wait $pid_ours && wait $pid_theirs
fi

/usr/bin/python3 - "$OUT/unroll/metrics.jsonl" "$OUT/torch.jsonl" "$INIT" "$FORGET" <<'EOF'
import json, sys
ours = {r["step"]: r for r in map(json.loads, open(sys.argv[1])) if r.get("kind") == "eval"}
theirs = {r["step"]: r for r in map(json.loads, open(sys.argv[2]))}
print(f"init {sys.argv[3]}, forget-gate bias {sys.argv[4]}: validation loss (nats per token)")
print(f"{'step':>6} {'unroll':>8} {'PyTorch':>8} {'unroll s':>9} {'PyTorch s':>10}")
for s in sorted(set(ours) & set(theirs)):
    print(f"{s:>6} {ours[s]['val_loss']:>8.4f} {theirs[s]['val_loss']:>8.4f} "
          f"{ours[s].get('elapsed', float('nan')):>9.1f} {theirs[s]['train_seconds']:>10.1f}")
last_ours, last_theirs = max(ours), max(theirs)
if last_ours != last_theirs:  # a --time run: where each one stopped
    print(f"at the end: unroll step {last_ours} {ours[last_ours]['val_loss']:.4f}, "
          f"PyTorch step {last_theirs} {theirs[last_theirs]['val_loss']:.4f}")
EOF
./build/unroll report "$OUT/unroll" "$OUT/pytorch" -o "$OUT/report.html"
