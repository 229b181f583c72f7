"""Command-line front of the streaming LM engine: argument sets and the functions they call.

Each ``add_*_arguments(parser)`` fills an argparse parser; the matching
``*_from_args(args)`` runs it and returns an exit status. ``rnnkit lm
train|generate|evaluate`` (``rnnkit.cli.lm``) is built from them, and so can
``rnnkit train --level char`` / ``rnnkit generate RUN`` / ``rnnkit evaluate RUN``.
`main_job` is the README's two-minute demonstration.

Threads: ``--threads`` defaults to torch's choice (all cores). On an idle 2-core machine two
threads train a 1x512 LSTM 1.6x faster than one; on a machine busy with other work the second
thread mostly waits and one is faster (see benchmarks/README.md).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from ..cli.checks import (check_writable, device_name, non_negative_float, non_negative_int, open_fraction,
                          positive_float, positive_int, rate, seed_int, share, unit_interval)
from ..utils import atomic_write_text
from .charlm import CELLS, PRECISIONS
from .stream_train import LEVEL_DEFAULTS, PRESETS

#: argparse dest -> engine option, for the options that map one to one.
_OPTION_NAMES = {
    "corpus": "corpus", "level": "level", "preset": "preset", "cell": "cell", "layers": "layers",
    "hidden": "hidden", "embedding": "embedding", "dropout": "dropout", "tie_weights": "tie_weights", "residual": "residual",
    "feed_forward": "feed_forward",
    "batch_size": "batch_size", "seq_len": "seq_len", "lr": "lr", "min_lr_ratio": "min_lr_ratio",
    "warmup": "warmup_steps", "schedule": "schedule", "weight_decay": "weight_decay", "clip": "clip",
    "steps": "steps", "epochs": "epochs", "minutes": "minutes", "eval_every": "eval_every",
    "log_every": "log_every", "val_fraction": "val_fraction", "seed": "seed", "device": "device",
    "decode_errors": "decode_errors",
}


def _set_threads(args) -> None:
    import torch

    threads = getattr(args, "threads", None)
    if threads:  # otherwise torch's own choice (all cores)
        torch.set_num_threads(int(threads))


# -------------------------------------------------------------------- train
def add_train_arguments(parser: argparse.ArgumentParser, shared: bool = True) -> None:
    """Options of streaming training. With ``shared=False`` the options a word-level
    ``train`` command already defines (``--corpus --level --out --hidden --layers
    --embedding --batch-size --seq-len --lr --seed``) are left out; they must then
    default to None there so the engine's own defaults (and ``--resume``) apply."""
    c, w = LEVEL_DEFAULTS["char"], LEVEL_DEFAULTS["word"]
    if shared:
        parser.add_argument("--corpus", help="corpus name, python-stdlib, or a text file/folder (default tiny-shakespeare)")
        parser.add_argument("--level", choices=("char", "word"), help="tokens: characters (default) or whitespace words")
        parser.add_argument("--out", required=True, help="run folder (checkpoints, metrics.jsonl, config.json)")
        parser.add_argument("--hidden", type=positive_int, help=f"units per layer (char {c['hidden']}, word {w['hidden']})")
        parser.add_argument("--layers", type=positive_int, help=f"recurrent layers (char {c['layers']}, word {w['layers']})")
        parser.add_argument("--embedding", type=positive_int, help=f"embedding width (char {c['embedding']}, word {w['embedding']})")
        parser.add_argument("--batch-size", type=positive_int, help=f"parallel streams (per process under torchrun; default {c['batch_size']})")
        parser.add_argument("--seq-len", type=positive_int, help=f"BPTT steps per batch (char {c['seq_len']}, word {w['seq_len']})")
        parser.add_argument("--lr", type=positive_float, help=f"peak learning rate (char {c['lr']}, word {w['lr']})")
        parser.add_argument("--seed", type=seed_int, help="seed for weights and dropout (default 0)")
        parser.add_argument("--decode-errors", choices=("strict", "replace"),
                            help="undecodable bytes in the corpus: fail (default) or replace with U+FFFD")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="named settings; options you give override them")
    parser.add_argument("--resume", nargs="?", const="last", choices=("last", "best"),
                        help="continue the run in --out from its last (default) or best checkpoint")
    parser.add_argument("--cell", choices=tuple(CELLS), help="recurrent cell (default lstm)")
    parser.add_argument("--dropout", type=rate, help="dropout on embedding, between layers, before the head; with --residual on the embedding and "
                        "every residual branch (char 0, word 0.3)")
    parser.add_argument("--tie-weights", action=argparse.BooleanOptionalAction, default=None,
                        help="share embedding and output weights (needs --embedding = --hidden; word default)")
    parser.add_argument("--residual", action=argparse.BooleanOptionalAction, default=None,
                        help="pre-norm residual layers, x + layer(LayerNorm(x)) (helps deep MinGRU/MinLSTM stacks; default off)")
    parser.add_argument("--feed-forward", type=non_negative_int, metavar="MULT",
                        help="with --residual: a feed-forward block of MULT x hidden units after each layer (default 0: none)")
    parser.add_argument("--steps", type=positive_int, help="stop after this many steps, counted from the start of the run")
    parser.add_argument("--epochs", type=positive_float, help="stop after this many passes over the training text")
    parser.add_argument("--minutes", type=positive_float, help="wall-clock budget, evaluation and saving included")
    parser.add_argument("--schedule", choices=("cosine", "plateau", "constant"), help="learning-rate schedule after warm-up (default cosine)")
    parser.add_argument("--warmup", type=non_negative_int, help="warm-up steps (default 50)")
    parser.add_argument("--min-lr-ratio", type=unit_interval, help="cosine floor as a fraction of --lr (default 0.1)")
    parser.add_argument("--weight-decay", type=non_negative_float, help="AdamW weight decay (default 0)")
    parser.add_argument("--clip", type=non_negative_float, help="global gradient-norm clip, 0 = off (default 1.0)")
    parser.add_argument("--val-fraction", type=open_fraction,
                        help="last fraction of the text held out (default 0.1; corpora with a valid split use it)")
    parser.add_argument("--eval-every", type=positive_int, help="validate and checkpoint every N steps (default 500)")
    parser.add_argument("--log-every", type=positive_int, help="metrics.jsonl line every N steps (default 10)")
    parser.add_argument("--device", type=device_name, help="cpu (default), cuda, cuda:N or auto")
    parser.add_argument("--threads", type=positive_int,
                        help="CPU threads for torch (default: torch's choice, all cores; 1 on a busy machine)")
    parser.add_argument("--progress", choices=("auto", "bar", "lines", "none"), default="auto",
                        help="progress display (default: a bar on a terminal, lines otherwise)")
    parser.add_argument("--sample", type=non_negative_int, default=0, metavar="N",
                        help="print N generated tokens from the best checkpoint at the end (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    parser.add_argument("--tensorboard", metavar="DIR", help="also write TensorBoard event files to DIR: the figures "
                        "of metrics.jsonl (losses, bpc or perplexity, tokens/s) and the learning rate, by step "
                        "(needs pip install 'rnnkit[tensorboard]')")
    parser.add_argument("--json", metavar="PATH", help="also write the run's summary as JSON to PATH (run, "
                        "step, epoch (passes over the text completed), elapsed_s, val_loss, best_val_loss, val_perplexity, "
                        "val_bpc at the char "
                        "level, stopped)")
    parser.add_argument("--quiet", action="store_true", help="no progress or summary output (same as --progress none)")


