"""The moroney-sonnets word model: epoch time rnnkit vs Keras 3 (TensorFlow), and accuracy per epoch.

    # epoch time, side by side (Keras runs in its own interpreter, e.g. a venv with keras + tensorflow-cpu)
    RNNKIT_DATA_DIR=../shared/data .venv/bin/python benchmarks/word_sonnets.py speed \\
        --keras-python /tmp/kenv/bin/python [--rounds 3] [--threads 1] [--json out.json]

    # where a training step's time goes (torch.profiler, rnnkit only)
    RNNKIT_DATA_DIR=../shared/data .venv/bin/python benchmarks/word_sonnets.py profile [--threads 1]

    # training accuracy per epoch (trains into --out, resumable; then draws the figure)
    RNNKIT_DATA_DIR=../shared/data .venv/bin/python benchmarks/word_sonnets.py accuracy \\
        --out runs/moroney-sonnets --epochs 50 --png benchmarks/word_sonnets_accuracy.png

`speed`: the course recipe's arrays are built once (rnnkit.text, sparse
labels) and handed to two worker processes, one per framework, each holding
the preset model (Embedding 100, BiLSTM 150, Dropout 0.2, LSTM 100,
Dense(total//2, relu, l2 0.01), Dense(total, softmax); Adam; sparse
categorical cross-entropy; batch 32). After a short warm-up (Keras traces its
graph then) the workers train whole epochs in alternation -- rnnkit then
Keras, then Keras then rnnkit, ... -- so both see the same machine load, and
the table gives each epoch's time and the ratio of medians. On a shared
machine, absolute times move with the load; the ratio is the figure.

`accuracy`: trains the preset through `rnnkit.lm.train_word_model` (the
run folder saves every epoch, so an interrupted run continues where it
stopped), prints the per-epoch table and draws loss and accuracy.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()


# --------------------------------------------------------------- workers
def keras_model(total_words: int, window: int):
    import keras
    from keras import layers, regularizers

    model = keras.Sequential([
        keras.Input((window,)),
        layers.Embedding(total_words, 100),
        layers.Bidirectional(layers.LSTM(150, return_sequences=True)),
        layers.Dropout(0.2),
        layers.LSTM(100),
        layers.Dense(total_words // 2, activation="relu", kernel_regularizer=regularizers.l2(0.01)),
        layers.Dense(total_words, activation="softmax"),
    ])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def rnnkit_model(total_words: int, window: int):
    from rnnkit.lm.word import WordConfig, build_word_model

    return build_word_model(WordConfig(preset="moroney-sonnets"), total_words, window + 1)


def worker(framework: str, data_dir: str, threads: int, batch_size: int, seed: int, samples: int) -> None:
    """Builds the model, then answers each "warmup"/"epoch" line on stdin with one JSON line."""
    import numpy as np

    xs, labels = np.load(Path(data_dir) / "xs.npy"), np.load(Path(data_dir) / "labels.npy")
    xs, labels = xs[: samples or None], labels[: samples or None]
    total_words = int(json.loads((Path(data_dir) / "meta.json").read_text())["vocab_size"])
    if framework == "keras":
        import tensorflow as tf

        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        import keras

        keras.utils.set_random_seed(seed)
        model = keras_model(total_words, xs.shape[1])
        version = f"keras {keras.__version__}, tensorflow {tf.__version__}"
    else:
        import torch

        import rnnkit

        if threads:
            torch.set_num_threads(threads)
        torch.manual_seed(seed)
        model = rnnkit_model(total_words, xs.shape[1])
        version = f"rnnkit {rnnkit.__version__}, torch {torch.__version__}"
    print(json.dumps({"ready": True, "params": int(model.count_params()), "version": version}), flush=True)
    for command in sys.stdin:
        command = command.strip()
        n = batch_size * 10 if command == "warmup" else len(xs)
        started = time.perf_counter()
        history = model.fit(xs[:n], labels[:n], batch_size=batch_size, epochs=1, verbose=0)
        seconds = time.perf_counter() - started
        logs = {k: float(v[-1]) for k, v in history.history.items()}
        print(json.dumps({"command": command, "seconds": seconds, "samples": n, **logs}), flush=True)


class Worker:
    def __init__(self, name: str, python: str, data_dir: str, args):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
        cmd = [python, str(HERE), "worker", "--framework", name, "--data", data_dir, "--threads", str(args.threads),
               "--batch-size", str(args.batch_size), "--seed", str(args.seed), "--samples", str(args.samples)]
        self.name = name
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.info = self._reply()

    def _reply(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith("{"):
                return json.loads(line)
        raise RuntimeError(f"the {self.name} worker exited (status {self.proc.wait()}); see its stderr above")

    def run(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


# ----------------------------------------------------------------- speed
def build_arrays(out_dir: Path) -> dict:
    import numpy as np

    from rnnkit.data import load_corpus
    from rnnkit.lm.word import build_word_dataset

    ds = build_word_dataset(load_corpus("sonnets"), source="sonnets")
    np.save(out_dir / "xs.npy", ds.xs)
    np.save(out_dir / "labels.npy", ds.labels)
    meta = {"samples": int(len(ds.xs)), "vocab_size": ds.vocab_size, "max_len": ds.max_len}
    (out_dir / "meta.json").write_text(json.dumps(meta))
    return meta


def speed(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="word-sonnets-") as tmp:
        meta = build_arrays(Path(tmp))
        print(f"sonnets: {args.samples or meta['samples']:,} of {meta['samples']:,} n-grams, {meta['vocab_size']:,} classes, window {meta['max_len'] - 1}, "
              f"batch {args.batch_size}, threads {args.threads or 'default'}", flush=True)
        workers = {"rnnkit": Worker("rnnkit", sys.executable, tmp, args),
                   "keras": Worker("keras", args.keras_python, tmp, args)}
        try:
            for w in workers.values():
                print(f"{w.name}: {w.info['version']}, {w.info['params']:,} params; warm-up "
                      f"{w.run('warmup')['seconds']:.1f}s", flush=True)
            epochs = {name: [] for name in workers}
            load = [os.getloadavg()[0]]
            for r in range(args.rounds):
                order = ["rnnkit", "keras"] if r % 2 == 0 else ["keras", "rnnkit"]
                for name in order:
                    result = workers[name].run("epoch")
                    epochs[name].append(result)
                    print(f"round {r + 1} {name:>6}: {result['seconds']:7.1f} s/epoch, loss {result['loss']:.4f}, "
                          f"accuracy {result['accuracy']:.4f}", flush=True)
                load.append(os.getloadavg()[0])
        finally:
            for w in workers.values():
                w.close()
    med = {name: statistics.median(e["seconds"] for e in runs) for name, runs in epochs.items()}
    result = {"data": meta, "batch_size": args.batch_size, "threads": args.threads or "default",
              "versions": {n: w.info["version"] for n, w in workers.items()}, "epochs": epochs,
              "median_seconds": med, "keras_over_rnnkit": med["keras"] / med["rnnkit"],
              "load_average_1min": load, "cpus": os.cpu_count()}
    print(f"\n| round | rnnkit s/epoch | Keras-TF s/epoch | Keras / rnnkit |\n|---|---|---|---|")
    for r in range(args.rounds):
        a, b = epochs["rnnkit"][r]["seconds"], epochs["keras"][r]["seconds"]
        print(f"| {r + 1} | {a:.1f} | {b:.1f} | {b / a:.2f}x |")
    print(f"| median | {med['rnnkit']:.1f} | {med['keras']:.1f} | **{result['keras_over_rnnkit']:.2f}x** |")
    print(f"1-minute load average during the run: {', '.join(f'{x:.1f}' for x in load)} on {os.cpu_count()} CPUs")
    return result


# --------------------------------------------------------------- profile
GROUPS = (("recurrent layers (LSTM forward + backward)", ("rnn", "lstm")),
          ("matrix products (Dense layers, forward + backward)", ("aten::mm", "aten::addmm")),
          ("optimizer step (fused Adam)", ("adam",)))


def profile(args) -> dict:
    """Where one training step's time goes: torch.profiler over `--steps` steps, grouped by kind."""
    import numpy as np
    import torch
    from torch.profiler import profile as torch_profile

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="word-sonnets-") as tmp:
        meta = build_arrays(Path(tmp))
        xs, labels = np.load(Path(tmp) / "xs.npy"), np.load(Path(tmp) / "labels.npy")
    torch.manual_seed(args.seed)
    model = rnnkit_model(meta["vocab_size"], meta["max_len"] - 1)
    n = args.batch_size * args.steps
    model.fit(xs[:n], labels[:n], batch_size=args.batch_size, verbose=0)  # warm-up
    with torch_profile() as prof:
        model.fit(xs[n:2 * n], labels[n:2 * n], batch_size=args.batch_size, verbose=0)
    shares = {label: 0.0 for label, _ in GROUPS} | {"everything else": 0.0}
    for event in prof.key_averages():
        name = event.key.lower()
        label = next((label for label, keys in GROUPS if any(key in name for key in keys)), "everything else")
        shares[label] += event.self_cpu_time_total  # self times: every microsecond counted once
    total = sum(shares.values())
    print(f"\n{args.steps} steps of batch {args.batch_size}, threads {args.threads or torch.get_num_threads()}: "
          f"{total / 1e3 / args.steps:.1f} ms a step (profiled)\n\n| part | ms a step | share |\n|---|---|---|")
    for label, t in shares.items():
        print(f"| {label} | {t / 1e3 / args.steps:.1f} | {t / total:.0%} |")
    return {"steps": args.steps, "ms_per_step": total / 1e3 / args.steps,
            "ms_per_step_by_part": {k: v / 1e3 / args.steps for k, v in shares.items()}}


