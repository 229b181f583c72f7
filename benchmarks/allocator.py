"""What `rnnkit.allocator.keep_freed_memory` is worth: hand-written PyTorch training steps
with glibc's default malloc settings and with rnnkit's, page faults included.

    .venv/bin/python benchmarks/allocator.py [--rounds 4] [--steps 60] [--threads 1]
        [--models bilstm,conv,lstm512] [--batches 32,64] [--settings default,kept]

Models: the seed models' hand-written steps (``bilstm``, ``conv``) and ``lstm512``, the
`rnnkit bench` LSTM candidate (width 64) at sequence length 512, whose oneDNN workspace
passes 32 MiB. Settings: ``default`` (glibc as it is), ``kept`` (`keep_freed_memory`) and
``thresholds`` (only its two thresholds, without turning mmap off: the setting before
2026-12-05). malloc's settings hold for a whole process and cannot be undone, so every
measurement is a fresh process, the settings alternating round by round; each process warms
up for 10 steps, then times ``--steps`` steps (wall and CPU) and counts the page faults.
Prints Markdown for benchmarks/README.md.
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
if {setting!r} == "thresholds":
    import ctypes
    from rnnkit import allocator
    mallopt = ctypes.CDLL(None).mallopt
    applied = bool(mallopt(-3, allocator.MMAP_THRESHOLD)) and bool(mallopt(-1, allocator.TRIM_THRESHOLD))
else:
    applied = keep_freed_memory()
torch.manual_seed(0)
if {model!r} == "lstm512":
    import rnnkit.bench as bench
    from rnnkit.bench.candidates import TaskShape
    from rnnkit.bench.measure import Trainer
    from rnnkit.bench.runner import make_batches
    shape = TaskShape(512, batch_size={batch})
    step = Trainer(bench.build_candidate("lstm", shape), make_batches(shape, torch.device("cpu"), 0),
                   torch.device("cpu")).step
else:
    import seed_models as sm
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


def child(model: str, batch: int, threads: int, steps: int, setting: str) -> dict:
    env = dict(os.environ, RNNKIT_KEEP_FREED_MEMORY="0" if setting == "default" else "1", PYTHONPATH=str(ROOT))
    code = CHILD.format(bench=str(ROOT / "benchmarks"), threads=threads, batch=batch, model=model, steps=steps,
                        setting=setting)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", default="bilstm,conv,lstm512")
    ap.add_argument("--batches", default="32,64")
    ap.add_argument("--settings", default="default,kept", help="default, thresholds, kept (the first is the baseline)")
    args = ap.parse_args(argv)
    settings = args.settings.split(",")
    print(f"load average at start: {', '.join(f'{v:.2f}' for v in os.getloadavg())}", file=sys.stderr)
    print("| model | batch | " + " | ".join(f"{k}: ms/step | page faults/step" for k in settings)
          + " | " + " | ".join(f"speed-up, {k}" for k in settings[1:]) + " |")
    print("|---|---|" + "---|---|" * len(settings) + "---|" * (len(settings) - 1))
    for model in args.models.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            runs = {k: [] for k in settings}
            for r in range(args.rounds):
                shift = r % len(settings)
                for setting in settings[shift:] + settings[:shift]:
                    runs[setting].append(child(model, batch, args.threads, args.steps, setting))
            if not all(run["applied"] for k in settings[1:] for run in runs[k]):
                print("  (the setting did not apply here: not glibc?)", file=sys.stderr)
            med = {k: {f: statistics.median(run[f] for run in v) for f in ("wall_ms", "faults")} for k, v in runs.items()}
            base = runs[settings[0]]
            speed = {k: statistics.median(a["wall_ms"] / b["wall_ms"] for a, b in zip(base, runs[k])) for k in settings[1:]}
            print(f"| {model} | {batch} | " + " | ".join(f"{med[k]['wall_ms']:.1f} | {med[k]['faults']:,.0f}" for k in settings)
                  + " | " + " | ".join(f"{speed[k]:.2f}x" for k in settings[1:]) + " |", flush=True)
    print(f"load average at end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
