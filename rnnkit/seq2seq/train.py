"""Training loop for ``Seq2Seq``: plain PyTorch, readable in one sitting.

    pairs -> id arrays -> shuffled (optionally length-bucketed) batches -> model
          -> cross-entropy over the Ty output steps -> Adam (cosine-decayed rate)

The run stops after ``epochs`` passes or ``minutes`` of wall time, whichever
comes first; the rate schedule follows whichever budget is set (time when
both). After every epoch it scores the validation pairs (greedy decoding) and
writes a checkpoint atomically, so an interrupted run leaves the last
completed epoch on disk, and ``resume`` continues from it exactly: the same
batches, Adam moments and learning rates as a run that was never stopped
(the budget counts from the run's start). A bar on stderr shows loss, accuracy, samples/s,
elapsed time and ETA; one line per epoch goes to stdout.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import limits
from ..allocator import keep_freed_memory
from ..saving.native import join_optimizer_state, split_optimizer_state
from . import checkpoint
from .model import Seq2Seq, Seq2SeqConfig
from .tasks import TaskData
from .translate import Translator, score


@dataclass
class TrainConfig:
    """How to train.

    Attributes:
        batch_size: pairs per step (the course: 100).
        learning_rate: Adam's rate at the start (the course: 0.005).
        min_lr_ratio: the rate decays along a half cosine to ``learning_rate * min_lr_ratio``
            at the end of the budget; 1.0 keeps it constant.
        epochs, minutes: the budget (at least one); whichever ends first stops the run.
        bucket: batch pairs of similar input length together (with ``mask_padding``
            each batch is cut to its longest input, so short dates cost less).
        clip_norm: clip the global gradient norm (None: no clipping).
        seed: shuffling and initialisation.
        threads: torch CPU threads while training (None: leave torch's setting). The
            model's tensors are small, so extra threads mostly add synchronisation.
    """

    batch_size: int = 100
    learning_rate: float = 0.005
    min_lr_ratio: float = 1.0
    epochs: int | None = None
    minutes: float | None = None
    bucket: bool = False
    clip_norm: float | None = 5.0
    seed: int = 0
    threads: int | None = 1

    def __post_init__(self):
        if self.epochs is None and self.minutes is None:
            raise ValueError("give a training budget: --epochs N or --minutes M")
        if self.epochs is not None and self.epochs <= 0:
            raise ValueError(f"--epochs must be a positive integer, got {self.epochs}")
        if self.minutes is not None:
            limits.positive("minutes (--minutes)", self.minutes)
        limits.integer("batch_size (--batch-size)", self.batch_size, 1)
        limits.positive("learning_rate (--lr)", self.learning_rate)
        limits.in_range("min_lr_ratio", self.min_lr_ratio, 0, 1)
        limits.seed("seed (--seed)", self.seed)


def batch_order(lengths: np.ndarray, batch_size: int, rng: np.random.Generator, bucket: bool) -> list[np.ndarray]:
    """Index arrays of one epoch. Bucketing sorts windows of 50 batches by length, then
    shuffles the batches, so batches are short-padded but their order stays random."""
    perm = rng.permutation(len(lengths))
    if bucket:
        window = 50 * batch_size
        perm = np.concatenate([
            chunk[np.argsort(lengths[chunk], kind="stable")]
            for chunk in np.split(perm, range(window, len(perm), window))
        ])
    batches = [perm[i : i + batch_size] for i in range(0, len(perm), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))] if bucket else batches


def _fmt_time(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


def train(model: Seq2Seq, data: TaskData, cfg: TrainConfig, run_dir: str | Path | None = None,
          task_spec: dict | None = None, progress: bool = True, out=None, resume: tuple[dict, dict] | None = None,
          tensorboard: str | Path | None = None) -> dict:
    """Train ``model`` on ``data``; returns the training record (also saved in the checkpoint).

    ``resume``: a trainer state from `checkpoint.load_trainer`, with ``model`` holding the
    same checkpoint's weights; training goes on from the end of its last epoch.
    ``tensorboard``: a folder for TensorBoard event files: each epoch's entry of the record's
    ``history`` under its keys as tags (loss, accuracy, val_*, seconds), with ``lr`` (the
    epoch's last learning rate) and ``samples_per_s``, at step = the epoch (from 1)."""
    keep_freed_memory()  # steps reuse freed activations instead of faulting in fresh pages
    board = None
    if tensorboard is not None:
        from ..training.tensorboard import ScalarLog

        board = ScalarLog(tensorboard)
    old_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(model, data, cfg, run_dir, task_spec or data.spec, progress, out or sys.stdout, resume, board)
    finally:
        torch.set_num_threads(old_threads)
        if board is not None:
            board.close()


def _trainer_state(opt, rng, step, epoch, run_loss, run_acc, record) -> tuple[dict, dict]:
    """What resuming needs beyond the weights: (tensors, JSON-able metadata)."""
    opt_tensors, opt_meta = split_optimizer_state(opt)
    meta = {"optimizer": opt_meta, "rng": rng.bit_generator.state, "step": step, "epoch": epoch,
            "run_loss": run_loss, "run_acc": run_acc, "record": record}
    return {**opt_tensors, "torch_rng": torch.get_rng_state()}, meta


def _train(model, data, cfg, run_dir, task_spec, progress, out, resume=None, board=None):
    inp, outv = data.input_vocab, data.output_vocab
    x = torch.from_numpy(inp.encode([s for s, _ in data.train], data.tx, "training source"))
    y = torch.from_numpy(outv.encode([t for _, t in data.train], data.ty, "training target"))
    lengths = (x != inp.pad_id).sum(1).numpy() if inp.pad_id is not None else np.full(len(x), data.tx)
    trim = model.config.mask_padding and model.config.pad_id is not None  # masked steps change nothing: cut them
    translator = Translator(model, inp, outv)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    rng = np.random.default_rng(cfg.seed)
    steps_per_epoch = math.ceil(len(x) / cfg.batch_size)
    budget_s = cfg.minutes * 60 if cfg.minutes is not None else None
    total_steps = cfg.epochs * steps_per_epoch if cfg.epochs is not None else None

    from tqdm.auto import tqdm

    bar = tqdm(total=round(budget_s) if budget_s else total_steps, disable=not progress, file=sys.stderr,
               dynamic_ncols=True, mininterval=0.5, bar_format="{l_bar}{bar}| {elapsed}<{remaining}{postfix}")
    record = {"train_config": asdict(cfg), "epochs": 0, "steps": 0, "samples": 0, "seconds": 0.0, "history": []}
    step, epoch, run_loss, run_acc = 0, 0, None, None
    if resume is not None:
        tensors, meta = resume
        opt.load_state_dict(join_optimizer_state({k: v for k, v in tensors.items() if k.startswith("optimizer/")},
                                                 meta["optimizer"]))
        torch.set_rng_state(tensors["torch_rng"])
        rng.bit_generator.state = meta["rng"]
        record = {**meta["record"], "train_config": asdict(cfg)}  # the budget may have grown
        step, epoch, run_loss, run_acc = meta["step"], meta["epoch"], meta["run_loss"], meta["run_acc"]
    if board is not None:
        board.open(epoch if resume is not None else None)
    start = time.perf_counter() - record["seconds"]
    done = cfg.epochs is not None and epoch >= cfg.epochs
    saved = False
    while not done:
        model.train()
        seen = 0
        for idx in batch_order(lengths, cfg.batch_size, rng, cfg.bucket):
            elapsed = time.perf_counter() - start
            frac = elapsed / budget_s if budget_s else step / total_steps
            if frac >= 1.0:
                done = True
                break
            lr = cfg.learning_rate * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))
            for group in opt.param_groups:
                group["lr"] = lr
            xb, yb = x[idx], y[idx]
            if trim:
                xb = xb[:, : max(1, int(lengths[idx].max()))]
            logits, _ = model(xb, yb)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
            opt.step()
            acc = (logits.argmax(-1) == yb).float().mean().item()
            run_loss = loss.item() if run_loss is None else 0.95 * run_loss + 0.05 * loss.item()
            run_acc = acc if run_acc is None else 0.95 * run_acc + 0.05 * acc
            step += 1
            seen += len(idx)
            record["samples"] += len(idx)
            now = time.perf_counter() - start
            bar.n = min(round(now), bar.total) if budget_s else step
            bar.set_postfix_str(f"epoch {epoch + 1}, loss {run_loss:.4f}, acc {run_acc:.1%}, "
                                f"{record['samples'] / max(now, 1e-9):,.0f} samples/s, lr {lr:.2g}", refresh=False)
            bar.update(0)
        if seen == 0:
            break
        epoch += 1
        if cfg.epochs is not None and epoch >= cfg.epochs:
            done = True
        model.eval()
        val = score(translator.translate_texts([s for s, _ in data.val]), [t for _, t in data.val]) if data.val else {}
        elapsed = time.perf_counter() - start
        record.update(epochs=epoch, steps=step, seconds=round(elapsed, 2), val=val)
        record["history"].append({"epoch": epoch, "loss": round(run_loss, 5), "accuracy": round(run_acc, 5),
                                  "seconds": round(elapsed, 2), **{f"val_{k}": v for k, v in val.items()}})
        if board is not None:
            board.write(epoch, {**{k: v for k, v in record["history"][-1].items() if k != "epoch"}, "lr": lr,
                                "samples_per_s": record["samples"] / elapsed})
        left = budget_s - elapsed if budget_s else (total_steps - step) * elapsed / max(step, 1)
        line = (f"epoch {epoch}: loss {run_loss:.4f} acc {run_acc:.2%}"
                + (f" | val exact {val['exact_match']:.2%} char {val['char_accuracy']:.2%}" if val else "")
                + f" | {record['samples'] / elapsed:,.0f} samples/s | {_fmt_time(elapsed)} elapsed"
                + ("" if done else f", ETA {_fmt_time(max(left, 0))}"))
        bar.clear()
        print(line, file=out, flush=True)
        if run_dir is not None:
            checkpoint.save(run_dir, model, inp, outv, task_spec, record,
                            _trainer_state(opt, rng, step, epoch, run_loss, run_acc, record))
            saved = True
    bar.close()
    if run_dir is not None and not saved and resume is None:  # a budget too small for one batch
        checkpoint.save(run_dir, model, inp, outv, task_spec, record,
                        _trainer_state(opt, rng, step, epoch, run_loss, run_acc, record))
    return record


