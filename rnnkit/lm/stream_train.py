"""Streaming training of a `CharLM`: truncated BPTT over contiguous streams, state carried.

One run lives in one folder::

    RUN/config.json         engine "stream", level, corpus, model and training config (`rnnkit.lm.run` format)
    RUN/last.safetensors    the latest checkpoint (see `checkpoint`)
    RUN/best.safetensors    the checkpoint with the lowest validation loss
    RUN/metrics.jsonl       one JSON object per logged step

`train` is the whole loop: data, model, optimizer, schedule, evaluation,
checkpoints and the time budget are all in this file, in the order they happen.
A run stops at ``steps`` (counted from the start of the run), ``epochs`` or
``minutes`` of wall-clock time (training, evaluation and saving; the clock starts
once the corpus is read and the model built), whichever comes first; Ctrl-C (or SIGTERM) stops it cleanly after the current step with a
checkpoint, and ``resume=True`` continues exactly where it stopped: same data
position, carried state, optimizer moments, schedule and RNG state. Under ``torchrun``
the same loop trains data-parallel (see `train`).
"""
from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
import zlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .. import distributed, limits
from ..allocator import keep_freed_memory
from ..utils import atomic_write_text, check_folder_path
from . import checkpoint as ckpt
from .run import RunFolder, describe_run, remove_run_files
from .charlm import CharLM, CharLMConfig
from .streams import StreamBatcher, Vocab, split_train_val

#: ``config.json``'s ``engine`` for runs of this module (the folder format is `rnnkit.lm.run`).
ENGINE = "stream"
LN2 = math.log(2.0)


@dataclass
class TrainConfig:
    """Everything about a run that is not the model's architecture.

    Args:
        corpus: corpus name (``rnnkit.data.list_corpora()``, ``python-stdlib``) or a text file / folder.
        level: ``"char"`` or ``"word"`` (whitespace tokens, ``<eos>`` per line).
        val_fraction: the last fraction of the token stream held out for validation. None: the
            corpus's own ``valid`` split when it has one (PTB, WikiText-2), else 0.1.
        batch_size: parallel streams. seq_len: steps of backpropagation through time per batch.
        lr: peak learning rate (AdamW). min_lr_ratio: the cosine schedule ends at ``lr * min_lr_ratio``.
        warmup_steps: linear warm-up from 0. schedule: ``"cosine"``, ``"plateau"`` or ``"constant"``.
        plateau_factor, plateau_patience: ``"plateau"`` multiplies the rate by the factor after
            ``patience`` evaluations without improvement.
        weight_decay: AdamW's decoupled weight decay. clip: global gradient-norm clip (0 = off).
        steps, epochs, minutes: budgets (None = unlimited); at least one must be set.
        eval_every: validate (and save ``last``/``best``) every this many steps.
        log_every: write a ``metrics.jsonl`` line every this many steps.
        seed: seeds the initial weights and dropout. device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        decode_errors: bytes that are not UTF-8: ``"strict"`` (an error naming the offset) or
            ``"replace"`` (U+FFFD).
    """

    corpus: str = "tiny-shakespeare"
    level: str = "char"
    decode_errors: str = "strict"
    val_fraction: float | None = None
    batch_size: int = 32
    seq_len: int = 128
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 50
    schedule: str = "cosine"
    plateau_factor: float = 0.5
    plateau_patience: int = 1
    weight_decay: float = 0.0
    clip: float = 1.0
    steps: int | None = None
    epochs: float | None = None
    minutes: float | None = None
    eval_every: int = 500
    log_every: int = 10
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self):
        if self.level not in ("char", "word"):
            raise ValueError(f"level must be 'char' or 'word', got {self.level!r}")
        if self.schedule not in ("cosine", "plateau", "constant"):
            raise ValueError(f"schedule must be 'cosine', 'plateau' or 'constant', got {self.schedule!r}")
        for name in ("batch_size", "seq_len", "eval_every", "log_every", "steps"):
            if name != "steps" or self.steps is not None:
                limits.integer(name, getattr(self, name), 1)
        for name in ("epochs", "minutes"):
            if getattr(self, name) is not None:
                limits.positive(name, getattr(self, name))
        if self.steps is None and self.epochs is None and self.minutes is None:
            raise ValueError("set a budget: steps, epochs or minutes")
        limits.positive("lr (the learning rate)", self.lr)
        limits.integer("warmup_steps", self.warmup_steps)
        limits.non_negative("clip", self.clip)
        limits.non_negative("weight_decay", self.weight_decay)
        limits.in_range("min_lr_ratio (--min-lr-ratio)", self.min_lr_ratio, 0, 1)
        limits.positive("plateau_factor", self.plateau_factor)
        limits.integer("plateau_patience", self.plateau_patience)
        if self.val_fraction is not None:
            limits.in_range("val_fraction (--val-fraction)", self.val_fraction, 0, 1, True, True)
        limits.seed("seed", self.seed)


MODEL_KEYS = tuple(f.name for f in fields(CharLMConfig) if f.name != "vocab_size")
TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig))
#: Training keys a resumed run must keep: they fix the token streams and the state's shape.
DATA_KEYS = ("corpus", "level", "val_fraction", "batch_size", "decode_errors")

