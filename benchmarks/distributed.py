"""Data-parallel scaling on this machine: 1 vs 2 processes (gloo, loopback) training the
seed BiLSTM model (``fit``) and a streaming character LSTM (``rnnkit train --level char``),
and the cost of one all-reduce of each model's gradient.

    .venv/bin/python benchmarks/distributed.py                 # both tables (runs torchrun itself)
    RNNKIT_DATA_DIR=../shared/data .venv/bin/python benchmarks/distributed.py lm     # the char LM only
    .venv/bin/python benchmarks/distributed.py seed            # the seed model only

Each process uses one intra-op thread (with 2 cores and 2 processes, more would only
oversubscribe). Per-rank batch 32: 2 processes train on 64 samples (or streams) per
optimizer step. 1- and 2-process runs alternate, two rounds, best of each reported.
The char LM (1x512 LSTM, embedding 64, seq 128: the engine's default) trains on
tiny-shakespeare (``LM_CORPUS`` to change); ``LM_STEPS`` steps per run (default 16).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

# Both workers end with this: the all-reduce of a gradient-sized tensor, timed on its own.
ALLREDUCE = r"""
def allreduce_ms(numel, rounds):  # milliseconds for one all-reduce of numel floats; None for 1 process
    import time, torch, torch.distributed as dist
    from rnnkit import distributed
    if not distributed.is_active():
        return None
    grads = torch.zeros(numel)
    for _ in range(3):
        dist.all_reduce(grads)
    t0 = time.perf_counter()
    for _ in range(rounds):
        dist.all_reduce(grads)
    return (time.perf_counter() - t0) / rounds * 1000
"""

WORKER = ALLREDUCE + r"""
import json, os, sys, time
import numpy as np, torch
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
comm_ms = allreduce_ms(model.count_params(), 50)
if distributed.is_main():
    print(json.dumps({"world": world, "samples": n, "seconds": elapsed, "samples_per_s": n / elapsed,
                      "step_ms": elapsed / steps * 1000, "allreduce_ms": comm_ms, "params": model.count_params()}))
"""


LM_WORKER = ALLREDUCE + r"""
import json, sys, tempfile
from pathlib import Path
import torch
from rnnkit import distributed
from rnnkit.lm.checkpoint import load_checkpoint
from rnnkit.lm.stream_train import train
torch.set_num_threads(1)
distributed.setup(torch.device("cpu"))  # joined here, so that train() leaves it for the all-reduce timing
steps, corpus = int(sys.argv[1]), sys.argv[2]
records = []  # metrics lines, every 4 steps (rank 0)
with tempfile.TemporaryDirectory() as tmp:
    train(Path(tmp) / "run", corpus=corpus, hidden=512, embedding=64, batch_size=32, seq_len=128, steps=steps,
          eval_every=10**6, log_every=4, val_fraction=0.005, progress="none", on_log=records.append)
    params = sum(t.numel() for k, t in load_checkpoint(Path(tmp) / "run" / "last.safetensors")[0].items()
                 if k.startswith("model/")) if distributed.is_main() else 0
world = distributed.world_size()
params = distributed.broadcast_int(params)
comm_ms = allreduce_ms(params, 20)
if distributed.is_main():
    rate = sorted(r["chars_per_s"] for r in records[1:])  # the first window holds the warm-up
    chars_per_s = rate[len(rate) // 2]
    print(json.dumps({"world": world, "chars_per_s": chars_per_s, "step_ms": 32 * 128 * world / chars_per_s * 1000,
                      "allreduce_ms": comm_ms, "params": params}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(world: int, worker: str, *args) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={world}", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", "--no-python", sys.executable, "-c", worker, *map(str, args)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if out.returncode != 0:
        raise SystemExit(f"benchmark worker failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def alternate(worker: str, key: str, *args) -> tuple[dict, dict]:
    """The best 1-process and the best 2-process result over two alternating rounds."""
    rounds = [(launch(1, worker, *args), launch(2, worker, *args)) for _ in range(2)]  # drift hits both alike
    return tuple(max((r[i] for r in rounds), key=lambda r: r[key]) for i in (0, 1))


def seed_model() -> None:
    one, two = alternate(WORKER, "samples_per_s", int(os.environ.get("STEPS", "60")))
    print("\nSeed BiLSTM model (fit), per-rank batch 32")
    print("| processes | samples/s | ms/step | all-reduce of the gradients (ms/step) |")
    print("|---|---|---|---|")
    print(f"| 1 | {one['samples_per_s']:,.0f} | {one['step_ms']:.1f} | - |")
    print(f"| 2 | {two['samples_per_s']:,.0f} | {two['step_ms']:.1f} | {two['allreduce_ms']:.2f} ({two['params']:,} floats) |")
    print(f"speed-up: {two['samples_per_s'] / one['samples_per_s']:.2f}x")


def char_lm() -> None:
    corpus = os.environ.get("LM_CORPUS", "tiny-shakespeare")
    one, two = alternate(LM_WORKER, "chars_per_s", int(os.environ.get("LM_STEPS", "16")), corpus)
    print(f"\nStreaming char LM (1x512 LSTM, embedding 64, seq 128, {corpus}), per-rank batch 32")
    print("| processes | streams per step | chars/s | ms/step | all-reduce of the gradient (ms/step) |")
    print("|---|---|---|---|---|")
    print(f"| 1 | 32 | {one['chars_per_s']:,.0f} | {one['step_ms']:.0f} | - |")
    print(f"| 2 | 64 | {two['chars_per_s']:,.0f} | {two['step_ms']:.0f} | "
          f"{two['allreduce_ms']:.1f} ({two['params']:,} floats) |")
    print(f"speed-up: {two['chars_per_s'] / one['chars_per_s']:.2f}x; the all-reduce is "
          f"{two['allreduce_ms'] / two['step_ms']:.1%} of a 2-process step")


def main() -> None:
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    if what not in ("all", "seed", "lm"):
        raise SystemExit(f"usage: distributed.py [all|seed|lm], got {what!r}")
    print(f"load: {os.getloadavg()}")
    if what in ("all", "seed"):
        seed_model()
    if what in ("all", "lm"):
        char_lm()


if __name__ == "__main__":
    main()
