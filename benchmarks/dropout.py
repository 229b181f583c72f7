"""rnnkit's CPU dropout (rnnkit/native/dropout.c) against PyTorch's F.dropout, forward and backward.

    .venv/bin/python benchmarks/dropout.py [--rounds 7] [--threads 1]

Each shape is a dropout tensor of a model rnnkit trains: the char model between 4x384
MinGRU layers, the 1x512 LSTM preset's, the word-level default's. The two run alternately
in rounds (median of the rounds' mean over 20 calls); prints Markdown for benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from rnnkit.allocator import keep_freed_memory
from rnnkit.layers._dropout import _kernel, dropout

SHAPES = {"char 4x384, seq 128": (32, 128, 384), "char 1x512, seq 64": (32, 64, 512), "word 2x256, seq 35": (32, 35, 256)}


def timed(fn, calls=20) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--p", type=float, default=0.2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    if _kernel() is None:
        print("the C kernel is unavailable here (rnnkit.native)", file=sys.stderr)
        return 1
    print(f"load average {os.getloadavg()[0]:.1f}; {args.threads} thread(s); p = {args.p}\n")
    print("| tensor | elements | F.dropout ms (forward + backward) | rnnkit ms | speed-up |")
    print("|---|---|---|---|---|")
    for name, shape in SHAPES.items():
        x = torch.randn(*shape, requires_grad=True)
        g = torch.randn(*shape)
        fns = {"torch": lambda: F.dropout(x, args.p, True).backward(g), "rnnkit": lambda: dropout(x, args.p).backward(g)}
        for fn in fns.values():
            timed(fn, 3)
        ms = {k: [] for k in fns}
        for r in range(args.rounds):
            for k in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
                ms[k].append(timed(fns[k]))
        t, n = statistics.median(ms["torch"]), statistics.median(ms["rnnkit"])
        print(f"| {name} | {x.numel():,} | {t:.2f} | {n:.2f} | {t / n:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