def train_options(args) -> dict:
    """The engine options given on the command line (None = not given)."""
    return {opt: getattr(args, dest) for dest, opt in _OPTION_NAMES.items() if getattr(args, dest, None) is not None}


def train_from_args(args) -> int:
    """Run ``train`` from parsed arguments; 0 when the budget is reached, 130 when interrupted."""
    from .. import distributed
    from .stream import StreamLM
    from .stream_train import train

    check_writable("--json", getattr(args, "json", None))
    _set_threads(args)
    progress = "none" if getattr(args, "quiet", False) else args.progress
    summary = train(args.out, resume=args.resume or False, progress=progress,
                    overwrite=getattr(args, "overwrite", False), tensorboard=getattr(args, "tensorboard", None),
                    **train_options(args))
    if getattr(args, "json", None) and distributed.launched_rank() == 0:
        write_summary_json(args.json, summary)
    if getattr(args, "sample", 0) and distributed.launched_rank() == 0:
        lm = StreamLM.load(args.out)
        prime = "\n" if lm.level == "char" else ""
        print(f"--- sample from step {lm.step:,} ---")
        _print_stream(lm.stream(prime, args.sample, temperature=0.8, seed=0))
    return 130 if summary["stopped"] == "interrupted" else 0


def write_summary_json(path: str, summary: dict) -> None:
    """``summary`` (from `train`) as JSON, with the validation loss also as perplexity and, at the
    char level, in bits per character; written atomically."""
    import math

    out = dict(summary)
    v = summary.get("val_loss")
    if summary.get("level") == "char":
        out["val_bpc"] = None if v is None else v / math.log(2)
    out["val_perplexity"] = None if v is None else math.exp(min(v, 700))
    # JSON has no NaN: a diverged loss is written as null.
    out = {k: None if isinstance(x, float) and not math.isfinite(x) else x for k, x in out.items()}
    atomic_write_text(path, json.dumps(out, indent=2, default=str) + "\n")


