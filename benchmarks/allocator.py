"""What `rnnkit.allocator.keep_freed_memory` is worth: the seed models' hand-written PyTorch
training step with glibc's default malloc thresholds and with rnnkit's, page faults included.

    .venv/bin/python benchmarks/allocator.py [--rounds 4] [--steps 60] [--threads 1]

malloc's settings hold for a whole process and cannot be undone, so every measurement is a
fresh process (``RNNKIT_KEEP_FREED_MEMORY=0`` or ``1``), the two settings alternating round by
round; each process warms up for 10 steps, then times ``--steps`` steps (wall and CPU) and
counts the page faults. Prints Markdown for benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, resource, sys, time, torch
sys.path.insert(0, {bench!r})
torch.set_num_threads({threads})
from rnnkit.allocator import keep_freed_memory
applied = keep_freed_memory()
import seed_models as sm
torch.manual_seed(0)
x = torch.randint(0, sm.VOCAB, ({batch}, sm.LENGTH)); y = torch.randint(0, sm.CLASSES, ({batch},))
step = sm.hand_step(sm.plain_model({model!r}), x, y)
for _ in range(10):
    step()
f0, c0, w0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time(), time.perf_counter()
for _ in range({steps}):
    step()
n = {steps}
print(json.dumps({{"applied": applied, "wall_ms": (time.perf_counter() - w0) / n * 1e3,
                  "cpu_ms": (time.process_time() - c0) / n * 1e3,
                  "faults": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / n}}))
"""


def child(model: str, batch: int, threads: int, steps: int, keep: bool) -> dict:
    env = dict(os.environ, RNNKIT_KEEP_FREED_MEMORY="1" if keep else "0", PYTHONPATH=str(ROOT))
    code = CHILD.format(bench=str(ROOT / "benchmarks"), threads=threads, batch=batch, model=model, steps=steps)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", default="bilstm,conv")
    ap.add_argument("--batches", default="32,64")
    args = ap.parse_args(argv)
    print(f"load average at start: {', '.join(f'{v:.2f}' for v in os.getloadavg())}", file=sys.stderr)
    print("| model | batch | glibc default: ms/step | page faults/step | kept: ms/step | page faults/step | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            runs = {False: [], True: []}
            for r in range(args.rounds):
                for keep in ((False, True) if r % 2 == 0 else (True, False)):
                    runs[keep].append(child(model, batch, args.threads, args.steps, keep))
            if not all(run["applied"] for run in runs[True]):
                print("  (keep_freed_memory did not apply here: not glibc?)", file=sys.stderr)
            med = {k: {f: statistics.median(run[f] for run in v) for f in ("wall_ms", "faults")} for k, v in runs.items()}
            speed = statistics.median(a["wall_ms"] / b["wall_ms"] for a, b in zip(runs[False], runs[True]))
            print(f"| {model} | {batch} | {med[False]['wall_ms']:.1f} | {med[False]['faults']:,.0f} | "
                  f"{med[True]['wall_ms']:.1f} | {med[True]['faults']:,.0f} | {speed:.2f}x |", flush=True)
    print(f"load average at end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