#: Defaults that differ by level (everything else: the dataclasses' defaults).
LEVEL_DEFAULTS = {
    "char": dict(hidden=512, layers=1, embedding=64, seq_len=128, batch_size=32, lr=3e-3),
    "word": dict(hidden=256, layers=2, embedding=256, tie_weights=True, dropout=0.3, seq_len=35,
                 batch_size=32, lr=2e-3),
}

#: Named settings. A preset fills the options you do not give.
PRESETS = {
    # 10 minutes of CPU on tiny-shakespeare; see benchmarks/README.md for what it reached.
    "shakespeare-10min": dict(corpus="tiny-shakespeare", level="char", cell="lstm", layers=1, hidden=512,
                              embedding=64, batch_size=32, seq_len=64, lr=4e-3, warmup_steps=50,
                              schedule="cosine", min_lr_ratio=0.05, clip=1.0, dropout=0.0, minutes=10.0,
                              eval_every=400),
    # The same budget and schedule for the MinGRU language model that matched the LSTM there:
    # residual MinGRU layers, each followed by a feed-forward block (benchmarks/README.md).
    "shakespeare-10min-mingru": dict(corpus="tiny-shakespeare", level="char", cell="mingru", layers=4, hidden=256,
                                     embedding=64, residual=True, feed_forward=2, dropout=0.1, batch_size=32,
                                     seq_len=128, lr=4e-3, warmup_steps=50, schedule="cosine", min_lr_ratio=0.05,
                                     clip=1.0, minutes=10.0, eval_every=400),
    # The README's main job: about two minutes on the built-in Python sources, offline.
    "stdlib-2min": dict(corpus="python-stdlib", level="char", cell="lstm", layers=1, hidden=256, embedding=64,
                        val_fraction=0.02,
                        batch_size=32, seq_len=128, lr=4e-3, warmup_steps=30, schedule="cosine",
                        min_lr_ratio=0.1, minutes=2.0, eval_every=200),
}


# --------------------------------------------------------------------- data
def corpus_splits(corpus: str) -> tuple[str, ...]:
    from ..data import corpus_info, list_corpora

    return corpus_info(corpus).splits if corpus in list_corpora() else ()


def load_stream_data(config: TrainConfig, vocab: Vocab | None = None) -> tuple[Vocab, np.ndarray, np.ndarray, list[str]]:
    """``(vocab, train ids, validation ids, notes)`` for a run.

    The vocabulary is built from all text the run reads (characters) or from the
    training text (words), unless a saved one is given (resume)."""
    from ..data import load_corpus

    notes = []
    errors = getattr(config, "decode_errors", "strict")
    if config.val_fraction is None and "valid" in corpus_splits(config.corpus):
        train_text = load_corpus(config.corpus, split="train", errors=errors)
        val_text = load_corpus(config.corpus, split="valid", errors=errors)
        if vocab is None:
            vocab = Vocab.build(train_text + val_text if config.level == "char" else train_text, config.level)
        train_ids, missing = vocab.encode(train_text)
        val_ids, missing_val = vocab.encode(val_text)
        missing += missing_val
    else:
        text = load_corpus(config.corpus, errors=errors)
        if vocab is None:
            vocab = Vocab.build(text, config.level)
        ids, missing = vocab.encode(text)
        train_ids, val_ids = split_train_val(ids, config.val_fraction or 0.1)
    if missing:
        what = "mapped to <unk>" if vocab.level == "word" else "left out"
        shown = ", ".join(repr(t) for t, _ in missing.most_common(5))
        notes.append(f"{sum(missing.values()):,} tokens not in the vocabulary were {what} (e.g. {shown})")
    if len(val_ids) < 2:
        raise ValueError(f"validation text too short: {len(val_ids)} tokens; raise --val-fraction or use a longer corpus")
    return vocab, train_ids, val_ids, notes


# --------------------------------------------------------------- evaluation
def evaluate(model: CharLM, ids: np.ndarray, batch_size: int = 32, seq_len: int = 256,
             rank: int = 0, world: int = 1) -> float:
    """Mean negative log-likelihood (nats per token) of predicting ``ids[1:]`` from what precedes.

    The text is read as ``batch_size`` contiguous streams with the state carried; the
    leftover tail (fewer tokens than streams) continues the last stream, so every
    token after the first is scored exactly once. The model is evaluated in eval mode.

    Data-parallel training (``world`` processes): the streams are shared out in
    contiguous blocks, process ``rank`` scores its own block, and the sums are added up
    across processes, so every process returns the loss one process would compute.
    """
    if len(ids) < 2:
        raise ValueError(f"need at least 2 tokens to evaluate, got {len(ids)}")
    total, count = _score_streams(model, ids, batch_size, seq_len, rank, world)
    if world > 1:
        total, count = distributed.all_reduce_sum(torch.tensor([total, count], dtype=torch.float64)).tolist()
    return total / count