# ----------------------------------------------------------------- generate
def add_generate_arguments(parser: argparse.ArgumentParser, run_argument: bool = True) -> None:
    if run_argument:
        parser.add_argument("run", help="run folder (or a .safetensors checkpoint) written by training")
    parser.add_argument("--prime", default="", help="text fed to the model first (default: a newline)")
    how_many = parser.add_mutually_exclusive_group()
    how_many.add_argument("--length", type=non_negative_int, default=500, help="tokens to generate (default 500)")
    how_many.add_argument("--words", type=non_negative_int, metavar="N",
                          help="word-level runs: words to generate (the same as --length there)")
    parser.add_argument("--temperature", type=non_negative_float, help="softmax temperature; 0 = greedy (default 1.0)")
    parser.add_argument("--top-k", type=positive_int, help="sample among the k most likely tokens")
    parser.add_argument("--top-p", type=share, help="sample among the most likely tokens holding this probability")
    parser.add_argument("--beam-width", type=positive_int, help="beam search instead of sampling (short completions)")
    parser.add_argument("--num-samples", type=positive_int, default=1, metavar="N",
                        help="N independent samples generated together as one batch (printed when done; many "
                             "times the characters per second of one stream); default 1, streamed")
    parser.add_argument("--seed", type=seed_int, default=0, help="sampling seed: same seed, same text (default 0)")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best", help="which checkpoint (default best)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="weights for the per-token steps: fp32 (default), fp16 or int8 (fbgemm: fewer bytes a "
                             "token, slightly different numbers; faster than fp32 only on a busy CPU)")
    parser.add_argument("--threads", type=positive_int,
                        help="CPU threads for torch and for numpy's BLAS, which runs an LSTM's per-token products "
                             "(default: the cores other processes leave idle)")
    parser.add_argument("--json", metavar="PATH",
                        help="also write the result as JSON to PATH (run, step, level, prime, text, tokens, "
                             "tokens_per_s, seed, temperature, top_k, top_p, beam_width, precision)")


def generate_from_args(args) -> int:
    import torch

    from .fastgen import idle_cores, set_blas_threads
    from .sampling import check_sampling_args
    from .stream import StreamLM

    check_writable("--json", getattr(args, "json", None))
    # Per-token steps are short: a thread that shares a busy core makes every step wait for it.
    threads = args.threads or idle_cores()
    torch.set_num_threads(threads)
    set_blas_threads(threads)
    if args.length < 0:
        raise ValueError(f"--length must be >= 0, got {args.length}")
    if args.num_samples > 1 and args.beam_width and args.beam_width > 1:
        raise ValueError("--num-samples draws independent samples; it cannot be combined with --beam-width")
    if args.beam_width and args.beam_width > 1 and args.temperature is not None:
        raise ValueError("--beam-width searches deterministically; drop --temperature (or use --beam-width 1)")
    if args.temperature is None:
        args.temperature = 1.0
    check_sampling_args(args.temperature, args.top_k, args.top_p, args.beam_width)
    lm = StreamLM.load(args.run, args.checkpoint)
    if getattr(args, "words", None) is not None:
        if lm.level != "word":
            raise ValueError(f"--words counts words, and {args.run} is a {lm.level}-level run: give --length N "
                             f"(tokens: characters here) instead")
        args.length = args.words
    _, notes = lm.encode_prime(args.prime)
    if notes:
        kind = "characters" if lm.level == "char" else "words"
        print(f"rnnkit: warning: prime {kind} not in the model's vocabulary: {', '.join(notes)}", file=sys.stderr)
    if args.num_samples > 1:
        return _print_samples(lm, args)
    from .. import native

    native.library("lstm_step")  # a first use compiles the C step (seconds): not part of the rate below
    sys.stdout.write(args.prime)
    beam = bool(args.beam_width and args.beam_width > 1)
    result = {"run": str(args.run), "step": lm.step, "level": lm.level, "prime": args.prime,
              "seed": None if beam else args.seed, "temperature": None if beam else args.temperature,
              "top_k": args.top_k, "top_p": args.top_p, "beam_width": args.beam_width or 1,
              "precision": args.precision}
    t0 = time.perf_counter()
    if args.beam_width and args.beam_width > 1:
        text, logp = lm.complete(args.prime, args.length, args.beam_width, args.precision)
        print(text)
        print(f"beam search (width {args.beam_width}): log-probability {logp:.3f} nats", file=sys.stderr)
        result.update(text=text, log_probability=logp, tokens=args.length)
    else:
        pieces: list[str] = []
        count = _print_stream(lm.stream(args.prime, args.length, args.temperature, args.top_k, args.top_p,
                                        args.seed, args.precision), pieces)
        rate = count / max(time.perf_counter() - t0, 1e-9)
        print(f"{count:,} tokens at {rate:,.0f}/s from {lm.source} (step {lm.step:,})", file=sys.stderr)
        result.update(text="".join(pieces), tokens=count)
    result["tokens_per_s"] = result["tokens"] / max(time.perf_counter() - t0, 1e-9)
    if getattr(args, "json", None):
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    return 0