# -------------------------------------------------------------- accuracy
def accuracy(args) -> dict:
    import torch

    from rnnkit.lm.run import RunFolder
    from rnnkit.lm.word import WordConfig, train_word_model

    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.plot_only:
        if RunFolder(args.out).is_run():
            train_word_model(args.out, resume=True, epochs=args.epochs, verbose=2)
        else:
            config = WordConfig(corpus="sonnets", preset="moroney-sonnets", epochs=args.epochs,
                                batch_size=args.batch_size, seed=args.seed)
            train_word_model(args.out, config, verbose=2)
    runs = [RunFolder.open(path) for path in [args.out, *args.also]]
    curves = [(run_label(run.read_config()["options"]), run.read_metrics()["epochs"]) for run in runs]
    png = draw_accuracy(curves, Path(args.png)) if args.png else None
    results = []
    for (label, epochs), run in zip(curves, runs):
        first_80 = next((e["epoch"] for e in epochs if e["accuracy"] >= 0.8), None)
        print(f"\n{label} ({run.path})\n\n| epoch | loss | accuracy | seconds |\n|---|---|---|---|")
        for e in epochs:
            print(f"| {e['epoch']} | {e['loss']:.4f} | {e['accuracy']:.4f} | {e['seconds']:.0f} |")
        print(f"first epoch with training accuracy >= 80%: {first_80}")
        results.append({"run": str(run.path), "label": label, "epochs": epochs, "first_epoch_at_80": first_80})
    return {"runs": results, "png": str(png) if png else None}


