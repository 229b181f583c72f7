"""Training throughput of the seed models on CPU: rnnkit vs hand-written PyTorch vs Keras 3, side by side.

    .venv/bin/python benchmarks/seed_models.py                  # the table in benchmarks/README.md
    .venv/bin/python benchmarks/seed_models.py --quick --no-keras   # smoke run, under a minute

Models (vocabulary 120, length 33, 8 classes, synthetic data):
``bilstm`` Embedding(120,42) -> Bidirectional(LSTM(56, seq)) -> Bidirectional(LSTM(12)) -> Dense(8);
``conv`` Embedding -> Conv1D(56,5,relu) -> MaxPooling1D(4) -> Bidirectional(LSTM(12)) -> Dense(8);
``bigru`` the first with GRU cells. A training step is forward + sparse cross-entropy
(from logits) + backward + Adam step.

Candidates, per model, batch size and thread setting:
``plain``: the same architecture written with torch.nn (nn.LSTM/nn.GRU bidirectional,
nn.Conv1d, ...), the same step with ``torch.optim.Adam(fused=True)``;
``rnnkit``: the rnnkit model, the same hand-written step;
``rnnkit fit``: rnnkit's own loop, ``model.compile("adam", ...)`` + ``fit`` (timed as Keras's, below);
``rnnkit torch.gru`` (bigru only): rnnkit with its CPU GRU path switched off (the "before");
``keras-tf`` / ``keras-torch``: Keras 3 ``fit`` on its TensorFlow / PyTorch backend, in
worker processes (``benchmarks/keras_worker.py``) run by ``--keras-python``. ``fit`` runs are
timed from the end of their first batch to the end of their last.

Allocator: every candidate in this process runs with rnnkit's malloc setting
(`rnnkit.allocator.keep_freed_memory`, which ``fit`` applies anyway), so the ratios
measure the frameworks, not glibc; ``RNNKIT_KEEP_FREED_MEMORY=0`` runs without it.

Thread settings: ``--threads 1,2`` runs every table twice: with ``torch.set_num_threads(n)``
for the PyTorch candidates and Keras-torch, and for Keras-TF 1 intra-op thread (n=1) or
TensorFlow's default (otherwise). Candidates alternate in rounds after a warm-up (the
order rotates each round); times are medians over rounds of a chunk of steps lasting
about ``--seconds``. Ratios compare with ``plain`` at the same setting, round by round:
the median and quartiles of the per-round ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import rnnkit
from rnnkit.allocator import keep_freed_memory
from rnnkit.layers import GRU, LSTM, Bidirectional, Conv1D, Dense, Embedding, MaxPooling1D
from rnnkit.layers import _gru_cpu
from rnnkit.training.losses import SparseCategoricalCrossentropy
from rnnkit.utils import atomic_write_text

VOCAB, LENGTH, CLASSES = 120, 33, 8
MODELS = ("bilstm", "conv", "bigru")
WORKER = Path(__file__).with_name("keras_worker.py")


# ------------------------------------------------------------------ the models
def rnnkit_model(name: str) -> rnnkit.Sequential:
    if name == "conv":
        body = [Conv1D(56, 5, activation="relu"), MaxPooling1D(pool_size=4), Bidirectional(LSTM(12))]
    else:
        cell = GRU if name == "bigru" else LSTM
        body = [Bidirectional(cell(56, return_sequences=True)), Bidirectional(cell(12))]
    return rnnkit.Sequential([Embedding(VOCAB, 42, input_shape=(LENGTH,)), *body, Dense(CLASSES)])


class PlainRecurrent(nn.Module):
    """Embedding -> bidirectional RNN (all steps) -> bidirectional RNN (final states) -> Linear."""

    def __init__(self, cell):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 42)
        self.rnn1 = cell(42, 56, batch_first=True, bidirectional=True)
        self.rnn2 = cell(112, 12, batch_first=True, bidirectional=True)
        self.out = nn.Linear(24, CLASSES)

    def forward(self, x):
        seq, _ = self.rnn1(self.emb(x))
        _, h = self.rnn2(seq)
        h = h[0] if isinstance(h, tuple) else h  # LSTM: (h_n, c_n)
        return self.out(torch.cat([h[0], h[1]], dim=-1))


class PlainConv(nn.Module):
    """Embedding -> Conv1d(56, 5) + relu -> max-pool 4 -> bidirectional LSTM(12) -> Linear."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 42)
        self.conv = nn.Conv1d(42, 56, 5)
        self.rnn = nn.LSTM(56, 12, batch_first=True, bidirectional=True)
        self.out = nn.Linear(24, CLASSES)

    def forward(self, x):
        y = F.max_pool1d(F.relu(self.conv(self.emb(x).transpose(1, 2))), 4).transpose(1, 2)
        _, (h, _) = self.rnn(y)
        return self.out(torch.cat([h[0], h[1]], dim=-1))


