"""TensorBoard event files of scalars: Keras's ``TensorBoard`` callback for ``fit``, and
`ScalarLog` for the streaming LM and seq2seq engines (``--tensorboard DIR``).

Both write through PyTorch's standard writer (``torch.utils.tensorboard.SummaryWriter``),
which needs the ``tensorboard`` package (``pip install 'rnnkit[tensorboard]'``); TensorBoard
stores each value as float32.
"""
from __future__ import annotations

import numbers
import os
import time
from pathlib import Path

from .callbacks import Callback


def summary_writer(log_dir: str | os.PathLike, purge_step: int | None = None, option: str = "log_dir"):
    """A ``SummaryWriter`` on ``log_dir`` (created). ``purge_step``: a resumed run's first new
    step; TensorBoard hides the events a stopped run wrote from there on. ValueError (one line)
    when the tensorboard package is missing or ``log_dir`` cannot be a folder."""
    check_log_dir(log_dir, option)
    from torch.utils.tensorboard import SummaryWriter

    try:
        return SummaryWriter(os.fspath(log_dir), purge_step=purge_step)
    except OSError as exc:
        raise ValueError(f"{option} {log_dir}: cannot write there ({exc.strerror or exc})") from None


def _scalars(values: dict) -> dict[str, float]:
    """The entries of ``values`` that are numbers (not bools)."""
    return {k: float(v) for k, v in values.items() if isinstance(v, numbers.Real) and not isinstance(v, bool)}


def _is_off(value) -> bool:
    return value is None or (not isinstance(value, (tuple, list, dict, str)) and value == 0)


class ScalarLog:
    """A training engine's figures as TensorBoard scalars, one tag per key, in ``log_dir``.

    ``write(step, {"train_loss": 1.2, "lr": 3e-3})`` adds each number under its key as the tag
    (the keys of the engine's metrics file, so TensorBoard and that file name things alike).
    Made before training (a missing package or a bad folder is said at once); the event file
    is opened by `open`, which a resumed run calls with its step.
    """

    def __init__(self, log_dir: str | os.PathLike, option: str = "--tensorboard"):
        check_log_dir(log_dir, option)
        self.log_dir, self.option, self.writer = Path(log_dir), option, None

    def open(self, resumed_at: int | None = None) -> None:
        """Start the event file; ``resumed_at``: the step a resumed run continues from (the
        events a stopped run wrote after it are hidden, as metrics files drop those lines)."""
        self.writer = summary_writer(self.log_dir, None if resumed_at is None else resumed_at + 1, self.option)

    def write(self, step: int, values: dict) -> None:
        if self.writer is None:
            self.open()
        for tag, value in _scalars(values).items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def check_log_dir(log_dir: str | os.PathLike, option: str = "--tensorboard") -> None:
    """ValueError (one line) unless event files can go to ``log_dir``: the tensorboard package
    is installed and no file stands where the folder would be."""
    from ..utils import file_in_the_way

    _require_tensorboard()
    blocker = file_in_the_way(Path(log_dir))
    if blocker is not None:
        where = "is a file" if blocker == Path(log_dir) else f"lies under {blocker}, which is a file"
        raise ValueError(f"{option} {log_dir} {where}; expected a folder for the event files")


def _require_tensorboard() -> None:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise ValueError("TensorBoard logs need the tensorboard package: pip install 'rnnkit[tensorboard]'") from None