@torch.inference_mode()
def _score_streams(model: CharLM, ids: np.ndarray, batch_size: int, seq_len: int, rank: int,
                   world: int) -> tuple[float, int]:
    """``(summed loss, tokens scored)`` of this process's block of `evaluate`'s streams."""
    was_training = model.training
    model.eval()
    device = model.head.weight.device
    batch_size = max(1, min(batch_size, (len(ids) - 1) // max(seq_len, 1)))
    lo, hi = rank * batch_size // world, (rank + 1) * batch_size // world
    total, count = 0.0, 0
    try:
        streams = StreamBatcher(ids, batch_size, min(seq_len, (len(ids) - 1) // batch_size))
        if hi == lo:  # fewer streams than processes: this one has none
            return total, count
        state = model.initial_state(hi - lo, device)
        for pos in range(0, streams.stream_len, streams.seq_len):
            x, y = streams.batch(pos, device)
            logits, state = model(x[lo:hi], state)
            total += float(F.cross_entropy(logits.flatten(0, 1), y[lo:hi].flatten(), reduction="sum"))
            count += y[lo:hi].numel()
        tail = len(ids) - 1 - batch_size * streams.stream_len
        if tail and hi == batch_size:
            start = batch_size * streams.stream_len
            x = torch.as_tensor(ids[start:start + tail].astype(np.int64), device=device).view(1, -1)
            y = torch.as_tensor(ids[start + 1:start + tail + 1].astype(np.int64), device=device).view(-1)
            last = model.select_state(state, torch.tensor([hi - lo - 1], device=device))
            logits, _ = model(x, last)
            total += float(F.cross_entropy(logits[0], y, reduction="sum"))
            count += tail
    finally:
        model.train(was_training)
    return total, count


def loss_report(loss: float, level: str) -> dict:
    """``loss`` (nats per token) with its bits per token and perplexity; keys
    ``loss``, ``bpc``, ``perplexity`` for characters, ``loss``, ``bits_per_word``,
    ``perplexity`` for words."""
    bits = "bpc" if level == "char" else "bits_per_word"
    return {"loss": loss, bits: loss / LN2, "perplexity": math.exp(loss) if loss < 700 else math.inf}


# ----------------------------------------------------------------- schedule
def learning_rate(config: TrainConfig, step: int, progress: float, plateau_scale: float) -> float:
    """Rate for ``step`` (0-based); ``progress`` in [0, 1] is the share of the budget used."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.schedule == "cosine":
        low = config.lr * config.min_lr_ratio
        return low + 0.5 * (config.lr - low) * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
    if config.schedule == "plateau":
        return config.lr * plateau_scale
    return config.lr


# --------------------------------------------------------- configuration
def resolve_config(options: dict, saved: dict | None = None) -> tuple[CharLMConfig | dict, TrainConfig, list[str]]:
    """Model and training config from keyword options (a ``preset`` name fills what is not given).

    For a resumed run (``saved`` = the checkpoint's meta), model options and the data
    options (`DATA_KEYS`) must match what the run was started with; others may change
    (budgets, rates, intervals) and are listed in the returned notes.
    Returns a model dict without ``vocab_size`` (filled once the vocabulary is known).
    """
    options = {k: v for k, v in options.items() if v is not None}
    unknown = set(options) - set(MODEL_KEYS) - set(TRAIN_KEYS) - {"preset"}
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    preset = options.pop("preset", None)
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}")
        options = {**PRESETS[preset], **options}
    from ..data import corpus_key

    if "corpus" in options:  # a file or folder by its absolute path: the run resumes from anywhere
        options["corpus"] = corpus_key(options["corpus"])
    notes = []
    if saved is not None:
        # a key added to CharLMConfig after the run started takes its default (which the run had)
        defaults = {f.name: f.default for f in fields(CharLMConfig) if f.name != "vocab_size"}
        model, train = {**defaults, **saved["model"]}, dict(saved["train"])
        if "corpus" in options and corpus_key(train.get("corpus", "")) == options["corpus"]:
            options["corpus"] = train["corpus"]  # a run from before paths were absolute, named as it was
        differ = [k for k in MODEL_KEYS + DATA_KEYS if k in options and options[k] != {**model, **train}.get(k)]
        if differ:
            what = ", ".join(f"{k}: run has {({**model, **train}).get(k)!r}, got {options[k]!r}" for k in differ)
            raise ValueError(f"cannot resume: the run was started with a different config ({what})")
        for k, v in options.items():
            if k in TRAIN_KEYS and train.get(k) != v:
                notes.append(f"{k} changed from {train.get(k)!r} to {v!r}")
                train[k] = v
        if not any(train.get(k) for k in ("steps", "epochs", "minutes")):
            raise ValueError("set a budget: steps, epochs or minutes")
        model.pop("vocab_size", None)
        return model, TrainConfig(**train), notes
    level = options.get("level", "char")
    merged = {**LEVEL_DEFAULTS.get(level, {}), **options}
    if not any(merged.get(k) for k in ("steps", "epochs", "minutes")):
        merged["epochs"] = 1.0
    model = {k: merged[k] for k in MODEL_KEYS if k in merged}
    train = TrainConfig(**{k: merged[k] for k in TRAIN_KEYS if k in merged})
    CharLMConfig(vocab_size=1, **model)  # validate the architecture before loading any data
    return model, train, notes


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA device is available")
    return dev


def run_folder_checkpoints(out: Path) -> list[Path]:
    return [p for p in (out / "last.safetensors", out / "best.safetensors") if p.exists()]


def _other_engine(out: Path) -> bool:
    """Whether ``out`` holds a run of another engine (a word-level n-gram run, say)."""
    try:
        return json.loads((out / "config.json").read_text(encoding="utf-8")).get("engine") != ENGINE
    except FileNotFoundError:
        return False
    except (OSError, ValueError, AttributeError):
        return True


# ------------------------------------------------------------------ the loop
class _StopFlag:
    """Set by Ctrl-C / SIGTERM; the loop stops after the current step and saves."""

    def __init__(self):
        self.set = False
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.set:  # a second Ctrl-C: stop right now
            raise KeyboardInterrupt
        self.set = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def train(
    out: str | os.PathLike,
    resume: bool | str = False,
    progress: str = "auto",
    on_log: Callable[[dict], object] | None = None,
    overwrite: bool = False,
    tensorboard: str | os.PathLike | None = None,
    **options,
) -> dict:
    """Train (or resume) a streaming LM in the run folder ``out``.

    Args:
        out: run folder; refused if it already holds a run and neither ``resume`` nor
            ``overwrite`` is given.
        resume: False, True (from ``last``) or ``"best"``.
        overwrite: replace a run already in ``out`` (of this engine or the word level's): its
            files are removed once the options are checked, before training starts.
        progress: ``"bar"`` (tqdm), ``"lines"``, ``"none"`` or ``"auto"`` (bar on a terminal).
        on_log: called with every ``metrics.jsonl`` record (on rank 0 only when data-parallel);
            a truthy return value stops the run after that step, with a checkpoint, as Ctrl-C does.
        tensorboard: a folder for TensorBoard event files (rank 0's): every ``metrics.jsonl``
            record's figures under their keys as tags, and ``lr``, at the record's step.
        **options: `CharLMConfig` and `TrainConfig` fields, and ``preset``.

    Data-parallel: launched by ``torchrun --nproc_per_node=N`` (or ``--nnodes``), every
    process calls this function with the same options. The training text becomes
    ``N x batch_size`` streams, process ``r`` trains streams ``r * batch_size`` to
    ``(r + 1) * batch_size - 1``, and DistributedDataParallel averages the gradients before
    clipping, so N processes with batch B follow the run of one process with batch N*B
    (dropout aside: each process draws its own masks). Validation is shared out the same
    way and summed. Only rank 0 prints and writes the run folder; checkpoints hold every
    process's carried state and RNG state, and resume exactly under the same N. Under another
    number M (a run started by ``torchrun`` on two machines, continued on a laptop, or an
    elastic ``--nnodes=1:4`` restart) the run continues: weights, optimizer moments, step
    count and schedule carry over, and the M x batch_size streams are re-cut at the same
    share of the epoch, from zero state (a note says so). Stops (budget,
    Ctrl-C, ``on_log``) are agreed by all processes at the same step. The call joins the
    process group (gloo on CPU, NCCL on CUDA) and leaves it on return, unless the caller
    had joined it already.

    Returns:
        A summary: ``step``, ``elapsed_s``, ``val_loss``, ``best_val_loss``, ``stopped``
        (``"budget"`` or ``"interrupted"``), ``run`` (the folder).

    Example:
        >>> train("runs/shakes", corpus="tiny-shakespeare", minutes=2, hidden=256)  # doctest: +SKIP
    """
    out = Path(out)
    if overwrite and resume:
        raise ValueError("overwrite and resume exclude each other: resume continues the run in out, "
                         "overwrite replaces it")
    joined = _join(out, resume, options)
    board = None
    try:
        if tensorboard is not None and distributed.rank() == 0:
            from ..training.tensorboard import ScalarLog

            board = ScalarLog(tensorboard)
        return _train(out, resume, progress, on_log, options, overwrite, board)
    finally:
        if board is not None:
            board.close()
        if joined:  # leave the process group this call joined, so that processes exit cleanly
            distributed.shutdown()


def _train(out: Path, resume, progress: str, on_log, options: dict, overwrite: bool = False, board=None) -> dict:
    """`train`'s run, in a process group already joined when data-parallel."""
    keep_freed_memory()  # steps reuse freed activations instead of faulting in fresh pages
    world, rank = distributed.world_size(), distributed.rank()
    main = rank == 0
    saved_tensors, saved = _open_run(out, resume, overwrite)
    model_opts, config, notes = resolve_config(options, saved)
    saved_world = saved["data"].get("world_size", 1) if saved else world
    log = _Display(progress if main else "none", config)
    for note in notes:
        log.note(f"resume: {note}")

    # ---- data: a flat array of token ids, cut into streams by index
    vocab, train_ids, val_ids, data_notes = load_stream_data(
        config, Vocab.from_dict(saved["vocab"]) if saved else None)
    for note in data_notes:
        log.note(note)
    if saved and saved["data"]["train_tokens"] != len(train_ids):
        raise ValueError(
            f"cannot resume: corpus {config.corpus!r} now gives {len(train_ids):,} training tokens, "
            f"the run was started on {saved['data']['train_tokens']:,}")
    text_crc = [_crc32(train_ids), _crc32(val_ids)]
    if saved and saved["data"].get("text_crc32", text_crc) != text_crc:  # older runs did not record it
        raise ValueError(f"cannot resume: the text of corpus {config.corpus!r} has changed since the run started "
                         f"(same length, other contents)")
    if world > 1:
        distributed.check_same_config({
            "model": model_opts, "train": asdict(config), "vocab": vocab.to_dict(), "train_tokens": len(train_ids),
            "val_tokens": len(val_ids), "text_crc32": text_crc,
            "resume_step": saved["progress"]["step"] if saved else None})
    batcher = StreamBatcher(train_ids, config.batch_size, config.seq_len, world, rank)

    # ---- model and optimizer
    device = _process_device(config.device, world)
    torch.manual_seed(config.seed)
    model_config = CharLMConfig(vocab_size=len(vocab), **model_opts)
    model = CharLM(model_config).to(device)
    if world > 1:  # the same initial weights everywhere, but each process draws its own dropout masks
        torch.manual_seed(config.seed + 1_000_003 * (rank + 1))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, betas=(0.9, 0.99), weight_decay=config.weight_decay,
                                  **_fastest_adam_kwargs(device))
    step, epoch, pos, elapsed_before, saved_step = 0, 0, 0, 0.0, None
    best_val, last_val, plateau = None, None, {"scale": 1.0, "best": None, "bad": 0}
    window = {"loss_sum": 0.0, "count": 0, "tokens": 0, "train_s": 0.0}
    # Where the present number of processes took over: an epochs budget counts the epochs
    # left from there in this world's steps (zero for a run that never changed its world).
    since = {"step": 0, "epochs": 0.0}
    state = model.initial_state(config.batch_size, device)
    if saved:
        model.load_state_dict(ckpt.unpack("model", saved_tensors))
        ckpt.load_optimizer(optimizer, ckpt.unpack("optim", saved_tensors), saved["optimizer"])
        p = saved["progress"]
        step, epoch, pos, elapsed_before = p["step"], p["epoch"], p["pos"], p["elapsed_s"]
        best_val, last_val, plateau, window = p["best_val"], p["val_loss"], p["plateau"], p["window"]
        since = p.get("since", since)
        saved_step = step
        if saved_world == world:
            state = _unpack_state(ckpt.unpack("state", saved_tensors), model, device)
            if world > 1:  # the checkpoint holds every process's streams, in rank order
                rows = slice(rank * config.batch_size, (rank + 1) * config.batch_size)
                state = [[s[rows].contiguous() for s in layer] for layer in state]
            ckpt.set_rank_rng(ckpt.unpack("rng", saved_tensors), rank)
        else:  # elastic: the same share of the epoch in streams of another length, from zero state
            old_len = (len(train_ids) - 1) // (saved_world * config.batch_size)  # as StreamBatcher cut them
            pos = _recut(pos, old_len, batcher.stream_len, config.seq_len)
            since = {"step": step, "epochs": epoch + p["pos"] / old_len}
            if rank < saved_world:
                ckpt.set_rank_rng(ckpt.unpack("rng", saved_tensors), rank)
            else:  # a process the run did not have: dropout masks of its own
                torch.manual_seed(config.seed + 1_000_003 * (rank + 1) + step)
            log.note(_elastic_note(saved_world, world, config.batch_size, since["epochs"] - epoch, pos,
                                   batcher.stream_len))
        log.note(f"resumed {out} at step {step:,} (epoch {epoch + 1}, {elapsed_before:.0f}s so far)")
    # DistributedDataParallel averages the gradients over the processes during backward,
    # so clipping and the optimizer see the gradient of the whole global batch.
    runner = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        runner = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def prepare_folder() -> None:
        if saved:
            _trim_metrics(out / "metrics.jsonl", step)
        else:  # everything is checked by now: only here does an overwritten run go
            out.mkdir(parents=True, exist_ok=True)
            if overwrite:
                remove_run_files(out)
            (out / "metrics.jsonl").unlink(missing_ok=True)
        RunFolder(out).write_config({
            "engine": ENGINE, "level": config.level, "corpus": config.corpus, "model": model_config.to_dict(),
            "train": asdict(config), "vocab_size": len(vocab), "train_tokens": len(train_ids),
            "val_tokens": len(val_ids), "world_size": world})

    distributed.on_main(prepare_folder)
    if board is not None:
        board.open(step if saved else None)

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - t_start

    def save(which: str, states, rng, optim_tensors, groups) -> None:
        meta = {
            "model": model_config.to_dict(), "train": asdict(config), "vocab": vocab.to_dict(),
            "data": {"train_tokens": len(train_ids), "val_tokens": len(val_ids), "world_size": world,
                     "text_crc32": text_crc},
            "optimizer": groups,
            "progress": {"step": step, "epoch": epoch, "pos": pos, "elapsed_s": elapsed(), "best_val": best_val,
                         "val_loss": last_val, "plateau": plateau, "window": window, "since": since},
        }
        tensors = {**ckpt.pack("model", model.state_dict()), **ckpt.pack("optim", optim_tensors),
                   **ckpt.pack("state", _pack_state(states)), **ckpt.pack("rng", rng)}
        path = out / f"{which}.safetensors"
        try:
            ckpt.save_checkpoint(path, tensors, meta)
        except OSError as exc:
            kept = "the previous checkpoint is intact" if path.exists() else "no checkpoint was written"
            raise RuntimeError(f"could not save {path}: {exc.strerror or exc}; {kept}") from None

    def validate() -> None:
        nonlocal last_val
        t0 = time.perf_counter()
        last_val = evaluate(model, val_ids, config.batch_size * world, max(config.seq_len, 256), rank, world)
        if config.schedule == "plateau":
            if plateau["best"] is None or last_val < plateau["best"] - 1e-4:
                plateau["best"], plateau["bad"] = last_val, 0
            else:
                plateau["bad"] += 1
                if plateau["bad"] > config.plateau_patience:
                    plateau["scale"] *= config.plateau_factor
                    plateau["bad"] = 0
        timing["eval"] = time.perf_counter() - t0

    def checkpoint() -> None:
        nonlocal best_val, saved_step
        t0 = time.perf_counter()
        improved = best_val is None or last_val < best_val
        if improved:
            best_val = last_val
        # Gathered from every process (all take part); rank 0 writes them.
        states = [[distributed.all_gather_rows(s) for s in layer] for layer in state]
        rng = ckpt.all_ranks_rng_tensors()

        def write() -> None:
            optim_tensors, groups = ckpt.optimizer_tensors(optimizer)
            save("last", states, rng, optim_tensors, groups)
            if improved:
                save("best", states, rng, optim_tensors, groups)

        distributed.on_main(write)
        saved_step = step
        timing["eval"] += time.perf_counter() - t0

    def log_step(val_loss) -> bool:
        """Write the metrics line for this step; True when ``on_log`` asks to stop."""
        nonlocal window
        totals = window
        if world > 1:  # the loss and rate of all processes' streams together
            sums = distributed.all_reduce_sum(torch.tensor([window["loss_sum"], window["tokens"]], dtype=torch.float64))
            totals = {**window, "loss_sum": float(sums[0]) / world, "tokens": float(sums[1])}
        record = _record(step, elapsed(), totals, val_loss, config.level)
        window = {"loss_sum": 0.0, "count": 0, "tokens": 0, "train_s": 0.0}
        if not main:
            return False
        _append_metrics(out / "metrics.jsonl", record)
        if board is not None:
            board.write(step, {**{k: v for k, v in record.items() if k != "step"}, "lr": lr})
        log.update(record, step, elapsed(), lr)
        return bool(on_log is not None and on_log(record))

    # ---- budgets
    total_steps = config.steps
    if config.epochs is not None:
        left = round((config.epochs - since["epochs"]) * batcher.steps_per_epoch)
        by_epochs = max(1, left) if not since["step"] else since["step"] + max(0, left)
        total_steps = by_epochs if total_steps is None else min(total_steps, by_epochs)
    budget_s = config.minutes * 60 if config.minutes is not None else None

    def progress_fraction() -> float:
        parts = []
        if total_steps:
            parts.append((step - config.warmup_steps) / max(1, total_steps - config.warmup_steps))
        if budget_s:
            parts.append(elapsed() / budget_s)
        return max(parts)

    def out_of_time() -> bool:
        """Whether another step and an evaluation would overrun the time budget."""
        if budget_s is None or timing["step"] is None:
            return False
        # Until measured, guess evaluation (forward only) at 1.5x the training rate: on the safe side.
        eval_s = timing["eval"] or len(val_ids) * timing["step"] / (1.5 * batcher.batch_size * world * config.seq_len)
        return elapsed() + timing["step"] + eval_s > budget_s

    def resume_hint() -> str:
        if saved_step is None:
            return "no checkpoint was written"
        return f"the last checkpoint (step {saved_step:,}) is intact: run the same command with --resume to continue"

    timing = {"step": None, "eval": None}
    # The clock starts here: the budget covers training, evaluation and checkpoints, not the
    # one-off setup above (reading the corpus, building the model, torch's first imports).
    t_start = time.perf_counter()
    log.start(total_steps, budget_s, step, elapsed())
    stopped, last_eval_step, lr = "budget", None, config.lr
    model.train()
    with distributed.lost_contact(lambda: f"at step {step + 1:,}; {resume_hint()}"):
        with _StopFlag() as stop:
            while total_steps is None or step < total_steps:
                if pos >= batcher.stream_len:  # new epoch: the streams start over from the zero state
                    epoch, pos = epoch + 1, 0
                    state = model.initial_state(config.batch_size, device)
                lr = learning_rate(config, step, progress_fraction(), plateau["scale"])
                for group in optimizer.param_groups:
                    group["lr"] = lr

                t0 = time.perf_counter()
                x, y = batcher.batch(pos, device)
                logits, state = runner(x, state)
                loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, config.clip)
                optimizer.step()
                state = model.detach_state(state)
                step, pos = step + 1, pos + x.shape[1]
                loss_value = loss.item()
                dt = time.perf_counter() - t0
                timing["step"] = dt if timing["step"] is None else 0.9 * timing["step"] + 0.1 * dt

                window["loss_sum"] += loss_value
                window["count"] += 1
                window["tokens"] += y.numel()
                window["train_s"] += dt
                evaluated = step % config.eval_every == 0
                if evaluated:
                    validate()
                if (evaluated or step % config.log_every == 0) and log_step(last_val if evaluated else None):
                    stop.set = True
                if evaluated:  # after the metrics line, so a resumed run's log window starts empty
                    checkpoint()
                    last_eval_step = step
                # Every process stops at the same step: on a stop any of them got, or rank 0's clock.
                stop.set, no_time = distributed.agree(stop.set, main and out_of_time())
                if stop.set:
                    stopped = "interrupted"
                    break
                if no_time:
                    break

        if last_eval_step != step:  # the final evaluation, unless this step just had one
            validate()
            if window["count"]:
                log_step(last_val)
            elif step:
                record = _record(step, 0, window, last_val, config.level)
                distributed.on_main(lambda: _amend_last_metrics(out / "metrics.jsonl", step, record))
                if board is not None:
                    board.write(step, {k: v for k, v in record.items() if k.startswith("val_")})
            checkpoint()
    summary = {"run": str(out), "step": step, "epoch": epoch, "elapsed_s": elapsed(), "val_loss": last_val,
               "best_val_loss": best_val, "stopped": stopped, "level": config.level}
    log.finish(summary)
    return summary


def _join(out: Path, resume, options: dict) -> bool:
    """Join the process group when launched by torchrun; whether this call joined it.

    The backend follows the device (NCCL for CUDA, gloo for CPU), needed before the run's
    config is known: the ``device`` option, else the run's own (resume), else the CPU."""
    if not distributed.requested() or distributed.is_active():
        return False
    name = options.get("device")
    if name is None and resume:
        try:
            name = json.loads((out / "config.json").read_text(encoding="utf-8"))["train"]["device"]
        except (OSError, ValueError, KeyError, TypeError):
            name = None
    return distributed.setup(resolve_device(name or "cpu"))


def _process_device(name: str, world: int) -> torch.device:
    """This process's device: under torchrun on GPUs, the GPU of its local rank."""
    device = resolve_device(name)
    if world > 1:
        on_nccl = "nccl" in str(torch.distributed.get_backend())
        if on_nccl != (device.type == "cuda"):
            raise ValueError(f"the processes joined the {torch.distributed.get_backend()} backend but the run trains on "
                             f"{device}; pass --device {name} to every process")
        if device.type == "cuda":
            device = torch.device("cuda", distributed.local_rank())
    return device


def _open_run(out: Path, resume, overwrite: bool = False) -> tuple[dict | None, dict | None]:
    """``(tensors, meta)`` of the checkpoint to resume, or ``(None, None)`` for a new run in ``out``
    (with ``overwrite``, even where a run is; ``prepare_folder`` in `_train` removes it).

    Rank 0 checks the folder and reads the file; the other processes get its bytes (they
    need not share its disk) or its error."""
    which = "best" if resume == "best" else "last"
    path = out / f"{which}.safetensors"

    def read() -> bytes:
        check_folder_path(out)
        RunFolder(out).refuse_foreign()
        if not resume:
            if not overwrite and (run_folder_checkpoints(out) or _other_engine(out)):
                raise FileExistsError(f"{out} already holds a run; pass --resume to continue it, --overwrite to "
                                      f"replace it, or choose another --out")
            return b""
        if not path.exists():
            other = describe_run(out) if _other_engine(out) else None
            if other:
                raise FileNotFoundError(f"{out} holds {other}, which this engine does not resume: continue it with "
                                        f"the command that started it")
            raise FileNotFoundError(f"{path}: nothing to resume (no {which} checkpoint in {out})")
        try:
            if not distributed.is_active():
                loaded.extend(ckpt.load_checkpoint(path))
                return b""
            data = path.read_bytes()
            loaded.extend(ckpt.load_checkpoint_bytes(data, path))
            return data
        except ckpt.CheckpointError as exc:
            other = out / ("last.safetensors" if which == "best" else "best.safetensors")
            hint = f"; {other.name} is separate: resume from it with --resume {other.stem}" if other.exists() else ""
            raise ckpt.CheckpointError(f"{exc}{hint}") from None

    loaded: list = []
    data = distributed.on_main(read)
    if data and not loaded:
        loaded.extend(ckpt.load_checkpoint_bytes(data, path))
    return (loaded[0], loaded[1]) if loaded else (None, None)


def _recut(pos: int, old_len: int, new_len: int, seq_len: int) -> int:
    """The position in streams of ``new_len`` tokens at the share of the epoch that ``pos``
    was in streams of ``old_len``: rounded down to a whole batch, as positions advance."""
    return min(new_len, pos * new_len // max(old_len, 1) // seq_len * seq_len)


def _elastic_note(started: int, now: int, batch_size: int, share: float, pos: int, stream_len: int) -> str:
    def procs(n):
        return f"{n} process{'es' if n > 1 else ''}"

    return (f"the run was trained by {procs(started)} and continues under {procs(now)}: its {started * batch_size} "
            f"streams are re-cut into {now * batch_size} at {share:.1%} of the epoch (position {pos:,} of "
            f"{stream_len:,}), with the carried state reset to zeros; weights, optimizer and schedule carry over "
            f"(an exact resume needs {procs(started)})")


def _crc32(ids: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(ids).view(np.uint8))


def _fastest_adam_kwargs(device: torch.device) -> dict:
    # The fused kernel updates every parameter in one pass (CPU support since torch 2.4).
    return {"fused": True} if device.type in ("cpu", "cuda") else {}


def _record(step, elapsed_s, window, val_loss, level) -> dict:
    rate_key = "chars_per_s" if level == "char" else "tokens_per_s"
    rec = {"step": step, "elapsed_s": round(elapsed_s, 3),
           "train_loss": window["loss_sum"] / max(window["count"], 1),
           rate_key: window["tokens"] / max(window["train_s"], 1e-9)}
    if val_loss is not None:
        rec["val_loss"] = val_loss
        if level == "char":
            rec["val_bpc"] = val_loss / LN2
        else:
            rec["val_ppl"] = math.exp(val_loss) if val_loss < 700 else math.inf
    return rec


def _append_metrics(path: Path, record: dict) -> None:
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
    except OSError as exc:
        raise RuntimeError(f"could not write {path}: {exc.strerror or exc}") from None


def _amend_last_metrics(path: Path, step: int, record: dict) -> None:
    """Add the validation keys of ``record`` to the line already logged for ``step``."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    if lines and json.loads(lines[-1]).get("step") == step:
        last = json.loads(lines[-1])
        last.update({k: v for k, v in record.items() if k.startswith("val_")})
        lines[-1] = json.dumps(last)
        atomic_write_text(path, "".join(line + "\n" for line in lines))


def _trim_metrics(path: Path, step: int) -> None:
    """Drop lines logged after the checkpoint being resumed (and any torn last line)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    try:
        atomic_write_text(path, "".join(line + "\n" for line in keep))
    except OSError as exc:
        raise RuntimeError(f"could not rewrite {path}: {exc.strerror or exc}") from None


def _pack_state(state) -> dict[str, torch.Tensor]:
    return {f"{i}/{j}": s for i, layer_state in enumerate(state) for j, s in enumerate(layer_state)}


def _unpack_state(tensors: dict[str, torch.Tensor], model: CharLM, device) -> list:
    return [[tensors[f"{i}/{j}"].to(device) for j in range(layer.n_states)] for i, layer in enumerate(model.rnns)]


# ------------------------------------------------------------------ display
def _fmt_time(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class _Display:
    """Progress as a tqdm bar (terminal) or as one line per evaluation and every ~10 s."""

    def __init__(self, mode: str, config: TrainConfig):
        import sys

        if mode not in ("auto", "bar", "lines", "none"):
            raise ValueError(f"progress must be 'auto', 'bar', 'lines' or 'none', got {mode!r}")
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode, self.level, self.bar, self.last_line = mode, config.level, None, 0.0
        self.stream = sys.stderr

    def note(self, text: str) -> None:
        if self.mode != "none":
            print(f"note: {text}", file=self.stream, flush=True)

    def start(self, total_steps, budget_s, step, elapsed_s) -> None:
        self.total_steps, self.budget_s = total_steps, budget_s
        self.step0, self.t0 = step, elapsed_s
        if self.mode == "bar":
            from tqdm.auto import tqdm

            # With a time budget the bar measures seconds, so its ETA is the time left.
            total = budget_s if budget_s and not total_steps else total_steps
            self.bar = tqdm(total=total, initial=elapsed_s if total == budget_s else step, file=self.stream,
                            unit="s" if total == budget_s else "step", dynamic_ncols=True,
                            bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} [{elapsed}<{remaining}{postfix}]")

    def _eta(self, step, elapsed_s) -> float:
        etas = []
        if self.total_steps and step > self.step0:
            etas.append((self.total_steps - step) * (elapsed_s - self.t0) / (step - self.step0))
        if self.budget_s:
            etas.append(self.budget_s - elapsed_s)
        return min(etas) if etas else 0.0

    def update(self, record: dict, step: int, elapsed_s: float, lr: float) -> None:
        loss = record["train_loss"]
        rate = record.get("chars_per_s", record.get("tokens_per_s"))
        measure = f"{loss / LN2:.3f} bpc" if self.level == "char" else f"ppl {math.exp(min(loss, 700)):.1f}"
        val = ""
        if "val_loss" in record:
            v = record["val_loss"]
            val = f"val {v:.4f} ({v / LN2:.3f} bpc)" if self.level == "char" else f"val {v:.4f} (ppl {math.exp(min(v, 700)):.1f})"
        unit = "chars/s" if self.level == "char" else "tok/s"
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss {loss:.4f} {measure} {val} {rate:,.0f} {unit}".replace("  ", " "), refresh=False)
            self.bar.update((elapsed_s if self.bar.unit == "s" else step) - self.bar.n)
        elif self.mode == "lines" and (val or time.monotonic() - self.last_line > 10):
            self.last_line = time.monotonic()
            total = f"/{self.total_steps:,}" if self.total_steps else ""
            print(f"step {step:,}{total} | loss {loss:.4f} ({measure}) | {val + ' | ' if val else ''}"
                  f"{rate:,.0f} {unit} | lr {lr:.2e} | {_fmt_time(elapsed_s)} elapsed, ETA {_fmt_time(self._eta(step, elapsed_s))}",
                  file=self.stream, flush=True)

    def finish(self, summary: dict) -> None:
        if self.bar is not None:
            done = summary["elapsed_s"] if self.bar.unit == "s" else summary["step"]
            self.bar.update(max(0.0, min(done, self.bar.total or done) - self.bar.n))
            self.bar.close()
        if self.mode == "none":
            return
        v = summary["val_loss"]
        measure = (f"{v / LN2:.3f} bpc" if self.level == "char" else f"perplexity {math.exp(min(v, 700)):.2f}") if v is not None else ""
        how = "stopped (interrupted); continue with --resume" if summary["stopped"] == "interrupted" else "done"
        print(f"{how}: step {summary['step']:,} in {_fmt_time(summary['elapsed_s'])}, validation loss "
              f"{v:.4f} ({measure}), best {summary['best_val_loss']:.4f}; checkpoints in {summary['run']}",
              file=self.stream, flush=True)