def plain_model(name: str) -> nn.Module:
    return {"bilstm": lambda: PlainRecurrent(nn.LSTM), "conv": PlainConv, "bigru": lambda: PlainRecurrent(nn.GRU)}[name]()


# ------------------------------------------------------------------ candidates
class TorchCandidate:
    """A training step run in this process; ``run`` returns (wall, CPU) seconds per step."""

    def __init__(self, step):
        self.step = step

    def run(self, steps: int) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            self.step()
        return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def hand_step(model: nn.Module, x, y):
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step


class StepClock(rnnkit.callbacks.Callback):
    """Times ``fit`` from the end of its first batch to the end of its last (no set-up counted)."""

    def on_train_batch_end(self, batch, logs=None):
        if batch == 0:
            self.first = (time.perf_counter(), time.process_time())
        self.last = (time.perf_counter(), time.process_time())

    def per_step(self, steps: int) -> tuple[float, float]:
        return (self.last[0] - self.first[0]) / (steps - 1), (self.last[1] - self.first[1]) / (steps - 1)


class RnnkitFitCandidate:
    """rnnkit's own training loop: ``compile("adam", ...)`` then one ``fit`` epoch of ``steps`` batches."""

    def __init__(self, model, x, y):
        model.compile(optimizer="adam", loss=SparseCategoricalCrossentropy(from_logits=True), device="cpu")
        self.model, self.x, self.y = model, x, y

    def run(self, steps: int) -> tuple[float, float]:
        steps = max(2, steps)
        clock = StepClock()
        self.model.fit(self.x.repeat(steps, 1), self.y.repeat(steps), batch_size=len(self.x), epochs=1,
                       verbose=0, shuffle=False, callbacks=[clock])
        return clock.per_step(steps)


def without_gru_cpu(step):
    def wrapped():
        _gru_cpu.enabled = False
        try:
            step()
        finally:
            _gru_cpu.enabled = True

    return wrapped


