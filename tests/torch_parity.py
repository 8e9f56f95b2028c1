#!/usr/bin/env python3
"""unroll and PyTorch agree (issue 19): a checkpoint that `unroll train` writes
loads into torch.nn with its parameter names as they are, and PyTorch then
computes what unroll computes.

For one cell kind (--cell), with 1 and 2 layers, one-hot and embedding input:
train a small model with unroll for a few dozen steps on a generated text,
load its tensors into embedding -> nn.LSTM/GRU/RNN -> nn.Linear (strict
load_state_dict: no name is translated, none is missing or left over), and
check, against PyTorch in float64:

- the mean cross-entropy over a held-out text, batch 1, state carried from
  the first character to the last, equals `unroll eval --batch 1 --json`'s
  loss to 1e-5 relative;
- the greedy continuation of 200 characters from a prime is the same text
  as `unroll sample --greedy`.

Needs Debian's PyTorch (python3-torch, which `scripts/setup.sh --tests`
installs); without it the test fails, it does not skip.
  /usr/bin/python3 tests/torch_parity.py --unroll build/unroll --cell lstm
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch_util import LanguageModel, check_cross_entropy, check_greedy, make_text, read_safetensors, run_unroll

ap = argparse.ArgumentParser()
ap.add_argument("--unroll", required=True, help="the unroll binary")
ap.add_argument("--cell", required=True, choices=["rnn", "rnn-relu", "lstm", "gru"])
a = ap.parse_args()

failures = []
with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    (tmp / "train.txt").write_text(make_text(1, 400))
    (tmp / "held.txt").write_text(make_text(2, 40))
    for layers in (1, 2):
        for embed in (0, 8):
            name = f"{a.cell} {layers} layer{'s' if layers > 1 else ''}, {'embedding ' + str(embed) if embed else 'one-hot'}"
            out = tmp / f"run-{layers}-{embed}"
            run_unroll(a.unroll, "train", tmp / "train.txt", "--out", out, "--cell", a.cell, "--layers", layers,
                       "--hidden", 24, "--embed", embed, "--batch", 8, "--seq", 25, "--steps", 60, "--lr", 1e-2,
                       "--eval-every", 0, "--sample-every", 0, "--threads", 1, "--seed", 3)
            ck = out / "latest.safetensors"
            tensors, meta = read_safetensors(ck)
            cfg = json.loads(meta["model"])
            vocab = json.loads(meta["vocab"])["tokens"]
            model = LanguageModel(cfg["cell"], cfg["outputs"], cfg["embed"], cfg["hidden"], cfg["layers"]).double()
            weights = {k: v for k, v in tensors.items() if not k.startswith(("optimizer.", "state."))}
            model.load_state_dict(weights, strict=True)  # names as they are
            model.eval()
            check_cross_entropy(a.unroll, model, ck, tmp / "held.txt", {t: i for i, t in enumerate(vocab)}, name,
                                failures)
            check_greedy(a.unroll, model, ck, vocab, "The cat sat", name, failures)

if failures:
    sys.exit("torch_parity: FAILED\n" + "\n".join(failures))
print(f"torch_parity: {a.cell}: all 4 models agree with PyTorch")
