#!/usr/bin/env python3
"""The PyTorch side of the learning-per-step comparison (bench/learning.sh).

Trains the model `unroll train` trains, the way it trains it, so that the two
validation curves differ only where the two tools differ:

- data: a character vocabulary of the text's sorted code points, or with
  --pretokenized the words of a pre-tokenized corpus (split at spaces, an
  <eos> ending each non-empty line, as text/words.h reads Penn Treebank);
  the first --train fraction trains and the next --val fraction validates,
  as `unroll train --split` cuts them, or --val-file validates (`unroll
  train --val`) and all of --data trains;
- batches: B contiguous streams of (n - 1) // B characters, chunks of T steps,
  the hidden state carried across chunks and reset at each epoch (truncated
  BPTT), as text/corpus.h's BatchStream lays them out;
- model: one-hot input or an embedding -> stacked nn.LSTM / nn.GRU / nn.RNN ->
  linear head; dropout on the embedding's output, between layers and before
  the head (unroll's places); PyTorch's initialisation, or unroll's
  `--init uniform` (every weight U(+-s), biases 0) with --init uniform;
  plus an LSTM forget-gate bias;
- loss: mean cross-entropy per token; Adam (betas 0.9, 0.999, eps 1e-8);
  the gradient clipped to a global norm;
- validation: infer/evaluate.h's scheme (B streams, chunks of T, state
  carried, the remainder scored by the last stream going on alone).

Prints one JSON line per evaluation: step, validation loss (nats per
character), seconds of training so far. With --out DIR it also writes
DIR/metrics.jsonl in unroll's format (eval and step records, "elapsed" the
wall time since the start, evaluations included, as unroll counts it) and
DIR/config.json, so that `unroll report` draws the run beside unroll's. Run
with Debian's PyTorch:
  /usr/bin/python3 bench/learning_torch.py --data input.txt --steps 400
"""
import argparse
import json
import math
import os
import sys
import time

# One thread pool, sized before torch loads: OpenMP and OpenBLAS each
# starting their own on the same cores run several times slower.
_threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "1"
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = _threads

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--data", required=True)
ap.add_argument("--cell", choices=["lstm", "gru", "rnn"], default="lstm")
ap.add_argument("--layers", type=int, default=2)
ap.add_argument("--hidden", type=int, default=128)
ap.add_argument("--embed", type=int, default=0, help="0 = one-hot input")
ap.add_argument("--dropout", type=float, default=0.0)
ap.add_argument("--batch", type=int, default=50)
ap.add_argument("--seq", type=int, default=50)
ap.add_argument("--lr", type=float, default=2e-3)
ap.add_argument("--clip", type=float, default=5.0)
ap.add_argument("--pretokenized", action="store_true", help="words separated by spaces, <eos> at line ends")
ap.add_argument("--val-file", default="", help="validate on this file; all of --data trains")
ap.add_argument("--train", type=float, default=0.9)
ap.add_argument("--val", type=float, default=0.05)
ap.add_argument("--steps", type=int, default=400)
ap.add_argument("--time", type=float, default=0.0,
                help="also stop once this many seconds have passed since the start, evaluations included (unroll train --time)")
ap.add_argument("--eval-every", type=int, default=100)
ap.add_argument("--init", choices=["pytorch", "uniform"], default="pytorch")
ap.add_argument("--init-scale", type=float, default=0.08)
ap.add_argument("--forget-bias", type=float, default=0.0)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--out", default="", help="a run folder for `unroll report`")
a = ap.parse_args()
record = None
if a.out:
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump({"command": " ".join(["python3"] + sys.argv), "tool": "PyTorch " + torch.__version__,
                   "train": vars(a)}, f, indent=2)
    record = open(os.path.join(a.out, "metrics.jsonl"), "w")

torch.manual_seed(a.seed)
torch.set_num_threads(a.threads)



def tokens_of(path):
    text = open(path, encoding="utf-8").read()
    if text.startswith("\ufeff"):
        text = text[1:]  # as read_text_file does
    if not a.pretokenized:
        return list(text)
    out = []
    for line in text.split("\n"):
        words = line.split()
        out += words + ["<eos>"] if words else []
    return out


tokens = tokens_of(a.data)
vocab = sorted(set(tokens))
index = {c: i for i, c in enumerate(vocab)}
ids = torch.tensor([index[c] for c in tokens], dtype=torch.long)
if a.val_file:
    train_ids = ids
    val_ids = torch.tensor([index.get(c, index.get("<unk>", 0)) for c in tokens_of(a.val_file)], dtype=torch.long)
