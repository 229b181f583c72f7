"""Data-parallel scaling on this machine: 1 vs 2 processes (gloo, loopback) training the
seed BiLSTM model, and the cost of the gradient all-reduce per step.

    .venv/bin/python benchmarks/distributed.py            # prints a table (runs torchrun itself)

Each process uses one intra-op thread (with 2 cores and 2 processes, more would only
oversubscribe). Per-rank batch 32: 2 processes train on 64 samples per optimizer step.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

WORKER = r"""
import json, os, sys, time
import numpy as np, torch, torch.distributed as dist
import rnnkit
from rnnkit import distributed
from rnnkit.layers import Embedding, Bidirectional, LSTM, Dense
torch.set_num_threads(1)
torch.manual_seed(0)
steps = int(sys.argv[1])
model = rnnkit.Sequential([Embedding(120, 42, input_shape=(33,)), Bidirectional(LSTM(56, return_sequences=True)),
                           Bidirectional(LSTM(12)), Dense(8)])
model.compile("adam", rnnkit.losses.SparseCategoricalCrossentropy(from_logits=True), device="cpu")
world = int(os.environ.get("WORLD_SIZE", "1"))
n = 32 * world * steps
rng = np.random.default_rng(0)
x = rng.integers(1, 120, (n, 33)); y = x[:, 0] % 8
model.fit(x[: 32 * world * 3], y[: 32 * world * 3], batch_size=32, epochs=1, verbose=0)  # warm-up (+ DDP setup)
t = time.perf_counter()
model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
elapsed = time.perf_counter() - t
comm = None
if distributed.is_active():
    grads = torch.zeros(model.count_params())
    for _ in range(5):
        dist.all_reduce(grads)
    t0 = time.perf_counter()
    for _ in range(50):
        dist.all_reduce(grads)
    comm = (time.perf_counter() - t0) / 50
if distributed.is_main():
    print(json.dumps({"world": world, "samples": n, "seconds": elapsed, "samples_per_s": n / elapsed,
                      "step_ms": elapsed / steps * 1000, "allreduce_ms": None if comm is None else comm * 1000,
                      "params": model.count_params()}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(world: int, steps: int) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={world}", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", "--no-python", sys.executable, "-c", WORKER, str(steps)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    steps = int(os.environ.get("STEPS", "60"))
    rounds = []
    for _ in range(2):  # alternate so drift hits both alike
        rounds.append((run(1, steps), run(2, steps)))
    best1 = max(r[0]["samples_per_s"] for r in rounds)
    best2 = max(r[1]["samples_per_s"] for r in rounds)
    two = max((r[1] for r in rounds), key=lambda r: r["samples_per_s"])
    print(f"load: {os.getloadavg()}")
    print("| processes | samples/s | ms/step | all-reduce of the gradients (ms/step) |")
    print("|---|---|---|---|")
    one = max((r[0] for r in rounds), key=lambda r: r["samples_per_s"])
    print(f"| 1 | {best1:,.0f} | {one['step_ms']:.1f} | - |")
    print(f"| 2 | {best2:,.0f} | {two['step_ms']:.1f} | {two['allreduce_ms']:.2f} ({two['params']:,} floats) |")
    print(f"speed-up: {best2 / best1:.2f}x")


if __name__ == "__main__":
    main()
