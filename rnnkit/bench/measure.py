"""Timing and memory of training steps, measured side by side.

A step is what ``fit`` does per batch: forward, cross-entropy on the logits,
backward, optimizer update (rnnkit's Adam), gradients released. Candidates run
in alternating rounds (the order rotates every round), so a burst of load on a
shared machine slows all of them alike; each candidate's time per step is the
median over its rounds.

Peak memory is the high-water mark of tensor memory allocated *during* one
step above what was allocated before it (activations kept for backward,
gradients, temporaries; not the weights and optimizer state that persist):
``torch.cuda.max_memory_allocated`` on CUDA, and on CPU the allocation and
free events of ``torch.profiler`` (``profile_memory=True``) summed in time
order. (``tracemalloc`` cannot see torch's allocations, and the resident-set
peak of a process mixes every candidate's history.)
"""
from __future__ import annotations

import contextlib
import os
import statistics
import time

import torch
import torch.nn.functional as F

from ..training.optimizers import Adam

MiB = 2**20


class Trainer:
    """One candidate's model, optimizer and data, stepping on demand."""

    def __init__(self, model, batches: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device):
        self.model = model.to(device)
        self.model.train()
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = Adam()
        self.optimizer.build(self.params)
        self.batches = batches
        self.device = device
        self._next = 0

    def step(self) -> None:
        x, y = self.batches[self._next % len(self.batches)]
        self._next += 1
        logits = self.model(x, training=True, return_logits=True)
        F.cross_entropy(logits, y).backward()
        self.optimizer.step(self.params)
        self.optimizer.torch_optimizer.zero_grad(set_to_none=True)

    def run(self, steps: int) -> float:
        """Seconds for ``steps`` steps, device work included."""
        sync(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        sync(self.device)
        return time.perf_counter() - start


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def split_steps(steps: int, rounds: int) -> list[int]:
    """``steps`` spread over ``min(rounds, steps)`` rounds as evenly as possible."""
    rounds = max(1, min(rounds, steps))
    return [steps // rounds + (i < steps % rounds) for i in range(rounds)]


def time_side_by_side(trainers: dict[str, Trainer], steps: int, rounds: int, on_round=None) -> dict[str, list[float]]:
    """Milliseconds per step of each trainer in each round; rounds alternate the trainers.

    ``on_round(done, total)`` is called after each round (for progress)."""
    names = list(trainers)
    per_round: dict[str, list[float]] = {name: [] for name in names}
    plan = split_steps(steps, rounds)
    for r, n in enumerate(plan):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            per_round[name].append(trainers[name].run(n) * 1000.0 / n)
        if on_round is not None:
            on_round(r + 1, len(plan))
    return per_round


def summarize(round_ms: list[float], batch_size: int) -> dict:
    ms = statistics.median(round_ms)
    return {
        "ms_per_step": round(ms, 4),
        "samples_per_s": round(batch_size * 1000.0 / ms, 2),
        "round_ms_per_step": [round(v, 4) for v in round_ms],
    }


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2: kineto logs a line there at every profiler start and stop."""
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr: nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_step_memory_mb(trainer: Trainer) -> float | None:
    """Peak tensor memory allocated during one step, in MiB (see the module docs); None if unmeasurable."""
    device = trainer.device
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        trainer.step()
        sync(device)
        return round((torch.cuda.max_memory_allocated(device) - base) / MiB, 3)
    activities = [torch.profiler.ProfilerActivity.CPU]
    with _quiet_stderr(), torch.profiler.profile(activities=activities, profile_memory=True) as prof:
        trainer.step()
    try:
        events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    except AttributeError:  # the profiler's result layout changed: report no figure rather than a wrong one
        return None
    current = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        if e.device_type() == torch.autograd.DeviceType.CPU:
            current += e.nbytes()
            peak = max(peak, current)
    return round(peak / MiB, 3)