else:
    n = len(ids)
    n_train = min(n, math.floor(n * a.train))
    n_val = min(n - n_train, math.floor(n * a.val))
    train_ids, val_ids = ids[:n_train], ids[n_train:n_train + n_val]
V, H, B, T = len(vocab), a.hidden, a.batch, a.seq


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(V, a.embed) if a.embed else None
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[a.cell]
        self.rnn = rnn(a.embed or V, H, a.layers, dropout=a.dropout if a.layers > 1 else 0.0)
        self.drop = nn.Dropout(a.dropout)
        self.head = nn.Linear(H, V)

    def forward(self, x, h):  # x [T, B] ids
        if self.embedding is not None:
            x = self.drop(self.embedding(x))
        else:
            x = nn.functional.one_hot(x, V).float()
        y, h = self.rnn(x, h)
        return self.head(self.drop(y)), h


model = Model()
with torch.no_grad():
    if a.init == "uniform":
        for name, p in model.named_parameters():
            if "bias" in name:
                p.zero_()
            else:
                p.uniform_(-a.init_scale, a.init_scale)
    if a.cell == "lstm" and a.forget_bias:
        for l in range(a.layers):
            getattr(model.rnn, f"bias_ih_l{l}")[H:2 * H] += a.forget_bias
opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
loss_fn = nn.CrossEntropyLoss()


def zero_state(b):
    z = torch.zeros(a.layers, b, H)
    return (z, z.clone()) if a.cell == "lstm" else z


def detach(h):
    return tuple(x.detach() for x in h) if isinstance(h, tuple) else h.detach()


def evaluate(seq_ids):
    """infer/evaluate.h: B streams of (n-1)//B steps, the rest by the last stream."""
    model.eval()
    m = len(seq_ids)
    b = max(1, min(B, (m - 1) // T))
    length = (m - 1) // b
    total, count = 0.0, 0
    with torch.no_grad():
        h = zero_state(b)
        streams = torch.stack([seq_ids[k * length:(k + 1) * length + 1] for k in range(b)], dim=1)
        for c0 in range(0, length, T):
            steps = min(T, length - c0)
            z, h = model(streams[c0:c0 + steps], h)
            total += nn.functional.cross_entropy(z.reshape(-1, V), streams[c0 + 1:c0 + steps + 1].reshape(-1),
                                                 reduction="sum").item()
            count += steps * b
        if m - 1 > b * length:  # the remainder: the last stream goes on
            h = tuple(x[:, b - 1:b].contiguous() for x in h) if isinstance(h, tuple) else h[:, b - 1:b].contiguous()
            rest = seq_ids[b * length:]
            for p0 in range(0, len(rest) - 1, T):
                steps = min(T, len(rest) - 1 - p0)
                z, h = model(rest[p0:p0 + steps].unsqueeze(1), h)
                total += nn.functional.cross_entropy(z.reshape(-1, V), rest[p0 + 1:p0 + steps + 1],
                                                     reduction="sum").item()
                count += steps
    model.train()
    return total / count


# BatchStream: stream k covers columns k*len .. k*len + len - 1.
length = (len(train_ids) - 1) // B
chunks = length // T
streams = torch.stack([train_ids[k * length:(k + 1) * length + 1] for k in range(B)], dim=1)  # [len+1, B]
h = zero_state(B)
seconds = 0.0
start = time.perf_counter()
window = []
for step in range(1, a.steps + 1):
    k = (step - 1) % chunks
    if k == 0:
        h = zero_state(B)  # a new epoch starts from zero
    t0 = time.perf_counter()
    x, y = streams[k * T:(k + 1) * T], streams[k * T + 1:(k + 1) * T + 1]
    z, h = model(x, h)
    h = detach(h)
    loss = loss_fn(z.reshape(-1, V), y.reshape(-1))
    opt.zero_grad()
    loss.backward()
    if a.clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), a.clip)
    opt.step()
    seconds += time.perf_counter() - t0
    window.append(loss.item())
    if record and step % 10 == 0:
        record.write(json.dumps({"kind": "step", "step": step, "train_loss": sum(window) / len(window),
                                 "elapsed": time.perf_counter() - start, "lr": a.lr}) + "\n")
        window = []
    out_of_time = a.time > 0 and time.perf_counter() - start >= a.time
    if step % a.eval_every == 0 or step == a.steps or out_of_time:
        v = evaluate(val_ids)
        print(json.dumps({"step": step, "val_loss": round(v, 4), "train_seconds": round(seconds, 1)}), flush=True)
        if record:
            record.write(json.dumps({"kind": "eval", "step": step, "val_loss": v, "train_seconds": seconds,
                                     "elapsed": time.perf_counter() - start}) + "\n")
            record.flush()
    if out_of_time:
        break
