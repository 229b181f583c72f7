"""Throughput on a GPU (or any device): rnnkit vs a hand-written PyTorch cuDNN loop, side by side.

    benchmarks/gpu.sh                      # on a CUDA machine: whole table in under 5 minutes
    python benchmarks/gpu.py --device cpu --steps 5   # smoke run anywhere

Models: the seed BiLSTM (Embedding(120,42) -> BiLSTM(56, seq) -> BiLSTM(12) -> Dense(8),
batch 32 and 256, length 33) and a 2x512 character LSTM (embedding 64, 96 symbols,
length 128, batch 64). Precisions fp32 and bf16 (autocast). Candidates alternate in
rounds after warm-up; the table gives medians and rnnkit/plain (target >= 0.80 on GPU).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import rnnkit
from rnnkit.layers import LSTM, Bidirectional, Dense, Embedding


class PlainSeed(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(120, 42)
        self.l1 = nn.LSTM(42, 56, batch_first=True, bidirectional=True)
        self.l2 = nn.LSTM(112, 12, batch_first=True, bidirectional=True)
        self.out = nn.Linear(24, 8)

    def forward(self, x):
        h, _ = self.l1(self.emb(x))
        _, (h2, _) = self.l2(h)
        return self.out(torch.cat([h2[0], h2[1]], -1))


class PlainChar(nn.Module):
    def __init__(self, vocab=96):
        super().__init__()
        self.emb = nn.Embedding(vocab, 64)
        self.rnn = nn.LSTM(64, 512, num_layers=2, batch_first=True)
        self.out = nn.Linear(512, vocab)

    def forward(self, x):
        h, _ = self.rnn(self.emb(x))
        return self.out(h)


def rnnkit_seed():
    return rnnkit.Sequential([Embedding(120, 42, input_shape=(33,)), Bidirectional(LSTM(56, return_sequences=True)),
                              Bidirectional(LSTM(12)), Dense(8)])


def rnnkit_char(vocab=96):
    return rnnkit.Sequential([Embedding(vocab, 64, input_shape=(128,)), LSTM(512, return_sequences=True),
                              LSTM(512, return_sequences=True), Dense(vocab)])


def make_step(model, precision, device):
    opt = torch.optim.Adam(model.parameters(), 1e-3, fused=device.type == "cuda")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            out = model(x)
        loss = nn.functional.cross_entropy(out.float().reshape(-1, out.shape[-1]), y.reshape(-1))
        if scaler:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()

    return step


def measure(cases, steps, rounds, device):
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = {name: [] for name in cases}
    for name, (step, x, y) in cases.items():
        for _ in range(3):
            step(x, y)
    sync()
    for _ in range(rounds):
        for name, (step, x, y) in cases.items():
            sync()
            t = time.perf_counter()
            for _ in range(steps):
                step(x, y)
            sync()
            times[name].append((time.perf_counter() - t) / steps)
    return {name: statistics.median(v) for name, v in times.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--precisions", default="fp32,bf16")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    rows = []
    configs = [("seed BiLSTM", 32, rnnkit_seed, PlainSeed, (33,), 120, 8),
               ("seed BiLSTM", 256, rnnkit_seed, PlainSeed, (33,), 120, 8),
               ("char LSTM 2x512", 64, rnnkit_char, PlainChar, (128,), 96, None)]
    for precision in args.precisions.split(","):
        for label, batch, make_ours, make_plain, shape, vocab, classes in configs:
            x = torch.randint(0, vocab, (batch,) + shape, device=device)
            y = torch.randint(0, classes or vocab, (batch,) if classes else (batch,) + shape, device=device)
            ours, plain = make_ours().to(device), make_plain().to(device)
            cases = {"rnnkit": (make_step(ours, precision, device), x, y),
                     "plain": (make_step(plain, precision, device), x, y)}
            t = measure(cases, args.steps, args.rounds, device)
            per = batch * (shape[0] if classes is None else 1)
            unit = "chars/s" if classes is None else "samples/s"
            rows.append((label, batch, precision, per / t["rnnkit"], per / t["plain"], unit))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}, torch {torch.__version__}, {args.steps} steps x {args.rounds} rounds (median)")
    print("| model | batch | precision | rnnkit | plain PyTorch | ratio |")
    print("|---|---|---|---|---|---|")
    for label, batch, precision, ours, plain, unit in rows:
        print(f"| {label} | {batch} | {precision} | {ours:,.0f} {unit} | {plain:,.0f} {unit} | {ours / plain:.2f} |")


if __name__ == "__main__":
    main()
