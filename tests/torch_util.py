"""What the PyTorch parity tests share (tests/torch_parity.py, tests/torch_import.py):
safetensors read and written with the standard library (Debian 12 has no Python
safetensors package), unroll's language model as torch.nn modules, and the two
checks of agreement: the mean cross-entropy over a text and a greedy continuation.
"""
import json
import random
import struct
import subprocess
import sys
from pathlib import Path

try:
    import torch
    import torch.nn as nn
except ImportError:
    sys.exit("PyTorch is missing: apt-get install python3-torch (scripts/setup.sh --tests does)")

# safetensors dtype name <-> torch dtype
DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8}


def read_safetensors(path):
    """name -> float64 tensor, and the metadata. The format: an 8-byte little-endian
    header length, the JSON header, then the tensors' bytes."""
    raw = Path(path).read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    for name, t in header.items():
        lo, hi = t["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[lo:hi]), dtype=DTYPES[t["dtype"]]).reshape(t["shape"]).double()
    return out, meta


def write_safetensors(path, tensors, metadata=None):
    """What safetensors.torch.save_file writes: tensors (name -> tensor, any of DTYPES)
    packed in name order after a header padded with spaces to a multiple of 8."""
    names = {v: k for k, v in DTYPES.items()}
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        b = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def make_text(seed, lines):
    """Sentences over a small vocabulary: structure for a model to learn in a few steps."""
    words = "the a cat dog sat ran on in under mat hat red big small and then saw it".split()
    r = random.Random(seed)
    return "".join(" ".join(r.choice(words) for _ in range(r.randint(3, 9))).capitalize() + ".\n"
                   for _ in range(lines))


def recurrent(cell, inputs, hidden, layers):
    """nn.LSTM / nn.GRU / nn.RNN for an unroll cell name (rnn, rnn-relu, lstm, gru)."""
    if cell == "lstm":
        return nn.LSTM(inputs, hidden, layers)
    if cell == "gru":
        return nn.GRU(inputs, hidden, layers)
    return nn.RNN(inputs, hidden, layers, nonlinearity="relu" if cell == "rnn-relu" else "tanh")


class LanguageModel(nn.Module):
    """unroll's language model in torch.nn: an unroll checkpoint's names are these modules'
    names (embedding, rnn, head). `names` renames the three modules, as other people's
    models call them (encoder, lstm, decoder, ...)."""

    def __init__(self, cell, vocab, embed, hidden, layers, names=("embedding", "rnn", "head")):
        super().__init__()
        self.names = names
        self.V, self.E = vocab, embed
        if embed:
            setattr(self, names[0], nn.Embedding(vocab, embed))
        setattr(self, names[1], recurrent(cell, embed or vocab, hidden, layers))
        setattr(self, names[2], nn.Linear(hidden, vocab))

    def forward(self, ids, state=None):  # ids [T, B] (or [T]) -> logits [T, B, V] (or [T, V]), state
        one = ids.dim() == 1
        if one:
            ids = ids.unsqueeze(1)
        dt = next(self.parameters()).dtype
        x = getattr(self, self.names[0])(ids) if self.E else nn.functional.one_hot(ids, self.V).to(dt)
        y, state = getattr(self, self.names[1])(x, state)
        logits = getattr(self, self.names[2])(y)
        return (logits.squeeze(1) if one else logits), state


def run_unroll(binary, *args):
    r = subprocess.run([binary, *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"unroll {' '.join(map(str, args))} failed:\n{r.stderr}")
    return r.stdout


def check_cross_entropy(binary, model, ck, text_path, index, name, failures):
    """The mean cross-entropy over the text at text_path, batch 1, state carried, computed
    by `model` (float64) against `unroll eval --batch 1 --json` on checkpoint ck: 1e-5
    relative. Returns the relative difference."""
    text = Path(text_path).read_text()
    ids = torch.tensor([index[c] for c in text])
    with torch.no_grad():
        logits, _ = model(ids[:-1])
        theirs = nn.functional.cross_entropy(logits, ids[1:]).item()
    ours = json.loads(run_unroll(binary, "eval", ck, text_path, "--batch", 1, "--json", "--threads", 1))
    rel = abs(ours["loss"] - theirs) / theirs
    print(f"{name}: cross-entropy unroll {ours['loss']:.9f} PyTorch {theirs:.9f} "
          f"(relative difference {rel:.2e}, {ours['tokens']} tokens)")
    if ours["tokens"] != len(ids) - 1 or not rel <= 1e-5:
        failures.append(f"{name}: cross-entropy differs by {rel:.2e} relative ({ours['tokens']} tokens)")
    return rel


def check_greedy(binary, model, ck, vocab, prime, name, failures, n=200):
    """The greedy continuation of n characters from prime: `model` against
    `unroll sample --greedy`, the same text."""
    index = {t: i for i, t in enumerate(vocab)}
    with torch.no_grad():
        logits, state = model(torch.tensor([index[c] for c in prime]))
        nxt, text, margin = int(logits[-1].argmax()), [], float("inf")
        for _ in range(n):
            text.append(vocab[nxt])
            logits, state = model(torch.tensor([nxt]), state)
            top = logits[-1].topk(2).values
            margin = min(margin, float(top[0] - top[1]))
            nxt = int(logits[-1].argmax())
    theirs = prime + "".join(text)
    ours = run_unroll(binary, "sample", ck, "--greedy", "-p", prime, "-n", n, "--threads", 1)
    ours = ours[:-1] if ours.endswith("\n") else ours
    same = ours == theirs
    print(f"{name}: greedy {n} characters {'identical' if same else 'DIFFER'} "
          f"(smallest top-2 logit margin along PyTorch's path {margin:.2e})")
    if not same:
        at = next((i for i, (x, y) in enumerate(zip(ours, theirs)) if x != y), min(len(ours), len(theirs)))
        failures.append(f"{name}: greedy text differs from character {at}: "
                        f"unroll {ours[at:at + 20]!r}, PyTorch {theirs[at:at + 20]!r}")