def run_label(options: dict) -> str:
    if options.get("preset"):
        return f"preset {options['preset']}"
    cell = options["cell"].upper() + f"({options['hidden']})"
    cell = f"Bidirectional({cell})" if options["bidirectional"] else cell
    layers = f"{options['layers']} x " if options["layers"] > 1 else ""
    return f"Embedding({options['embedding']}), {layers}{cell}, Dense(softmax)"


def draw_accuracy(curves: list[tuple[str, list[dict]]], png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from rnnkit.utils import atomic_write

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, epochs in curves:
        ax.plot([e["epoch"] for e in epochs], [e["accuracy"] for e in epochs], marker=".", label=label)
    ax.axhline(0.8, color="gray", linestyle="--", label="80%")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training accuracy")
    ax.set_ylim(0, 1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    ax.set_title("rnnkit on Shakespeare's sonnets: next-word training accuracy (batch 32, Adam)")
    fig.tight_layout()
    with atomic_write(png, "wb") as fh:
        fig.savefig(fh, format="png", dpi=100)
    plt.close(fig)
    return png


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    for name in ("speed", "profile", "accuracy", "worker"):
        p = sub.add_parser(name)
        p.add_argument("--batch-size", type=int, default=32)
        p.add_argument("--threads", type=int, default=0, help="CPU threads for both frameworks (0 = their defaults)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
        p.add_argument("--samples", type=int, default=0, help="train on the first N n-grams only (0 = all; "
                       "for a quick check of the set-up)")
        if name == "speed":
            p.add_argument("--keras-python", required=True, help="interpreter with keras and tensorflow installed")
            p.add_argument("--rounds", type=int, default=3, help="epochs per framework, alternating (default 3)")
        elif name == "profile":
            p.add_argument("--steps", type=int, default=20, help="steps to profile (default 20)")
        elif name == "accuracy":
            p.add_argument("--out", required=True, help="run folder (resumed when it exists)")
            p.add_argument("--epochs", type=int, default=50)
            p.add_argument("--png", help="figure to draw")
            p.add_argument("--plot-only", action="store_true", help="only read the run folder and draw")
            p.add_argument("--also", nargs="*", default=[], metavar="RUN", help="more run folders to draw")
        else:
            p.add_argument("--framework", choices=("rnnkit", "keras"), required=True)
            p.add_argument("--data", required=True)
    args = parser.parse_args()
    if args.mode == "worker":
        worker(args.framework, args.data, args.threads, args.batch_size, args.seed, args.samples)
        return 0
    result = {"speed": speed, "profile": profile, "accuracy": accuracy}[args.mode](args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
