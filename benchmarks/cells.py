"""Cost of recurrence on this machine: the MinGRU targets, the scan paths, threads, and the sweep.

    .venv/bin/python benchmarks/cells.py [--threads 1] [--steps 20] [--skip-sweep]

1. Targets (issue 6): MinGRU training throughput >= 5x LSTM's at sequence
   length 512 and >= LSTM's at 32, same width, CPU, side by side. Measured at
   hidden 64 (the bench default) and 256, with GRU, MinLSTM, Dense, MinGRU's
   log-space scan (``scan="log"``, the GPU path) and MinGRU without its C
   kernels (the torch/numpy loops) in the same rounds.
2. Threads: LSTM and MinGRU at 1 and 2 torch intra-op threads, side by side.
3. The sweep for README.md ("Choosing a cell"): `rnnkit.bench.run` over every
   candidate at lengths 32, 128, 512, 2048; writes docs/cells.png (and with
   ``--json PATH`` every measurement).

Every comparison alternates its candidates in rounds (rnnkit.bench.measure), so
load from other processes hits all alike; read the ratios, not the absolute
times. The targets table gives each ratio twice: in wall-clock time (what the
target means) and in the process's CPU time, which leaves out the time spent
waiting for a core while other processes run (though not their effect on the
caches and memory bandwidth). The load average is printed with every table.
Prints Markdown for benchmarks/README.md. Needs no data and no GPU.
The third target (a MinGRU char model on tiny-shakespeare reaching the LSTM's
10-minute validation loss sooner) needs the char-level engine and is not here.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

import rnnkit.bench as bench
import rnnkit.models.sequential
from rnnkit.allocator import keep_freed_memory
from rnnkit.bench.candidates import TaskShape
from rnnkit.bench.measure import Trainer, summarize, time_side_by_side
from rnnkit.bench.runner import make_batches
from rnnkit.layers import _minrnn_scan, minrnn
from rnnkit.utils import atomic_write_text

REPO = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")


def trainer(cell: str, shape: TaskShape, scan: str | None = None) -> Trainer:
    torch.manual_seed(0)
    model = bench.build_candidate(cell, shape)
    if scan is not None:
        model.layers[1].scan = scan
    return Trainer(model, make_batches(shape, CPU, 0), CPU)


class CpuTimed:
    """A trainer that also records the CPU time of this process per step, run by run."""

    def __init__(self, inner):
        self.inner, self.cpu_ms = inner, []

    def run(self, steps: int) -> float:
        start = time.process_time()
        seconds = self.inner.run(steps)
        self.cpu_ms.append((time.process_time() - start) * 1000.0 / steps)
        return seconds


def load() -> str:
    return "load average " + " / ".join(f"{v:.1f}" for v in os.getloadavg()) + " (1 / 5 / 15 min)"


class WithoutC:
    """A trainer whose MinGRU/MinLSTM layers run the torch/numpy loops instead of the C kernels."""

    def __init__(self, inner: Trainer):
        self.inner = inner

    def run(self, steps: int) -> float:
        saved = _minrnn_scan._native
        _minrnn_scan._native = lambda: None
        try:
            return self.inner.run(steps)
        finally:
            _minrnn_scan._native = saved


class Unfused:
    """A trainer whose MinGRU/MinLSTM read embedded vectors instead of the projected embedding table
    (rnnkit/layers/_fusion.py): what the fusion is worth."""

    def __init__(self, inner: Trainer):
        self.inner = inner

    def run(self, steps: int) -> float:
        saved = rnnkit.models.sequential.embedded_call
        rnnkit.models.sequential.embedded_call = lambda *args: None
        try:
            return self.inner.run(steps)
        finally:
            rnnkit.models.sequential.embedded_call = saved


class Threaded:
    """A trainer that runs with a given number of intra-op threads."""

    def __init__(self, inner: Trainer, threads: int):
        self.inner, self.threads = inner, threads

    def run(self, steps: int) -> float:
        saved = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return self.inner.run(steps)
        finally:
            torch.set_num_threads(saved)


def side_by_side(trainers: dict, batch: int, steps: int, rounds: int = 5, warmup: int = 3) -> dict[str, float]:
    """Median wall-clock ms per step of each trainer (a `CpuTimed` one also keeps its timed runs' CPU ms)."""
    for t in trainers.values():
        t.run(warmup)
        if isinstance(t, CpuTimed):
            t.cpu_ms.clear()
    per_round = time_side_by_side(trainers, steps, rounds)
    return {name: summarize(ms, batch)["ms_per_step"] for name, ms in per_round.items()}


def targets(steps: int) -> list[dict]:
    rows = []
    for hidden in (64, 256):
        for seq_len in (32, 512):
            shape = TaskShape(seq_len, hidden=hidden)
            n = max(4, steps // 4) if seq_len >= 512 and hidden >= 256 else steps
            trainers = {
                "dense": trainer("dense", shape), "lstm": CpuTimed(trainer("lstm", shape)), "gru": trainer("gru", shape),
                "mingru": CpuTimed(trainer("mingru", shape)), "mingru (scan=log)": trainer("mingru", shape, scan="log"),
                "mingru (no C)": WithoutC(trainer("mingru", shape)), "mingru (unfused)": Unfused(trainer("mingru", shape)),
                "minlstm": trainer("minlstm", shape),
            }
            ms = side_by_side(trainers, shape.batch_size, n)
            cpu = {k: statistics.median(trainers[k].cpu_ms) for k in ("lstm", "mingru")}
            rows.append({"hidden": hidden, "seq_len": seq_len, "steps": n, "ms_per_step": ms, "cpu_ms_per_step": cpu,
                         "load": load()})
            print(f"  hidden {hidden}, seq_len {seq_len}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items())
                  + f"; CPU ms: lstm {cpu['lstm']:.1f}, mingru {cpu['mingru']:.1f}; {load()}", file=sys.stderr, flush=True)
    return rows


def threads_check(steps: int) -> dict[str, float]:
    shape = TaskShape(128)
    trainers = {f"{cell}, {k} thread{'s' * (k > 1)}": Threaded(trainer(cell, shape), k)
                for cell in ("lstm", "mingru") for k in (1, 2)}
    return side_by_side(trainers, shape.batch_size, steps)


def markdown_targets(rows: list[dict]) -> str:
    lines = ["| hidden | seq_len | LSTM ms/step | MinGRU ms/step | MinGRU / LSTM throughput | target | "
             "same in CPU time | MinGRU without the table fusion | MinGRU without C kernels | MinGRU scan=log ms/step | MinLSTM ms/step | GRU ms/step | "
             "Dense ms/step |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ms, cpu = r["ms_per_step"], r["cpu_ms_per_step"]
        speedup = ms["lstm"] / ms["mingru"]
        need = 5.0 if r["seq_len"] >= 512 else 1.0
        verdict = f"≥ {need:g}x: {'met' if speedup >= need else 'missed'}"
        lines.append(f"| {r['hidden']} | {r['seq_len']} | {ms['lstm']:.1f} | {ms['mingru']:.1f} | {speedup:.2f}x | {verdict} "
                     f"| {cpu['lstm'] / cpu['mingru']:.2f}x | {ms['mingru (unfused)']:.1f} | {ms['mingru (no C)']:.1f} | {ms['mingru (scan=log)']:.1f} | {ms['minlstm']:.1f} "
                     f"| {ms['gru']:.1f} | {ms['dense']:.1f} |")
    return "\n".join(lines)


def markdown_sweep(result: dict) -> str:
    lens = result["config"]["seq_lens"]
    by = {(r["cell"], r["seq_len"]): r for r in result["results"]}
    head = "| cell | params (len 128) | " + " | ".join(f"ms/step @{n}" for n in lens) + " | × Dense time @128 | peak MiB @512 |"
    lines = [head, "|" + "---|" * (len(lens) + 4)]
    for cell in result["config"]["cells"]:
        ref = by.get((cell, 128)) or by[(cell, lens[0])]
        mem = by.get((cell, 512), ref)["peak_mem_mb"]
        lines.append(f"| {cell} | {ref['params']:,} | " + " | ".join(f"{by[(cell, n)]['ms_per_step']:.1f}" for n in lens)
                     + f" | {ref['time_vs_dense']:.2f} | {mem:.1f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per candidate (default 20)")
    ap.add_argument("--skip-sweep", action="store_true", help="only the targets and the threads check")
    ap.add_argument("--json", metavar="PATH", help="also write every measurement as JSON")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as rnnkit's training does (RNNKIT_KEEP_FREED_MEMORY=0 to compare without)

    print(f"## targets ({load()})", file=sys.stderr)
    rows = targets(args.steps)
    print(f"## threads ({load()})", file=sys.stderr)
    threads = threads_check(max(6, args.steps // 2))
    out = {"threads": args.threads, "targets": rows, "threads_check": threads, "threads_load": load()}
    if not args.skip_sweep:
        print(f"## sweep ({load()})", file=sys.stderr)
        sweep = bench.run(seq_lens=(32, 128, 512, 2048), steps=max(6, args.steps // 2), warmup=2, rounds=5,
                          threads=args.threads, progress=sys.stderr)
        out["sweep"], out["sweep_load"] = sweep, load()
        bench.plot(sweep, REPO / "docs" / "cells.png")
    if args.json:
        atomic_write_text(args.json, json.dumps(out, indent=1, ensure_ascii=False) + "\n")

    print(f"Machine: {bench.describe(out['sweep']) if 'sweep' in out else torch.__version__}\n")
    print(markdown_targets(rows) + "\n")
    print("Load after each target row: " + "; ".join(f"{r['hidden']}/{r['seq_len']}: {r['load']}" for r in rows) + "\n")
    print("| configuration (seq_len 128, hidden 64) | ms/step |\n|---|---|")
    print("\n".join(f"| {k} | {v:.1f} |" for k, v in threads.items()) + "\n")
    print(f"After the threads check: {out['threads_load']}\n")
    if "sweep" in out:
        print(markdown_sweep(out["sweep"]) + "\n")
        print(bench.verdict_table(out["sweep"]) + "\n")
        print(f"After the sweep: {out['sweep_load']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
