"""Functional vs Sequential vs hand-written PyTorch: the seed BiLSTM's training step, side by side.

    .venv/bin/python benchmarks/functional.py [--rounds 7] [--steps 20]

The seed model (Embedding(120,42) -> Bidirectional(LSTM(56, seq)) -> Bidirectional(LSTM(12))
-> Dense(8), batch 64, length 33) written three ways: ``keras.Sequential``, the same layers as a
functional ``keras.Model(inputs, outputs)``, and torch.nn. A step is forward + sparse
cross-entropy from logits + backward + Adam. Candidates alternate in rounds; the figure is the
median over rounds of each one's time per step, and the ratios are per round. A second table
times the forward of a shared-layer loop (a Dense(64, tanh) called 10 times) as a functional
model against the same loop written as a plain Python function of the layer: the graph's own
cost per call.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

import rnnkit.keras as keras
from rnnkit.allocator import keep_freed_memory

L = keras.layers
VOCAB, LENGTH, CLASSES, BATCH = 120, 33, 8, 64


def seed_layers():
    return [L.Embedding(VOCAB, 42), L.Bidirectional(L.LSTM(56, return_sequences=True)),
            L.Bidirectional(L.LSTM(12)), L.Dense(CLASSES)]


def sequential():
    return keras.Sequential([keras.Input(shape=(LENGTH,), dtype="int32")] + seed_layers())


def functional():
    x = keras.Input(shape=(LENGTH,), dtype="int32")
    h = x
    for layer in seed_layers():
        h = layer(h)
    return keras.Model(x, h)


class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 42)
        self.l1 = nn.LSTM(42, 56, batch_first=True, bidirectional=True)
        self.l2 = nn.LSTM(112, 12, batch_first=True, bidirectional=True)
        self.out = nn.Linear(24, CLASSES)

    def forward(self, x):
        h, _ = self.l1(self.emb(x))
        _, (hn, _) = self.l2(h)
        return self.out(torch.cat([hn[0], hn[1]], -1))


def stepper(model):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3)
    model.train()

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        out = model(x, training=True) if isinstance(model, keras.Model) else model(x)
        F.cross_entropy(out, y).backward()
        opt.step()
    return step


def timed(fn, x, y, steps):
    start = time.perf_counter()
    for _ in range(steps):
        fn(x, y)
    return (time.perf_counter() - start) / steps * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    keep_freed_memory()
    torch.manual_seed(0)
    x = torch.randint(1, VOCAB, (BATCH, LENGTH))
    y = torch.randint(0, CLASSES, (BATCH,))
    cands = {"sequential": stepper(sequential()), "functional": stepper(functional()), "plain": stepper(Plain())}
    for fn in cands.values():
        timed(fn, x, y, 3)
    times = {k: [] for k in cands}
    for r in range(args.rounds):
        order = list(cands)[r % 3:] + list(cands)[:r % 3]
        for k in order:
            times[k].append(timed(cands[k], x, y, args.steps))
    print(f"seed BiLSTM, batch {BATCH}, length {LENGTH}, 1 thread, {args.rounds} rounds x {args.steps} steps")
    print("| candidate | ms/step (median) | / sequential (median of rounds) |")
    print("|---|---|---|")
    for k in cands:
        ratio = statistics.median(a / b for a, b in zip(times[k], times["sequential"]))
        print(f"| {k} | {statistics.median(times[k]):.2f} | {ratio:.3f} |")

    # the graph's own cost: a shared layer called 10 times
    dense = L.Dense(64, activation="tanh")
    inp = keras.Input(shape=(64,))
    h, outs = inp, []
    for _ in range(10):
        h = dense(h)
        outs.append(h)
    graph = keras.Model(inp, outs)
    xs = torch.randn(BATCH, 64)

    def direct(v, _):
        for _ in range(10):
            v = torch.tanh(F.linear(v, dense.kernel.t(), dense.bias))

    def through_graph(v, _):
        graph(v)

    with torch.no_grad():
        for fn in (direct, through_graph):
            timed(fn, xs, None, 20)
        t = {"direct": [], "graph": []}
        for _ in range(args.rounds):
            t["direct"].append(timed(direct, xs, None, 200))
            t["graph"].append(timed(through_graph, xs, None, 200))
    d, g = statistics.median(t["direct"]), statistics.median(t["graph"])
    print(f"\nshared Dense(64) x10, batch {BATCH}, forward: direct {d * 1e3:.0f} us, functional model {g * 1e3:.0f} us "
          f"(+{(g - d) * 1e3 / 10:.0f} us per layer call)")


if __name__ == "__main__":
    main()
