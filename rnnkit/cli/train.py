"""``rnnkit train``: train a text generator into a run folder.

``--level`` picks the engine: a function in `LEVELS` that takes the parsed
arguments and returns a JSON-able result. This module holds the word level
(the n-gram next-word recipe, `rnnkit.lm.train_word_model`); ``--level char``
(and ``--stream``) is handed to the streaming engine, ``rnnkit lm train``, by
`rnnkit.cli.main.route` before these options are parsed. The command is thin:
it turns options into the engine's config and calls the Python API.

    rnnkit train --level word --corpus sonnets --out runs/sonnets --preset moroney-sonnets --epochs 50
    rnnkit train --level word --corpus sonnets --out runs/graded --preset moroney-sonnets-graded
    rnnkit train --level word --corpus sonnets --out runs/mingru --cell mingru --bidirectional --layers 2
    rnnkit train --level word --corpus sonnets --out runs/sonnets --resume --epochs 80
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from ..lm.charlm import CELLS as CHAR_CELLS
from ..lm.run import RunFolder
from ..lm.word import CELLS, DEFAULT_EPOCHS, PRESETS, WordConfig, canonical_corpus, train_word_model
from ..training.callbacks import Callback
from ..utils import atomic_write_text
from .checks import check_writable, int_range, positive_float, positive_int, rate, seed_int

# Options of the word-level engine, as ``dest -> WordConfig field``; None means "not given".
WORD_OPTIONS = {
    "corpus": "corpus", "split": "split", "decode_errors": "decode_errors", "max_len": "max_len",
    "num_words": "num_words", "oov_token": "oov_token", "preset": "preset", "cell": "cell",
    "bidirectional": "bidirectional", "embedding": "embedding", "hidden": "hidden", "layers": "layers",
    "dropout": "dropout", "epochs": "epochs", "batch_size": "batch_size", "lr": "learning_rate",
    "validation_split": "validation_split", "seed": "seed",
}
LEVEL_CHOICES = ("word", "char")


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train a text generator into a run folder (word level: the n-gram next-word recipe; "
                 "--level char: the streaming engine)",
        description="Train a text generator on a corpus; the --out folder receives the model, tokenizer, config "
                    "and per-epoch metrics after every epoch, and --resume continues from it. The options below are "
                    "the word level's (the n-gram next-word recipe); --level char trains the streaming engine "
                    "(rnnkit lm train), whose options `rnnkit train --level char --help` lists.",
    )
    p.add_argument("--level", choices=LEVEL_CHOICES, default="word", help="what a token is (default: word)")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder to write (or resume)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its saved state")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    data = p.add_argument_group("data")
    data.add_argument("--corpus", metavar="NAME|PATH", help="named corpus (e.g. sonnets), a .txt file or a folder "
                      "of them (default: sonnets)")
    data.add_argument("--split", choices=("train", "valid", "test"), help="split of corpora that have them")
    data.add_argument("--decode-errors", choices=("strict", "replace"), help="undecodable bytes: fail (default) or replace")
    data.add_argument("--max-len", type=int_range(2, 1_000_000), metavar="N", help="n-gram length incl. the next word (default: longest line)")
    data.add_argument("--num-words", type=int_range(2, 100_000_000), metavar="N", help="keep only the N-1 most frequent words")
    data.add_argument("--oov-token", metavar="TOKEN", help="token for words outside the vocabulary (default: drop them)")
    model = p.add_argument_group("model")
    model.add_argument("--preset", choices=list(PRESETS), help="a fixed, well-known architecture: " + "; ".join(
        f"{name}: {preset.summary}" for name, preset in PRESETS.items()))
    model.add_argument("--cell", choices=list(CELLS), help=f"recurrent cell: {', '.join(CELLS)} (default: lstm; "
                       f"mingru/minlstm are the parallel-scan cells); --level char: {', '.join(CHAR_CELLS)}")
    model.add_argument("--bidirectional", action="store_const", const=True, help="bidirectional recurrent layers")
    model.add_argument("--embedding", type=positive_int, metavar="N", help="word vector width (default: 100)")
    model.add_argument("--hidden", type=positive_int, metavar="N", help="units per recurrent layer (default: 150)")
    model.add_argument("--layers", type=positive_int, metavar="N", help="stacked recurrent layers (default: 1)")
    model.add_argument("--dropout", type=rate, metavar="RATE", help="dropout after each recurrent layer (default: 0)")
    training = p.add_argument_group("training")
    training.add_argument("--epochs", type=positive_int, metavar="N",
                          help=f"total epochs to reach (default: the preset's, else {DEFAULT_EPOCHS})")
    training.add_argument("--batch-size", type=positive_int, metavar="N", help="default: 32")
    training.add_argument("--lr", type=positive_float, metavar="RATE", help="Adam learning rate (default: 0.001)")
    training.add_argument("--seed", type=seed_int, help="seed for weights and shuffling (default: 0)")
    training.add_argument("--validation-split", type=rate, metavar="FRACTION",
                          help="hold out the last FRACTION of the n-grams (default: 0)")
    output = p.add_argument_group("output")
    output.add_argument("--threads", type=positive_int, metavar="N", help="CPU threads for torch (default: torch's choice; "
                        "1 is often fastest on a busy machine)")
    output.add_argument("--plot", action="store_true", help="also draw metrics.png in the run folder")
    output.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    output.add_argument("--quiet", action="store_true", help="no summary or progress output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .checks import CLIError

    engine = LEVELS.get(args.level)
    if engine is None:
        raise CLIError(f"--level {args.level} is not available yet; available: {', '.join(LEVELS)}")
    check_writable("--json", args.json)
    set_threads(args.threads)
    started = time.perf_counter()
    result = engine(args)
    result["seconds"] = round(time.perf_counter() - started, 3)
    if args.json:
        write_json(args.json, result)
    return 0


def set_threads(threads: int | None) -> None:
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)


def write_json(path: str, result: dict) -> None:
    atomic_write_text(path, json.dumps(result, indent=2) + "\n")


def word_config(args: argparse.Namespace) -> tuple[WordConfig, dict]:
    """The config the options describe, and the options actually given (``field -> value``)."""
    given = {field: getattr(args, dest) for dest, field in WORD_OPTIONS.items() if getattr(args, dest) is not None}
    return WordConfig(**given), given


def _check_resume_options(saved: dict, given: dict) -> None:
    if "corpus" in given:
        given = {**given, "corpus": canonical_corpus(given["corpus"])}
    changed = [f"{name}={value!r} (saved: {saved.get(name)!r})" for name, value in given.items()
               if name != "epochs" and saved.get(name) != value]
    if changed:
        raise ValueError(f"a resumed run keeps its saved options; only --epochs can change, but got {', '.join(changed)}")


class AnnounceStart(Callback):
    """Prints the model summary and the amount of data when training starts."""

    def on_train_begin(self, logs=None):
        self.model.summary()
        p = self.params
        print(f"{p['samples']:,} training n-grams, batch {p['batch_size']}, {p['steps']} steps an epoch", flush=True)


def train_word(args: argparse.Namespace) -> dict:
    config, given = word_config(args)
    callbacks = [] if args.quiet else [AnnounceStart()]
    verbose = 0 if args.quiet else "auto"
    if args.resume:
        folder = RunFolder.open(args.out)
        _check_resume_options(folder.read_config().get("options", {}), given)
        done = len(folder.read_metrics()["epochs"])
        run = train_word_model(args.out, resume=True, epochs=given.get("epochs"), verbose=verbose, callbacks=callbacks)
        target = run.config["options"]["epochs"]
        if target <= done and not args.quiet:
            print(f"{folder.path} has already trained {done} epochs (target {target}); pass a larger --epochs to go on")
    else:
        run = train_word_model(args.out, config, overwrite=args.overwrite, verbose=verbose, callbacks=callbacks)
    if args.plot:
        run.folder.plot_metrics()
    epochs = run.metrics["epochs"]
    last = epochs[-1] if epochs else {}
    if not args.quiet and last:
        shown = " - ".join(f"{k}: {v:.4f}" for k, v in last.items() if k not in ("epoch", "seconds", "iterations"))
        print(f"saved {run.folder.path} after epoch {last['epoch']}: {shown}")
    return {
        "run": str(run.folder.path), "level": "word", "epochs_done": len(epochs), "final": last,
        "history": epochs, "samples": run.config["samples"], "vocab_size": run.config["vocab_size"],
        "max_len": run.config["max_len"], "params": run.config["params"], "options": run.config["options"],
    }


LEVELS = {"word": train_word}
