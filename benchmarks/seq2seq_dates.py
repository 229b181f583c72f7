"""Date normalisation with attention: held-out exact match after a few CPU minutes.

For each preset (default: the tuned ``dates`` and the Coursera ``course`` model),
runs the user's path through the CLI — ``rnnkit seq2seq train --task dates
--minutes M``, ``evaluate --json``, ``translate`` — one after the other in this
one run, and reports exact match and character accuracy on the 1,000 held-out
dates, the wall time of the whole train command (data generation and imports
included), when validation first reached 99%, and the translations of the
course's examples. The ``dates`` run also writes the attention map
(``--plot``, default ``docs/attention-dates.png``).

Then it measures training throughput with 1 and 2 torch threads, alternating
the two, to show why training defaults to one thread.

    .venv/bin/python benchmarks/seq2seq_dates.py [--minutes 3] [--presets dates,course]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = ["3 May 1979", "Saturday May 9 2018", "09/05/18", "the 21st of August, 2016", "TUE 10 JUL 2007"]


def cli(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run([sys.executable, "-m", "rnnkit", "seq2seq", *args], input=stdin, capture_output=True,
                          text=True, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"rnnkit seq2seq {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def run_preset(preset: str, minutes: float, workdir: Path, plot: Path | None) -> dict:
    out = workdir / preset
    start = time.perf_counter()
    cli("train", "--task", "dates", "--preset", preset, "--out", str(out), "--minutes", str(minutes), "--no-progress")
    wall = time.perf_counter() - start
    scores_path = workdir / f"{preset}.json"
    cli("evaluate", str(out), "--json", str(scores_path))
    scores = json.loads(scores_path.read_text())
    config = json.loads((out / "config.json").read_text())
    history = config["training"]["history"]
    first_99 = next((h["seconds"] for h in history if h.get("val_exact_match", 0) >= 0.99), None)
    translations = dict(zip(EXAMPLES, cli("translate", str(out), stdin="\n".join(EXAMPLES) + "\n").splitlines()))
    if plot is not None:
        cli("translate", str(out), "Saturday May 9 2018", "--plot", str(plot))
    params = _count_params(out)
    return {"preset": preset, "params": params, "wall_s": wall, "train_s": config["training"]["seconds"],
            "epochs": config["training"]["epochs"], "samples": config["training"]["samples"],
            "first_99_s": first_99, **scores, "translations": translations}


def _count_params(run: Path) -> int:
    from safetensors.torch import load_file

    return sum(t.numel() for t in load_file(str(run / "model.safetensors")).values())


def thread_throughput(rounds: int = 3, steps: int = 30) -> dict[int, list[float]]:
    """Training samples/s of the dates preset with 1 and 2 torch threads, alternating."""
    import torch
    import torch.nn.functional as F

    from rnnkit.seq2seq.tasks import PRESETS, dates_task
    from rnnkit.seq2seq.train import build_model

    preset = PRESETS["dates"]
    data = dates_task(train_size=steps * preset["train"]["batch_size"], vocab=preset["vocab"])
    model = build_model(data, **preset["model"])
    x = torch.from_numpy(data.input_vocab.encode([s for s, _ in data.train], data.tx))
    y = torch.from_numpy(data.output_vocab.encode([t for _, t in data.train], data.ty))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    bs = preset["train"]["batch_size"]
    rates: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(rounds):
        for threads in (1, 2):
            torch.set_num_threads(threads)
            start = time.perf_counter()
            for i in range(0, len(x), bs):
                logits, _ = model(x[i : i + bs], y[i : i + bs])
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[i : i + bs].reshape(-1))
                opt.zero_grad()
                loss.backward()
                opt.step()
            rates[threads].append(len(x) / (time.perf_counter() - start))
    return rates


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--presets", default="dates,course")
    ap.add_argument("--plot", default=str(REPO / "docs" / "attention-dates.png"))
    ap.add_argument("--no-threads", action="store_true", help="skip the 1-vs-2-thread throughput check")
    args = ap.parse_args()
    print(f"load average before: {' '.join(open('/proc/loadavg').read().split()[:3])}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets.split(","):
            r = run_preset(preset, args.minutes, Path(tmp), Path(args.plot) if preset == "dates" else None)
            results.append(r)
            print(json.dumps(r, indent=1), flush=True)
    print("\n| preset | parameters | train command wall time | epochs (samples) | first epoch with val >= 99% "
          "| held-out exact match | held-out char accuracy | '3 May 1979' |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        first = f"{r['first_99_s']:.0f} s" if r["first_99_s"] is not None else "never"
        print(f"| {r['preset']} | {r['params']:,} | {r['wall_s']:.0f} s (training {r['train_s']:.0f} s) "
              f"| {r['epochs']} ({r['samples']:,}) | {first} | {r['exact_match']:.1%} | {r['char_accuracy']:.2%} "
              f"| {r['translations']['3 May 1979']} |")
    if not args.no_threads:
        rates = thread_throughput()
        one, two = (sorted(v)[len(v) // 2] for v in (rates[1], rates[2]))
        print(f"\ntraining throughput (median of {len(rates[1])} alternating rounds): 1 thread {one:,.0f} samples/s, "
              f"2 threads {two:,.0f} samples/s, ratio 2/1 = {two / one:.2f}")
    print(f"load average after: {' '.join(open('/proc/loadavg').read().split()[:3])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
