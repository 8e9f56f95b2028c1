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
import random
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import torch
    import torch.nn as nn
except ImportError:
    sys.exit("torch_parity: PyTorch is missing: apt-get install python3-torch (scripts/setup.sh --tests does)")

ap = argparse.ArgumentParser()
ap.add_argument("--unroll", required=True, help="the unroll binary")
ap.add_argument("--cell", required=True, choices=["rnn", "rnn-relu", "lstm", "gru"])
a = ap.parse_args()


def read_safetensors(path):
    """name -> float64 tensor, and the metadata (the format: an 8-byte length, JSON, the data)."""
    raw = Path(path).read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    for name, t in header.items():
        assert t["dtype"] == "F32", f"{name}: {t['dtype']}"
        lo, hi = t["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[lo:hi]), dtype=torch.float32).reshape(t["shape"]).double()
    return out, meta


def make_text(seed, lines):
    """Sentences over a small vocabulary: structure for a model to learn in a few steps."""
    words = "the a cat dog sat ran on in under mat hat red big small and then saw it".split()
    r = random.Random(seed)
    return "".join(" ".join(r.choice(words) for _ in range(r.randint(3, 9))).capitalize() + ".\n"
                   for _ in range(lines))


class LanguageModel(nn.Module):
    """unroll's language model in torch.nn: the checkpoint's names are these modules' names."""

    def __init__(self, cfg):
        super().__init__()
        V, E, H, L = cfg["outputs"], cfg["embed"], cfg["hidden"], cfg["layers"]
        self.V = V
        if E:
            self.embedding = nn.Embedding(V, E)
        cell = cfg["cell"]
        if cell == "lstm":
            self.rnn = nn.LSTM(E or V, H, L)
        elif cell == "gru":
            self.rnn = nn.GRU(E or V, H, L)
        else:
            self.rnn = nn.RNN(E or V, H, L, nonlinearity="relu" if cell == "rnn-relu" else "tanh")
        self.head = nn.Linear(H, V)
        self.embed = E

    def forward(self, ids, state=None):  # ids [T] -> logits [T, V]
        x = self.embedding(ids) if self.embed else nn.functional.one_hot(ids, self.V).double()
        y, state = self.rnn(x.unsqueeze(1), state)
        return self.head(y.squeeze(1)), state


def run(*args):
    r = subprocess.run([a.unroll, *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"torch_parity: unroll {' '.join(map(str, args))} failed:\n{r.stderr}")
    return r.stdout


failures = []
with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    (tmp / "train.txt").write_text(make_text(1, 400))
    held_out = make_text(2, 40)
    (tmp / "held.txt").write_text(held_out)
    for layers in (1, 2):
        for embed in (0, 8):
            name = f"{a.cell} {layers} layer{'s' if layers > 1 else ''}, {'embedding ' + str(embed) if embed else 'one-hot'}"
            out = tmp / f"run-{layers}-{embed}"
            run("train", tmp / "train.txt", "--out", out, "--cell", a.cell, "--layers", layers, "--hidden", 24,
                "--embed", embed, "--batch", 8, "--seq", 25, "--steps", 60, "--lr", 1e-2, "--eval-every", 0,
                "--sample-every", 0, "--threads", 1, "--seed", 3)
            ck = out / "latest.safetensors"
            tensors, meta = read_safetensors(ck)
            cfg = json.loads(meta["model"])
            vocab = json.loads(meta["vocab"])["tokens"]
            index = {t: i for i, t in enumerate(vocab)}
            model = LanguageModel(cfg).double()
            weights = {k: v for k, v in tensors.items() if not k.startswith(("optimizer.", "state."))}
            model.load_state_dict(weights, strict=True)  # names as they are
            model.eval()

            # The mean cross-entropy over the held-out text, batch 1, state carried.
            ids = torch.tensor([index[c] for c in held_out])
            with torch.no_grad():
                logits, _ = model(ids[:-1])
                theirs = nn.functional.cross_entropy(logits, ids[1:]).item()
            ours = json.loads(run("eval", ck, tmp / "held.txt", "--batch", 1, "--json", "--threads", 1))
            rel = abs(ours["loss"] - theirs) / theirs
            ok_loss = ours["tokens"] == len(ids) - 1 and rel <= 1e-5
            print(f"{name}: cross-entropy unroll {ours['loss']:.9f} PyTorch {theirs:.9f} "
                  f"(relative difference {rel:.2e}, {ours['tokens']} tokens)")
            if not ok_loss:
                failures.append(f"{name}: cross-entropy differs by {rel:.2e} relative")

            # Greedy continuation of 200 characters from a prime.
            prime = "The cat sat"
            with torch.no_grad():
                logits, state = model(torch.tensor([index[c] for c in prime]))
                nxt, text, margin = int(logits[-1].argmax()), [], float("inf")
                for _ in range(200):
                    text.append(vocab[nxt])
                    logits, state = model(torch.tensor([nxt]), state)
                    top = logits[-1].topk(2).values
                    margin = min(margin, float(top[0] - top[1]))
                    nxt = int(logits[-1].argmax())
            theirs_text = prime + "".join(text)
            ours_text = run("sample", ck, "--greedy", "-p", prime, "-n", 200, "--threads", 1)
            ours_text = ours_text[:-1] if ours_text.endswith("\n") else ours_text
            same = ours_text == theirs_text
            print(f"{name}: greedy 200 characters {'identical' if same else 'DIFFER'} "
                  f"(smallest top-2 logit margin along PyTorch's path {margin:.2e})")
            if not same:
                at = next((i for i, (x, y) in enumerate(zip(ours_text, theirs_text)) if x != y),
                          min(len(ours_text), len(theirs_text)))
                failures.append(f"{name}: greedy text differs from character {at}: "
                                f"unroll {ours_text[at:at + 20]!r}, PyTorch {theirs_text[at:at + 20]!r}")

if failures:
    sys.exit("torch_parity: FAILED\n" + "\n".join(failures))
print(f"torch_parity: {a.cell}: all 4 models agree with PyTorch")