def _print_samples(lm, args) -> int:
    """``--num-samples N``: N samples of one batch, each after a header line."""
    import torch

    ids, _ = lm.encode_prime(args.prime)
    generator = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    samples = lm.model.generate_many(ids, args.length, args.num_samples, args.temperature, args.top_k, args.top_p,
                                     generator, args.precision)
    rate = args.num_samples * args.length / max(time.perf_counter() - t0, 1e-9)
    prev = ids[-1] if args.prime else None
    texts = [lm.vocab.decode(tokens, prev) for tokens in samples]
    for k, text in enumerate(texts, 1):
        print(f"--- sample {k} of {len(samples)} ---")
        print(args.prime + text)
    print(f"{args.num_samples} x {args.length:,} tokens at {rate:,.0f}/s in all from {lm.source} (step {lm.step:,})",
          file=sys.stderr)
    if getattr(args, "json", None):
        result = {"run": str(args.run), "step": lm.step, "level": lm.level, "prime": args.prime, "seed": args.seed,
                  "temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p,
                  "precision": args.precision, "samples": texts, "tokens": args.num_samples * args.length,
                  "tokens_per_s": rate}
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    return 0


def _print_stream(pieces, keep: list | None = None) -> int:
    """Write text pieces as they come, flushing about 30 times a second (and append them to
    ``keep`` if given); returns the count."""
    count, last = 0, time.monotonic()
    for piece in pieces:
        sys.stdout.write(piece)
        if keep is not None:
            keep.append(piece)
        count += 1
        if time.monotonic() - last > 0.03:
            sys.stdout.flush()
            last = time.monotonic()
    sys.stdout.write("\n")
    sys.stdout.flush()
    return count


# ----------------------------------------------------------------- evaluate
def add_evaluate_arguments(parser: argparse.ArgumentParser, run_argument: bool = True) -> None:
    if run_argument:
        parser.add_argument("run", help="run folder (or a .safetensors checkpoint) written by training")
    parser.add_argument("--corpus", help="corpus name or text file (default: the run's corpus)")
    parser.add_argument("--split", choices=("train", "valid", "test"),
                        help="corpus split; for a corpus without splits, 'valid' is its last --val-fraction "
                             "and 'train' the rest (default: valid of the run's corpus, else the whole text)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--decode-errors", choices=("strict", "replace"),
                        help="undecodable bytes: fail or replace with U+FFFD (default: the run's setting)")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best", help="which checkpoint (default best)")
    parser.add_argument("--batch-size", type=positive_int,
                        help="parallel streams, each starting from the zero state (default: the run's batch size "
                             "times its processes, so that --split valid reproduces training's validation loss)")
    parser.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's choice)")


def evaluation_ids(lm, corpus: str, split: str | None, val_fraction: float | None, errors: str = "strict"):
    """Token ids to score and the count of unknown tokens: a named split of ``corpus``, the
    whole text, or, for a corpus without splits, the same train/validation cut as training."""
    from ..data import load_corpus
    from .stream_train import corpus_splits
    from .streams import split_train_val

    splits = corpus_splits(corpus)
    if split is None or split in splits:
        ids, missing = lm.vocab.encode(load_corpus(corpus, split=split, errors=errors))
        return ids, sum(missing.values())
    if splits:
        raise ValueError(f"corpus {corpus!r} has splits {', '.join(splits)}; got --split {split}")
    fraction = val_fraction or 0.1
    if split == "test":
        raise ValueError(f"corpus {corpus!r} has no test split; 'valid' is its last {fraction:g}, 'train' the rest")
    ids, missing = lm.vocab.encode(load_corpus(corpus, errors=errors))
    train_ids, val_ids = split_train_val(ids, fraction)
    return (val_ids if split == "valid" else train_ids), sum(missing.values())


