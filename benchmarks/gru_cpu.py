"""One bidirectional GRU layer trained on CPU: rnnkit's hand-written BPTT vs torch.gru, side by side.

    .venv/bin/python benchmarks/gru_cpu.py               # the table in benchmarks/README.md (~5 minutes)
    .venv/bin/python benchmarks/gru_cpu.py --rounds 3    # quicker, noisier

A step is forward + backward of the layer alone (``(batch, time, in)`` -> all outputs,
loss = their sum): ``torch.gru`` is ``nn.GRU`` (PyTorch's per-step ATen loop under
autograd), ``rnnkit`` is ``rnnkit.layers._gru_cpu.gru_train`` on the same weights, and
``torch.lstm`` (oneDNN's fused kernel, same sizes) is there for scale. The sizes are the
seed model's two layers, then larger ones up to where the work is all matrix products.
Candidates alternate in rounds; speed-ups are the median (quartiles) of per-round ratios.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch
from torch import nn

from rnnkit.layers._gru_cpu import gru_train
from seed_models import TorchCandidate, measure

# (batch, time, in, units): the seed's two layers, then growing work per step
SIZES = [(32, 33, 42, 56), (32, 33, 112, 12), (64, 33, 42, 56), (16, 200, 32, 32), (128, 50, 64, 64),
         (32, 100, 128, 128), (64, 100, 128, 256)]


def candidates(batch, time, n_in, units):
    gru = nn.GRU(n_in, units, batch_first=True, bidirectional=True)
    lstm = nn.LSTM(n_in, units, batch_first=True, bidirectional=True)
    weights = list(gru._flat_weights)
    x = torch.randn(batch, time, n_in, requires_grad=True)
    h0 = torch.zeros(2, batch, units)

    def native():
        gru(x)[0].sum().backward()

    def ours():
        gru_train(x, None, h0, weights, True, True)[0].sum().backward()

    def fused_lstm():
        lstm(x)[0].sum().backward()

    return {"torch.gru": TorchCandidate(native), "rnnkit": TorchCandidate(ours), "torch.lstm": TorchCandidate(fused_lstm)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--seconds", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    for i, size in enumerate(SIZES):
        def progress(r, i=i):
            print(f"size {i + 1}/{len(SIZES)} {size}: round {r + 1}/{args.rounds}", file=sys.stderr)

        t = measure(candidates(*size), args.rounds, args.seconds, progress, baseline="torch.gru")
        rows.append((size, t))
    print(f"{args.threads} thread(s), torch {torch.__version__}, load average "
          + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    print("| batch, time, in, units | torch.gru ms | rnnkit ms | rnnkit speed-up (quartiles) | torch.lstm ms |")
    print("|---|---|---|---|---|")
    for size, t in rows:
        q1, med, q3 = t["rnnkit"][2]
        print(f"| {', '.join(map(str, size))} | {t['torch.gru'][0] * 1e3:.1f} | {t['rnnkit'][0] * 1e3:.1f} | "
              f"{med:.2f}x ({q1:.2f}-{q3:.2f}) | {t['torch.lstm'][0] * 1e3:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
