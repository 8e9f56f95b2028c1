#!/usr/bin/python3
"""Runs `unroll bench` and the PyTorch peer (../shared/bench/torch_charrnn.py)
side by side on the char-rnn workload and prints a Markdown table of medians
and ratios (unroll / PyTorch), measured in the same run on the same machine.

Needs: a built ./build/unroll, and Debian's PyTorch with OpenBLAS
(apt-get install python3-torch libopenblas0-pthread).

    /usr/bin/python3 bench/compare.py                 # all configs, 3 repeats
    /usr/bin/python3 bench/compare.py --configs lstm:2:128 --repeats 5

PyTorch runs at its best 2-core setting (--threads 1 --blas-threads 2, with
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for it alone), and also with 1
thread; unroll with --threads 2 and --threads 1.
"""
import argparse, json, os, statistics, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEER = os.path.join(ROOT, "..", "shared", "bench", "torch_charrnn.py")
UNROLL = os.path.join(ROOT, "build", "unroll")

ap = argparse.ArgumentParser()
ap.add_argument("--configs", default="lstm:2:128,lstm:2:512,lstm:3:512,gru:2:512,rnn:2:512",
                help="comma-separated cell:layers:hidden")
ap.add_argument("--repeats", type=int, default=3)
ap.add_argument("--batch", type=int, default=50)
ap.add_argument("--seq", type=int, default=50)
ap.add_argument("--no-torch", action="store_true", help="measure unroll only")
args = ap.parse_args()


def steps_for(hidden):
    return 200 if hidden <= 128 else 40


def run_json(cmd, env=None):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def unroll(cell, layers, hidden, threads):
    return run_json([UNROLL, "bench", "--json", "--cell", cell, "--layers", str(layers),
                     "--hidden", str(hidden), "--batch", str(args.batch), "--seq", str(args.seq),
                     "--steps", str(steps_for(hidden)), "--threads", str(threads)])


def torch(cell, layers, hidden, threads, blas):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    return run_json(["/usr/bin/python3", PEER, "--cell", cell, "--layers", str(layers),
                     "--hidden", str(hidden), "--batch", str(args.batch), "--seq", str(args.seq),
                     "--steps", str(steps_for(hidden)), "--threads", str(threads),
                     "--blas-threads", str(blas)], env=env)


def median(rows, key):
    return statistics.median(r[key] for r in rows)


peak = run_json([UNROLL, "bench", "--json", "--gemm-peak", "--steps", "1", "--sample-len", "0"])["gemm_peak_gflops"]
print(f"sgemm 2048^3 peak (oneDNN, 2 threads): {peak:.0f} GFLOP/s; medians of {args.repeats} runs\n")
head = ("| config | unroll train tok/s (2 thr / 1 thr) | PyTorch train tok/s (best / 1 thr) | train ratio "
        "| unroll sample tok/s | PyTorch sample tok/s | sample ratio | unroll GFLOP/s (% of peak) "
        "| unroll RSS MiB | PyTorch RSS MiB | RSS ratio |")
print(head)
print("|" + "---|" * (head.count("|") - 1))
for spec in args.configs.split(","):
    cell, layers, hidden = spec.split(":")
    layers, hidden = int(layers), int(hidden)
    u2, u1, t2, t1 = [], [], [], []
    for _ in range(args.repeats):  # interleaved, so drift hits both alike
        u2.append(unroll(cell, layers, hidden, 2))
        u1.append(unroll(cell, layers, hidden, 1))
        if not args.no_torch:
            t2.append(torch(cell, layers, hidden, 1, 2))
            t1.append(torch(cell, layers, hidden, 1, 1))
    ut, us = median(u2, "train_tok_s"), median(u2, "sample_tok_s")
    ug, ur = median(u2, "train_gflops_achieved"), median(u2, "peak_rss_mib")
    row = f"| {cell.upper()} {layers}×{hidden} | {ut:,.0f} / {median(u1, 'train_tok_s'):,.0f} "
    if t2:
        tt, ts, tr = median(t2, "train_tok_s"), median(t2, "sample_tok_s"), median(t2, "peak_rss_mib")
        row += (f"| {tt:,.0f} / {median(t1, 'train_tok_s'):,.0f} | **{ut / tt:.2f}×** | {us:,.0f} "
                f"| {ts:,.0f} | **{us / ts:.2f}×** | {ug:.0f} ({100 * ug / peak:.0f}%) | {ur:.0f} "
                f"| {tr:.0f} | {ur / tr:.2f} |")
    else:
        row += f"| – | – | {us:,.0f} | – | – | {ug:.0f} ({100 * ug / peak:.0f}%) | {ur:.0f} | – | – |"
    print(row, flush=True)
