#!/usr/bin/env python3
"""PyTorch -> unroll (issue 19): a language model built and trained in PyTorch,
saved as safetensors, becomes an unroll checkpoint with `unroll import`, and
unroll then computes what PyTorch computes.

For one cell kind (--cell), with 1 and 2 layers, one-hot and embedding input:
build embedding -> nn.LSTM/GRU/RNN -> nn.Linear under other people's module
names (encoder, lstm, decoder, ...), train it for 40 Adam steps on a generated
text, save its state_dict with the writer in torch_util (what
safetensors.torch.save_file writes; one of the four in F16, which import
converts), import it, and check against PyTorch in float64:

- the mean cross-entropy over a held-out text, batch 1, state carried, equals
  `unroll eval --batch 1 --json`'s loss to 1e-5 relative;
- the greedy continuation of 200 characters from a prime is the same text as
  `unroll sample --greedy`.

Needs Debian's PyTorch (python3-torch, which `scripts/setup.sh --tests`
installs); without it the test fails, it does not skip.
  /usr/bin/python3 tests/torch_import.py --unroll build/unroll --cell lstm
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch_util import (LanguageModel, check_cross_entropy, check_greedy, make_text, nn, run_unroll, torch,
                        write_safetensors)

ap = argparse.ArgumentParser()
ap.add_argument("--unroll", required=True, help="the unroll binary")
ap.add_argument("--cell", required=True, choices=["rnn", "rnn-relu", "lstm", "gru"])
a = ap.parse_args()

# The four models: layers, embedding size, module names, how the vocabulary is given, dtype.
CASES = [(1, 0, ("emb", "rnn", "fc"), "json", torch.float32),
         (1, 8, ("encoder", "lstm", "decoder"), "lines", torch.float32),
         (2, 0, ("embedding", "core", "proj"), "text", torch.float32),
         (2, 8, ("encoder", "net", "decoder"), "json", torch.float16)]

failures = []
with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    text = make_text(1, 400)
    (tmp / "train.txt").write_text(text)
    (tmp / "held.txt").write_text(make_text(2, 40))
    vocab = sorted(set(text))  # what `unroll train` and --vocab-from build: code points in order
    index = {t: i for i, t in enumerate(vocab)}
    (tmp / "vocab.json").write_text(json.dumps(vocab))
    (tmp / "vocab.txt").write_text("".join(t.replace("\\", "\\\\").replace("\n", "\\n") + "\n" for t in vocab))
    ids = torch.tensor([index[c] for c in text])
    for n, (layers, embed, names, vocab_as, dtype) in enumerate(CASES):
        name = (f"{a.cell} {layers} layer{'s' if layers > 1 else ''}, "
                f"{'embedding ' + str(embed) if embed else 'one-hot'}, {'/'.join(names)}, "
                f"{str(dtype).replace('torch.', '')}")
        torch.manual_seed(10 + n)
        model = LanguageModel(a.cell, len(vocab), embed, 24, layers, names)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for step in range(40):  # random windows of 25 characters, batch 8
            starts = torch.randint(0, len(ids) - 26, (8,))
            x = torch.stack([ids[s:s + 25] for s in starts], 1)
            y = torch.stack([ids[s + 1:s + 26] for s in starts], 1)
            logits, _ = model(x)
            loss = nn.functional.cross_entropy(logits.reshape(-1, len(vocab)), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
        state = {k: v.to(dtype) for k, v in model.state_dict().items()}
        write_safetensors(tmp / f"m{n}.safetensors", state)
        # The reference is the model as saved: F16 weights widened to float64.
        model = model.double()
        model.load_state_dict({k: v.double() for k, v in state.items()})
        model.eval()

        ck = tmp / f"ck{n}.safetensors"
        given = {"json": ["--vocab", tmp / "vocab.json"], "lines": ["--vocab", tmp / "vocab.txt"],
                 "text": ["--vocab-from", tmp / "train.txt"]}[vocab_as]
        cell = ["--cell", "rnn-relu"] if a.cell == "rnn-relu" else []
        out = run_unroll(a.unroll, "import", tmp / f"m{n}.safetensors", *given, *cell, "-o", ck)
        if dtype == torch.float16 and "F16 tensors converted to F32" not in out:
            failures.append(f"{name}: import did not say that it converted F16:\n{out}")
        info = json.loads(run_unroll(a.unroll, "info", ck, "--json"))
        cfg = info["model"]
        if (cfg["cell"], cfg["layers"], cfg["hidden"], cfg["embed"]) != (a.cell, layers, 24, embed):
            failures.append(f"{name}: imported as {cfg['cell']} {cfg['layers']}x{cfg['hidden']} embed {cfg['embed']}")
        check_cross_entropy(a.unroll, model, ck, tmp / "held.txt", index, name, failures)
        check_greedy(a.unroll, model, ck, vocab, "The cat sat", name, failures)

if failures:
    sys.exit("torch_import: FAILED\n" + "\n".join(failures))
print(f"torch_import: {a.cell}: all 4 PyTorch models agree with their unroll imports")