class TensorBoard(Callback):
    """Keras 3's ``keras.callbacks.TensorBoard``: scalars of ``fit`` as event files.

    Writes what Keras writes, where Keras writes it: in ``log_dir/train``, ``epoch_<name>``
    for each epoch's training logs (loss, metrics) and ``epoch_learning_rate`` (the logs' own
    ``learning_rate`` when a callback put one there, else the optimizer's), at step = epoch
    (from 0); in ``log_dir/validation``, ``epoch_<name>`` for each ``val_<name>`` and
    ``evaluation_<name>_vs_iterations`` at step = the optimizer's iterations.

    Args:
        log_dir: the folder for the event files (default ``"logs"``).
        write_graph: True (default): the model's config as JSON in a text summary ``keras``
            (Keras 3 writes the same model summary; neither writes an op graph).
        write_steps_per_second: also ``epoch_steps_per_second`` (and ``batch_steps_per_second``
            with batch logging).
        update_freq: ``"epoch"`` (default); ``"batch"`` or an integer N: also ``batch_<name>``
            for the batch logs every N batches, at step = batches since training began (from 1).
        histogram_freq, write_images, embeddings_freq, embeddings_metadata, profile_batch: only
            their "off" values (0, False, None); any other is refused by name (not implemented).
    """

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0, embeddings_freq=0,
                 embeddings_metadata=None):
        super().__init__()
        for name, value in (("histogram_freq", histogram_freq), ("write_images", write_images),
                            ("profile_batch", profile_batch), ("embeddings_freq", embeddings_freq),
                            ("embeddings_metadata", embeddings_metadata)):
            if not _is_off(value):
                raise ValueError(f"TensorBoard: {name}={value!r} is not supported by rnnkit (scalars only); "
                                 f"leave it at its default")
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and (isinstance(update_freq, bool) or not isinstance(update_freq, int)
                                       or update_freq < 1):
            raise ValueError(f"TensorBoard: update_freq must be 'epoch', 'batch' or a positive integer, "
                             f"got {update_freq!r}")
        for name, value in (("write_graph", write_graph), ("write_steps_per_second", write_steps_per_second)):
            if not isinstance(value, bool):
                raise ValueError(f"TensorBoard: {name} must be True or False, got {value!r}")
        _require_tensorboard()  # missing, it is said at once, not when fit starts
        self.log_dir = os.fspath(log_dir)
        self.write_graph, self.write_steps_per_second = write_graph, write_steps_per_second
        self.update_freq = update_freq
        self._writers: dict = {}

    def _writer(self, which: str):
        if which not in self._writers:
            self._writers[which] = summary_writer(os.path.join(self.log_dir, which))
        return self._writers[which]

    def on_train_begin(self, logs=None):
        from .. import distributed

        self._main = distributed.is_main()  # one process writes
        self._global_batch = 0
        if self._main and self.write_graph:
            import json

            self._writer("train").add_text("keras", json.dumps(self.model.get_config(), default=str), 0)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start, self._epoch_batches = time.perf_counter(), 0

    def on_train_batch_begin(self, batch, logs=None):
        self._global_batch += 1
        self._epoch_batches += 1
        self._batch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if not self._main or self.update_freq == "epoch" or self._global_batch % self.update_freq:
            return
        writer = self._writer("train")
        values = {k: v for k, v in (logs or {}).items() if k != "size"}  # "size": the batch's sample count
        if self.write_steps_per_second:
            values["steps_per_second"] = 1.0 / max(time.perf_counter() - self._batch_start, 1e-9)
        for name, value in _scalars(values).items():
            writer.add_scalar(f"batch_{name}", value, self._global_batch)

    def on_epoch_end(self, epoch, logs=None):
        if not self._main:
            return
        logs = logs or {}
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and "learning_rate" not in train:
            # A learning_rate in the logs (ReduceLROnPlateau's) is the epoch's, and what History keeps.
            train["learning_rate"] = optimizer.learning_rate
        if self.write_steps_per_second:
            train["steps_per_second"] = self._epoch_batches / max(time.perf_counter() - self._epoch_start, 1e-9)
        for name, value in _scalars(train).items():
            self._writer("train").add_scalar(f"epoch_{name}", value, epoch)
        for name, value in _scalars(val).items():
            self._writer("validation").add_scalar(f"epoch_{name}", value, epoch)
            if optimizer is not None:
                self._writer("validation").add_scalar(f"evaluation_{name}_vs_iterations", value, optimizer.iterations)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
