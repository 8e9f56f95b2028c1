#!/usr/bin/env bash
# The PyTorch -> unroll workflow of docs/interop.md as a user pastes it, small: train
# with examples/pytorch_charlstm.py (on the CPU here), `unroll import --vocab-from`, then
# eval (the imported model must have learnt: below 2.2 nats where a uniform guess is
# ln 31 = 3.4), cells and gradients. ctest Example.PytorchImport (label torch).
#   bash tests/example_pytorch.sh build/unroll
set -euo pipefail
U=$(realpath "$1")
SRC=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
/usr/bin/python3 -c "import sys; sys.path.insert(0, '$SRC/tests'); from torch_util import make_text; print(make_text(1, 400), end='')" > t.txt
/usr/bin/python3 "$SRC/examples/pytorch_charlstm.py" t.txt --out m.safetensors --steps 150 --hidden 48 --embed 16 \
  --layers 1 --batch 16 --seq 32 --lr 1e-2
"$U" import m.safetensors --vocab-from t.txt -o ck.safetensors
loss=$("$U" eval ck.safetensors t.txt --json | /usr/bin/python3 -c "import json, sys; print(json.load(sys.stdin)['loss'])")
echo "imported model's loss on the text: $loss nats"
/usr/bin/python3 -c "import sys; sys.exit(0 if $loss < 2.2 else 'the imported model has not learnt: loss $loss')"
"$U" cells ck.safetensors --text t.txt -o cells.html | tail -2
grep -q "<html" cells.html
"$U" gradients ck.safetensors --text t.txt -o gradients.html | tail -1
grep -q "<html" gradients.html
echo "example_pytorch: ok"