def evaluate_from_args(args) -> int:
    from ..utils import atomic_write_text

    from .stream import StreamLM

    from ..cli.checks import check_writable

    check_writable("--json", args.json)
    _set_threads(args)
    lm = StreamLM.load(args.run, args.checkpoint)
    train_cfg = lm.meta["train"]
    corpus = args.corpus or train_cfg["corpus"]
    split = args.split if (args.split or args.corpus) else "valid"
    errors = args.decode_errors or train_cfg.get("decode_errors", "strict")
    ids, unknown = evaluation_ids(lm, corpus, split, train_cfg.get("val_fraction"), errors)
    if unknown:
        what = "characters were left out" if lm.level == "char" else "words scored as <unk>"
        print(f"rnnkit: warning: {unknown:,} {what} (not in the model's vocabulary)", file=sys.stderr)
    # Training validated with every process's streams: batch size x processes.
    streams = train_cfg["batch_size"] * lm.meta.get("data", {}).get("world_size", 1)
    report = lm.score(ids, batch_size=args.batch_size or streams, seq_len=max(train_cfg["seq_len"], 256))
    bits = "bpc" if lm.level == "char" else "bits_per_word"
    where = corpus + (f" [{split}]" if split else "")
    print(f"{where}: {report['tokens']:,} tokens | loss {report['loss']:.4f} nats | "
          f"{report[bits]:.4f} {'bits/char' if lm.level == 'char' else 'bits/word'} | perplexity {report['perplexity']:.3f}")
    if args.json:
        payload = {**report, "unknown_tokens": int(unknown), "corpus": corpus, "split": split,
                   "checkpoint": str(lm.source), "step": lm.step}
        atomic_write_text(args.json, json.dumps(payload, indent=2) + "\n")
    return 0


# ----------------------------------------------------------------- main job
def main_job(minutes: float = 2.0, out: str | None = None, sample_length: int = 600, seed: int = 0,
             progress: str = "auto") -> int:
    """The README's main job: a character LSTM trained on the built-in ``python-stdlib`` corpus
    for about ``minutes`` (progress bar: loss, bpc, chars/s, ETA), then a generated sample.

    Works offline. ``out`` keeps the run folder; by default it is temporary.
    """
    from .stream import StreamLM
    from .stream_train import train

    with tempfile.TemporaryDirectory(prefix="rnnkit-main-job-") as tmp:
        run = Path(out) if out else Path(tmp) / "run"
        print(f"Training a character LSTM on the Python standard library sources for {minutes:g} min ...",
              file=sys.stderr, flush=True)
        train(run, progress=progress, preset="stdlib-2min", minutes=minutes, seed=seed)
        lm = StreamLM.load(run)
        prime = "def "
        print(f"\n--- generated (temperature 0.7, prime {prime!r}) ---", flush=True)
        sys.stdout.write(prime)
        _print_stream(lm.stream(prime, sample_length, temperature=0.7, seed=seed))
    return 0


# -------------------------------------------------------------------- plots
def plot_metrics(runs: dict[str, str | Path], path: str | Path, title: str = "validation loss vs time") -> Path:
    """Validation (and training) loss against wall-clock minutes for one or more runs, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..utils import atomic_write

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, run in runs.items():
        recs = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines() if line.strip()]
        val = [(r["elapsed_s"] / 60, r["val_loss"]) for r in recs if "val_loss" in r]
        line, = ax.plot(*zip(*val), marker="o", ms=3, label=f"{label}: validation") if val else (None,)
        ax.plot([r["elapsed_s"] / 60 for r in recs], [r["train_loss"] for r in recs], alpha=0.35, lw=0.8,
                color=line.get_color() if line else None, label=f"{label}: training")
    ax.axhline(1.5, color="grey", ls=":", lw=1, label="1.50 target")
    ax.set_xlabel("wall-clock minutes (evaluation included)")
    ax.set_ylabel("loss (nats/char)")
    ax.set_ylim(top=min(ax.get_ylim()[1], 3.0))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)
    return Path(path)

