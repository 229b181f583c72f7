"""``rnnkit.bench.run``: measure every candidate at every sequence length, then judge the claims."""
from __future__ import annotations

import os
import platform
import time

import torch

from ..allocator import keep_freed_memory
from ..training.compile import resolve_device
from .candidates import TaskShape, build_candidate, parse_cells
from .claims import TOLERANCE, verdicts
from .measure import Trainer, peak_step_memory_mb, summarize, time_side_by_side

#: ``--quick``: every candidate, one short length, a few steps (well under a minute on 2 cores).
QUICK = dict(seq_lens=(64,), batch_size=32, hidden=64, embedding=32, steps=6, warmup=2, rounds=3)


def _positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def parse_seq_lens(seq_lens) -> list[int]:
    """Sequence lengths from an int, a list, or a comma-separated string such as ``"32,128,512"``."""
    if isinstance(seq_lens, int):
        seq_lens = [seq_lens]
    elif isinstance(seq_lens, str):
        try:
            seq_lens = [int(s) for s in seq_lens.split(",") if s.strip()]
        except ValueError:
            raise ValueError(f"seq_len must be comma-separated positive integers such as 32,128,512, got {seq_lens!r}") from None
    lens = [_positive("seq_len", int(n) if not isinstance(n, bool) else n) for n in seq_lens]
    if not lens:
        raise ValueError("seq_len: give at least one sequence length")
    return sorted(set(lens))


def make_batches(shape: TaskShape, device, seed: int, count: int = 4):
    """``count`` random ``(tokens (batch, seq_len), labels (batch,))`` pairs on ``device``."""
    gen = torch.Generator().manual_seed(seed)
    return [
        (torch.randint(1, shape.vocab, (shape.batch_size, shape.seq_len), generator=gen).to(device),
         torch.randint(0, shape.classes, (shape.batch_size,), generator=gen).to(device))
        for _ in range(count)
    ]


def _progress(stream, seq_len, started):
    def report(done, total):
        elapsed = time.perf_counter() - started
        eta = elapsed / done * (total - done)
        print(f"  seq_len {seq_len}: round {done}/{total}, {elapsed:.1f}s, ETA {eta:.0f}s", file=stream, flush=True)

    return report if stream is not None else None


def run(
    cells=None,
    seq_lens=(128,),
    batch_size: int = 32,
    hidden: int = 64,
    embedding: int = 32,
    steps: int = 30,
    warmup: int = 3,
    rounds: int = 5,
    device="auto",
    threads: int | None = 1,
    vocab: int = 1000,
    classes: int = 10,
    seed: int = 0,
    progress=None,
) -> dict:
    """Train each candidate for ``steps`` steps (after ``warmup``) at each length, side by side.

    Args:
        cells: candidate names (`CELLS`; a list or ``"lstm,gru,mingru"``), default all.
        seq_lens: sequence length(s): an int, a list or ``"32,128,512"``.
        batch_size, hidden, embedding, vocab, classes: the shared task shape
            (`TaskShape`); ``hidden`` is the width of every sequence layer (per direction).
        steps: timed steps per candidate and length, spread over ``rounds`` rounds.
        warmup: untimed steps per candidate first (allocations, kernel selection).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        threads: torch intra-op threads for the run (restored after), default 1: small models
            train faster and time more steadily on one; None keeps the current setting.
        progress: a stream for progress lines (e.g. ``sys.stderr``), or None for silence.

    Returns:
        ``{"config": {...}, "results": [...], "verdicts": [...], "unjudged": [...]}``. A result
        has ``cell, seq_len, params, ms_per_step, samples_per_s, time_vs_dense,
        peak_mem_mb, round_ms_per_step``; ``time_vs_dense`` is the time per step
        relative to ``dense`` at the same length (when measured). Verdicts: see
        `rnnkit.bench.claims`.
    """
    names = parse_cells(cells)
    lens = parse_seq_lens(seq_lens)
    for name, value in (("batch_size", batch_size), ("hidden", hidden), ("embedding", embedding),
                        ("steps", steps), ("rounds", rounds), ("vocab", vocab), ("classes", classes)):
        _positive(name, value)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative integer, got {warmup!r}")
    if threads is not None:
        _positive("threads", threads)
    dev = resolve_device(device)
    keep_freed_memory()  # as rnnkit's training does: timed steps, not page faults
    saved_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        results = []
        for seq_len in lens:
            results += _measure_length(names, TaskShape(seq_len, batch_size, embedding, hidden, vocab, classes),
                                       dev, steps, warmup, rounds, seed, progress)
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(saved_threads)
    rows, unjudged = verdicts(results)
    config = {
        "device": str(dev), "threads": used_threads, "batch_size": batch_size, "hidden": hidden,
        "embedding": embedding, "vocab": vocab, "classes": classes, "steps": steps, "warmup": warmup,
        "rounds": min(rounds, steps), "seq_lens": lens, "cells": names, "tolerance": TOLERANCE,  # as split_steps
        "torch": torch.__version__, "python": platform.python_version(), "machine": _machine(dev),
    }
    return {"config": config, "results": results, "verdicts": rows, "unjudged": unjudged}


def _measure_length(names, shape, device, steps, warmup, rounds, seed, progress) -> list[dict]:
    batches = make_batches(shape, device, seed)
    if progress is not None:
        print(f"seq_len {shape.seq_len}: {len(names)} candidates, {warmup} warm-up + {steps} timed steps each",
              file=progress, flush=True)
    trainers = {}
    for name in names:
        torch.manual_seed(seed)
        trainers[name] = Trainer(build_candidate(name, shape), batches, device)
        for _ in range(warmup):
            trainers[name].step()
    report = _progress(progress, shape.seq_len, time.perf_counter())
    per_round = time_side_by_side(trainers, steps, rounds, report)
    rows = []
    for name in names:
        row = {"cell": name, "seq_len": shape.seq_len, "params": trainers[name].model.count_params()}
        row.update(summarize(per_round[name], shape.batch_size))
        row["peak_mem_mb"] = peak_step_memory_mb(trainers[name])
        rows.append(row)
    dense = next((r["ms_per_step"] for r in rows if r["cell"] == "dense"), None)
    for row in rows:
        row["time_vs_dense"] = round(row["ms_per_step"] / dense, 3) if dense else None
    return rows


def _machine(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs"