class KerasWorker:
    """One Keras process (a backend and a thread setting) serving every model and batch size."""

    def __init__(self, python: str, backend: str, threads: int):
        env = dict(os.environ, KERAS_BACKEND=backend, BENCH_THREADS=str(threads), TF_CPP_MIN_LOG_LEVEL="3",
                   CUDA_VISIBLE_DEVICES="")
        self.proc = subprocess.Popen([python, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, env=env)
        self.info = {}

    def ask(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            return {"ok": False, "error": f"worker exited with code {self.proc.wait()}"}
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


class KerasCandidate:
    def __init__(self, worker: KerasWorker, model: str, batch: int):
        self.worker, self.model, self.batch = worker, model, batch
        reply = worker.ask(op="build", model=model, batch=batch)
        if not reply["ok"]:
            raise RuntimeError(reply["error"])
        self.jit_compile = reply["jit_compile"]

    def run(self, steps: int) -> tuple[float, float]:
        reply = self.worker.ask(op="run", model=self.model, batch=self.batch, steps=steps)
        if not reply["ok"]:
            raise RuntimeError(reply["error"])
        return reply["wall"], reply["cpu"]


# ------------------------------------------------------------------ measuring
def quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def measure(cands: dict, rounds: int, seconds: float, progress, baseline: str = "plain") -> dict:
    """Warm up, then alternate the candidates in rounds.

    Returns name -> (median wall, median CPU per step, quartiles of the per-round
    ratio baseline time / this time): a ratio taken within a round compares runs a
    second apart, so it survives the load swings that move the medians."""
    chunk = {}
    for name, cand in cands.items():
        cand.run(3)
        per_step, _ = cand.run(3)
        chunk[name] = max(3, int(seconds / max(per_step, 1e-6)))
    walls = {name: [] for name in cands}
    cpus = {name: [] for name in cands}
    names = list(cands)
    for r in range(rounds):
        progress(r)
        for name in names[r % len(names):] + names[: r % len(names)]:
            wall, cpu = cands[name].run(chunk[name])
            walls[name].append(wall)
            cpus[name].append(cpu)
    return {name: (statistics.median(walls[name]), statistics.median(cpus[name]),
                   quartiles([b / w for b, w in zip(walls[baseline], walls[name])])) for name in cands}


def build_candidates(name, batch, threads, workers, x, y):
    cands = {"plain": TorchCandidate(hand_step(plain_model(name), x, y)),
             "rnnkit": TorchCandidate(hand_step(rnnkit_model(name), x, y)),
             "rnnkit fit": RnnkitFitCandidate(rnnkit_model(name), x, y)}
    if name == "bigru":
        cands["rnnkit torch.gru"] = TorchCandidate(without_gru_cpu(hand_step(rnnkit_model(name), x, y)))
    for label, worker in workers.items():
        try:
            cands[label] = KerasCandidate(worker, name, batch)
        except RuntimeError as exc:
            print(f"  {label} skipped for {name} batch {batch}: {exc}", file=sys.stderr)
    return cands


def load() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ", ".join(MODELS))
    ap.add_argument("--batches", default="32,64")
    ap.add_argument("--threads", default="1,2", help="torch thread counts, one table each")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.6, help="length of one timed chunk")
    ap.add_argument("--keras-python", default="/tmp/kenv/bin/python",
                    help="a Python with Keras 3 + tensorflow (+ torch for keras-torch)")
    ap.add_argument("--no-keras", action="store_true")
    ap.add_argument("--quick", action="store_true", help="2 rounds of short chunks, batch 32, one thread setting")
    ap.add_argument("--json", help="also write the raw figures here")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.batches, args.threads = 2, 0.2, "32", "1"
    models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; expected some of {', '.join(MODELS)}")
    batches = [int(b) for b in args.batches.split(",")]
    thread_settings = [int(t) for t in args.threads.split(",")]
    use_keras = not args.no_keras
    if use_keras and not Path(args.keras_python).exists():
        print(f"no Keras Python at {args.keras_python}: Keras candidates skipped (--keras-python)", file=sys.stderr)
        use_keras = False

    kept = keep_freed_memory()
    header = [f"command: {' '.join([Path(sys.executable).name, *sys.argv])}",
              f"malloc keeps freed memory (rnnkit.allocator): {kept}",
              f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
              f"torch {torch.__version__}, rnnkit {rnnkit.__version__}",
              f"start: {load()}"]
    print("\n".join(header), file=sys.stderr)
    results, started, done = [], time.time(), 0
    total = len(thread_settings) * len(models) * len(batches)
    for threads in thread_settings:
        torch.set_num_threads(threads)
        workers = {}
        if use_keras:
            workers = {f"keras-tf ({'1 intra-op' if threads == 1 else 'default'})":
                       KerasWorker(args.keras_python, "tensorflow", 1 if threads == 1 else 0),
                       f"keras-torch ({threads})": KerasWorker(args.keras_python, "torch", threads)}
        for name in models:
            for batch in batches:
                torch.manual_seed(0)
                x = torch.randint(0, VOCAB, (batch, LENGTH))
                y = torch.randint(0, CLASSES, (batch,))
                cands = build_candidates(name, batch, threads, workers, x, y)

                def progress(r, name=name, batch=batch):
                    eta = (time.time() - started) / done * (total - done) if done else float("nan")
                    print(f"[threads {threads}] {name} batch {batch}: round {r + 1}/{args.rounds}, "
                          f"{done}/{total} tables done, ETA {eta / 60:.1f} min, {load()}", file=sys.stderr)

                timing = measure(cands, args.rounds, args.seconds, progress)
                for cand, (wall, cpu, ratio) in timing.items():
                    results.append({"model": name, "batch": batch, "threads": threads, "candidate": cand,
                                    "samples_per_s": batch / wall, "cpu_ms_per_step": cpu * 1e3,
                                    "wall_ms_per_step": wall * 1e3, "ratio_vs_plain": ratio,
                                    "jit_compile": getattr(cands[cand], "jit_compile", None)})
                done += 1
        for worker in workers.values():
            worker.close()
    header.append(f"end: {load()}, {(time.time() - started) / 60:.1f} min")

    print("\n".join(header))
    print("\n| model | batch | threads | candidate | samples/s | ratio vs plain (quartiles) | CPU ms/step | wall ms/step |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        q1, ratio, q3 = r["ratio_vs_plain"]
        print(f"| {r['model']} | {r['batch']} | {r['threads']} | {r['candidate']} | {r['samples_per_s']:,.0f} | "
              f"{ratio:.2f} ({q1:.2f}-{q3:.2f}) | {r['cpu_ms_per_step']:.1f} | {r['wall_ms_per_step']:.1f} |")
    if args.json:
        atomic_write_text(args.json, json.dumps({"header": header, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
