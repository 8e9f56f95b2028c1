#!/usr/bin/env python3
"""Where the gradient all-reduce begins to dominate data-parallel training.

For each standard config: its parameter count P (from `unroll bench`), the
measured time of one training step on one core (batch 50 x seq 50: each rank
keeps its own 50 streams, so the global batch grows with the ranks), and a
ring all-reduce of the 4P-byte gradient over N ranks:

    t(N) = 2 (N-1)/N * 4P / bandwidth + 2 (N-1) * latency

with latency 50 us (10 Gbit/s Ethernet, TCP) or 5 us (100 Gbit/s, RDMA). The
table gives t in ms and as a share of the step, for 8, 64 and 512 ranks.

    /usr/bin/python3 bench/allreduce_model.py [--bin build/unroll] [--steps 10]
"""
import argparse
import json
import statistics
import subprocess

CONFIGS = [("lstm", 2, 128), ("lstm", 2, 512), ("lstm", 3, 512), ("gru", 2, 512), ("rnn", 2, 512)]
NETWORKS = [("10 Gbit/s", 10e9 / 8, 50e-6), ("100 Gbit/s", 100e9 / 8, 5e-6)]
RANKS = [8, 64, 512]


def measure(binary, cell, layers, hidden, steps, repeats=3):
    runs = []
    for _ in range(repeats):
        out = subprocess.run([binary, "bench", "--json", "--cell", cell, "--layers", str(layers), "--hidden",
                              str(hidden), "--steps", str(steps), "--sample-len", "0", "--threads", "1"],
                             check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(out))
    return runs[0]["params"], statistics.median(r["ms_per_step"] for r in runs)


def allreduce_ms(params, n, bandwidth, latency):
    return (2 * (n - 1) / n * 4 * params / bandwidth + 2 * (n - 1) * latency) * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/unroll")
    ap.add_argument("--steps", type=int, default=10)
    a = ap.parse_args()
    head = "| config | parameters | gradient MB | step on 1 core (ms) |"
    sep = "|---|---|---|---|"
    for net, _, _ in NETWORKS:
        for n in RANKS:
            head += f" {n} ranks, {net} |"
            sep += "---|"
    print(head)
    print(sep)
    for cell, layers, hidden in CONFIGS:
        params, step = measure(a.bin, cell, layers, hidden, a.steps)
        row = f"| {cell.upper()} {layers}x{hidden} | {params:,} | {4 * params / 1e6:.1f} | {step:.0f} |"
        for _, bw, lat in NETWORKS:
            for n in RANKS:
                t = allreduce_ms(params, n, bw, lat)
                row += f" {t:.1f} ms ({100 * t / step:.0f}%) |"
        print(row)


if __name__ == "__main__":
    main()
