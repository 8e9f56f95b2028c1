#!/usr/bin/env python3
"""A character LSTM trained in PyTorch (on a GPU when there is one), saved so that
`unroll import` reads it. The first half of the workflow in docs/interop.md:

    python3 examples/pytorch_charlstm.py input.txt --out model.safetensors --steps 2000
    unroll import model.safetensors --vocab-from input.txt -o model.ck.safetensors
    unroll cells model.ck.safetensors --text input.txt -o cells.html

The model is the one unroll reads: nn.Embedding -> nn.LSTM -> nn.Linear, token ids one
per position, the vocabulary the sorted distinct characters of the text (what
`--vocab-from` builds). Saved with Python's safetensors package when it is installed,
else with a small writer of the same format (Debian 12 does not package safetensors).
"""
import argparse
import json
import struct
import time

import torch
import torch.nn as nn

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("text", help="UTF-8 training text")
ap.add_argument("--out", default="model.safetensors", help="the state_dict, as safetensors")
ap.add_argument("--hidden", type=int, default=256)
ap.add_argument("--layers", type=int, default=2)
ap.add_argument("--embed", type=int, default=64)
ap.add_argument("--batch", type=int, default=64)
ap.add_argument("--seq", type=int, default=100)
ap.add_argument("--steps", type=int, default=2000)
ap.add_argument("--lr", type=float, default=2e-3)
ap.add_argument("--seed", type=int, default=1)
a = ap.parse_args()

text = open(a.text, encoding="utf-8").read()
vocab = sorted(set(text))  # code-point order: what `unroll import --vocab-from` builds
index = {c: i for i, c in enumerate(vocab)}
ids = torch.tensor([index[c] for c in text])
device = "cuda" if torch.cuda.is_available() else "cpu"
torch.manual_seed(a.seed)


class CharLSTM(nn.Module):
    def __init__(self, V):
        super().__init__()
        self.embedding = nn.Embedding(V, a.embed)
        self.rnn = nn.LSTM(a.embed, a.hidden, a.layers)  # time-major: [T, B, ...]
        self.head = nn.Linear(a.hidden, V)

    def forward(self, x, state=None):
        y, state = self.rnn(self.embedding(x), state)
        return self.head(y), state


model = CharLSTM(len(vocab)).to(device)
opt = torch.optim.Adam(model.parameters(), lr=a.lr)
data = ids.to(device)
t0 = time.time()
for step in range(1, a.steps + 1):
    starts = torch.randint(0, len(data) - a.seq - 1, (a.batch,), device=device)
    x = torch.stack([data[s:s + a.seq] for s in starts], 1)
    y = torch.stack([data[s + 1:s + a.seq + 1] for s in starts], 1)
    logits, _ = model(x)
    loss = nn.functional.cross_entropy(logits.reshape(-1, len(vocab)), y.reshape(-1))
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    opt.step()
    if step % 100 == 0 or step == a.steps:
        print(f"step {step}: loss {loss.item():.4f} ({time.time() - t0:.0f} s, {device})", flush=True)

state = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
try:
    from safetensors.torch import save_file
    save_file(state, a.out)
except ImportError:  # the format: 8-byte header length, JSON header, the tensors' bytes
    header, blobs, offset = {}, [], 0
    for name in sorted(state):
        b = state[name].numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(state[name].shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(a.out, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
print(f"saved {a.out}: now  unroll import {a.out} --vocab-from {a.text} -o model.ck.safetensors")
