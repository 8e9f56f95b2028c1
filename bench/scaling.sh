#!/usr/bin/env bash
# How training time grows with sequence length, hidden size and batch, next
# to the matrix-multiply FLOP count (LSTM, 2 layers, one-hot V = 65, 2 threads).
# Prints a Markdown table: ms per step, GFLOP per step, and ms per GFLOP
# (flat when time follows the FLOP count).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/unroll}
row() {  # hidden batch seq
  local j
  j=$("$BIN" bench --json --cell lstm --layers 2 --hidden "$1" --batch "$2" --seq "$3" \
        --steps "$4" --sample-len 0)
  python3 -c "
import json, sys
d = json.loads(sys.argv[1])
gf = d['train_gflop_per_tok_model'] * d['batch'] * d['seq']
print(f\"| {d['hidden']} | {d['batch']} | {d['seq']} | {d['ms_per_step']:.1f} | {gf:.2f} | {d['ms_per_step'] / gf:.2f} |\")
" "$j"
}
echo "| hidden | batch | seq | ms/step | GFLOP/step | ms per GFLOP |"
echo "|---|---|---|---|---|---|"
for s in 25 50 100 200; do row 256 50 "$s" 40; done
for h in 128 256 512 1024; do row "$h" 50 50 20; done
for b in 10 25 50 100 200; do row 256 "$b" 50 40; done
