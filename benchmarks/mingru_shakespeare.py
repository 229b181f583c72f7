"""MinGRU vs LSTM on tiny-shakespeare at the char level, same wall-clock budget (issue 6, third target).

    RNNKIT_DATA_DIR=../shared/data .venv/bin/python benchmarks/mingru_shakespeare.py \
        [--minutes 10] [--config NAME:CELL:LAYERS:HIDDEN:SEQ_LEN[:DROPOUT][:residual][:ff=N][:lr=X] ...] [--reuse]

Trains each configuration in turn with ``rnnkit train --level char --preset
shakespeare-10min`` (the preset's corpus, split, optimizer and schedule; the
configuration replaces cell, layers, hidden, sequence length, dropout, and where
given ``--residual``, ``--feed-forward N`` and ``--lr X``) for the same
number of minutes (``--reuse``: runs already in ``--runs`` are read, not
trained again), then reads every run's ``metrics.jsonl`` and reports, per
configuration: training chars/s, validation loss at half time and at the end, and
when (if ever) it reached the first configuration's final validation loss. The
target: a MinGRU model reaches the LSTM's 10-minute loss in less wall-clock time.
Writes the loss-vs-time curves to one PNG and prints Markdown for
benchmarks/README.md. Runs one after another (each uses both cores); ~10 minutes
per configuration with the default budget.
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
DEFAULT_CONFIGS = ["lstm-1x512:lstm:1:512:64", "mingru-4x384:mingru:4:384:128", "mingru-6x256:mingru:6:256:128",
                   "mingru-4x384-dropout:mingru:4:384:128:0.2"]


CONFIG_FORM = "NAME:CELL:LAYERS:HIDDEN:SEQ_LEN[:DROPOUT][:residual][:ff=N][:lr=X]"


def parse_config(text: str) -> dict:
    try:
        name, cell, layers, hidden, seq_len, *rest = text.split(":")
        cfg = dict(name=name, cell=cell, layers=int(layers), hidden=int(hidden), seq_len=int(seq_len),
                   dropout=0.0, residual=False, feed_forward=0, lr=None)
        if rest and rest[0].replace(".", "", 1).isdigit():
            cfg["dropout"] = float(rest.pop(0))
        for extra in rest:
            key, _, value = extra.partition("=")
            if extra == "residual":
                cfg["residual"] = True
            elif key == "ff" and value:
                cfg["feed_forward"] = int(value)
            elif key == "lr" and value and float(value) > 0:
                cfg["lr"] = float(value)
            else:
                raise ValueError
        if cfg["feed_forward"] and not cfg["residual"]:  # rnnkit train would refuse it, after earlier configs ran
            raise ValueError
        return cfg
    except ValueError:
        raise argparse.ArgumentTypeError(f"config {text!r}: expected {CONFIG_FORM}, e.g. mingru-4x384:mingru:4:384:128 "
                                         "or mingru-ff:mingru:4:256:128:0.2:residual:ff=2") from None


def train(cfg: dict, minutes: float, runs: Path, threads: int) -> Path:
    out = runs / cfg["name"]
    cmd = [sys.executable, "-m", "rnnkit", "train", "--level", "char", "--preset", "shakespeare-10min",
           "--cell", cfg["cell"], "--layers", str(cfg["layers"]), "--hidden", str(cfg["hidden"]),
           "--seq-len", str(cfg["seq_len"]), "--dropout", str(cfg["dropout"]), "--minutes", str(minutes), "--threads", str(threads),
           "--out", str(out), "--overwrite", "--quiet"] + (["--residual"] if cfg.get("residual") else [])
    if cfg.get("feed_forward"):
        cmd += ["--feed-forward", str(cfg["feed_forward"])]
    if cfg.get("lr"):
        cmd += ["--lr", str(cfg["lr"])]
    print(f"## {cfg['name']}: {' '.join(cmd[2:])} ({load()})", file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)
    return out


def block(cfg: dict) -> str:
    parts = (["residual"] if cfg.get("residual") else []) + ([f"ff {cfg['feed_forward']}x"] if cfg.get("feed_forward") else [])
    return ", ".join(parts + ([f"lr {cfg['lr']:g}"] if cfg.get("lr") else [])) or "plain"


def load() -> str:
    return "load average " + " / ".join(f"{v:.1f}" for v in os.getloadavg())


def curve(run: Path) -> dict:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    evals = [(r["elapsed_s"], r["val_loss"]) for r in rows if r.get("val_loss") is not None]
    speeds = [r["chars_per_s"] for r in rows if r.get("chars_per_s")]
    return {"evals": evals, "chars_per_s": statistics.median(speeds) if speeds else float("nan")}


def loss_at(evals, seconds):
    """The last validation loss measured by ``seconds``."""
    seen = [loss for t, loss in evals if t <= seconds]
    return seen[-1] if seen else float("nan")


def reached(evals, target):
    return next((t for t, loss in evals if loss <= target), None)


def plot(results: dict, path: Path, target: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, r in results.items():
        t, loss = zip(*r["evals"])
        # LSTMs thick, plain MinGRU stacks dashed, residual ones solid: the three families at a glance
        style = dict(linewidth=2.4) if r["cell"] == "lstm" else dict(linestyle="--" if not r.get("residual") else "-")
        ax.plot([s / 60 for s in t], loss, marker="o", markersize=3, label=f"{name} ({r['chars_per_s']:,.0f} chars/s)", **style)
    ax.axhline(target, color="grey", linestyle=":", linewidth=1, label=f"first config's final loss ({target:.3f})")
    ax.set_xlabel("wall-clock minutes (evaluation included)")
    ax.set_ylabel("validation loss (nats/char)")
    ax.set_ylim(top=min(2.2, max(max(l for _, l in r["evals"]) for r in results.values())))
    ax.set_title("tiny-shakespeare, char level, 2 CPU cores")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", action="append", type=parse_config,
                    help=f"{CONFIG_FORM} (repeatable; the first is the reference). "
                         f"Default: {' '.join(DEFAULT_CONFIGS)}")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", default=str(ROOT / "runs" / "mingru-shakespeare"))
    ap.add_argument("--reuse", action="store_true", help="read the runs already in --runs instead of training them")
    ap.add_argument("--png", default=str(ROOT / "docs" / "mingru-vs-lstm.png"))
    ap.add_argument("--json", help="also write the curves and figures as JSON")
    args = ap.parse_args()
    configs = args.config or [parse_config(c) for c in DEFAULT_CONFIGS]
    runs = Path(args.runs)
    results = {}
    for cfg in configs:
        done = args.reuse and (runs / cfg["name"] / "metrics.jsonl").is_file()
        run = runs / cfg["name"] if done else train(cfg, args.minutes, runs, args.threads)
        results[cfg["name"]] = {**cfg, **curve(run)}
    reference = next(iter(results.values()))
    target = reference["evals"][-1][1]
    half = args.minutes * 30.0
    print("| model | seq_len | dropout | residual, feed-forward, lr | chars/s | val loss at half time | at the end "
          "| reached the reference's final loss |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        t = reached(r["evals"], target)
        r["reached_s"] = t
        when = "—" if r is reference else ("not reached" if t is None else f"after {t / 60:.1f} min")
        print(f"| {name} | {r['seq_len']} | {r['dropout']:g} | {block(r)} | {r['chars_per_s']:,.0f} | {loss_at(r['evals'], half):.3f} "
              f"| {r['evals'][-1][1]:.3f} | {when} |")
    plot(results, Path(args.png), target)
    print(f"\nPlot: {args.png}; {load()} at the end")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