def build_model(data: TaskData, seed: int = 0, **model_kwargs) -> Seq2Seq:
    """A fresh ``Seq2Seq`` sized for ``data`` (vocabularies, Tx, Ty), initialised from ``seed``."""
    torch.manual_seed(seed)
    config = Seq2SeqConfig(len(data.input_vocab), len(data.output_vocab), tx=data.tx, ty=data.ty,
                           pad_id=data.input_vocab.pad_id, end_id=data.output_vocab.pad_id, **model_kwargs)
    return Seq2Seq(config)


def train_run(run_dir: str | Path, data: TaskData, model_kwargs: dict, cfg: TrainConfig, progress: bool = True,
              out=None, extra: dict | None = None, resume: bool = False,
              replace: bool = False, tensorboard: str | Path | None = None) -> tuple[Seq2Seq, dict]:
    """Build a model for ``data``, write the held-out pairs, train, and leave a checkpoint in ``run_dir``.

    ``resume=True`` continues the run saved in ``run_dir`` instead; its model, task and
    training settings must be the ones given here (the budget may differ), else ValueError
    naming what differs. ``replace=True`` removes a run already in ``run_dir`` (of any
    rnnkit engine) once the model is built, before anything is written. ``tensorboard``: as `train`."""
    from ..lm.run import remove_run_files

    model = build_model(data, seed=cfg.seed, **model_kwargs)
    spec = {**data.spec, **(extra or {})}
    if replace and not resume:
        remove_run_files(run_dir)
    if not resume:
        checkpoint.write_heldout(run_dir, data.test)
        return model, train(model, data, cfg, run_dir, spec, progress, out, tensorboard=tensorboard)
    config = checkpoint.read_config(run_dir)
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("epochs", "minutes", "threads")}
    saved_settings = {k: v for k, v in config["training"]["train_config"].items() if k in settings}
    differences = [f"{what} {key}: {old!r} in the run, {new!r} now"
                   for what, saved, now in (("model", config["model"], model.config.to_json()), ("task", config["task"], spec),
                                            ("training", saved_settings, settings))
                   for key in sorted(set(saved) | set(now))
                   for old, new in [(saved.get(key), now.get(key))] if old != new]
    if differences:
        raise ValueError(f"cannot resume {run_dir}: it was trained with other settings ({'; '.join(differences)})")
    trainer = checkpoint.load_trainer(run_dir, config)
    model, _, _, _ = checkpoint.load(run_dir)
    return model, train(model, data, cfg, run_dir, spec, progress, out, resume=trainer, tensorboard=tensorboard)
