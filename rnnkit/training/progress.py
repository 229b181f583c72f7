"""Training progress: a tqdm bar per epoch on a terminal, one line per epoch elsewhere."""
from __future__ import annotations

import sys
import time

from .callbacks import Callback


def _fmt_logs(logs: dict) -> str:
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items() if isinstance(v, float))


def _fmt_time(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressLogger(Callback):
    """Shows loss, metrics, samples/s and ETA.

    verbose=1: a live bar per epoch (tqdm); verbose=2: one line per epoch with the
    time left for the whole run. ``stream`` defaults to stderr for bars, stdout for lines.
    """

    def __init__(self, verbose: int, stream=None, update_every: float = 0.2):
        super().__init__()
        self.verbose = verbose
        self.stream = stream
        self.update_every = update_every

    def on_train_begin(self, logs=None):
        self.train_start = time.perf_counter()
        self.epochs_done = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.epoch_start = time.perf_counter()
        self.samples = 0
        self.last_update = 0.0
        self.bar = None
        if self.verbose == 1:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=self.params.get("steps"),
                desc=f"Epoch {epoch + 1}/{self.params['epochs']}",
                unit="batch",
                file=self.stream or sys.stderr,
                leave=True,
                dynamic_ncols=True,
            )

    def on_train_batch_end(self, batch, logs=None):
        self.samples += (logs or {}).get("size", 0)
        if self.bar is None:
            return
        self.bar.update(1)
        now = time.perf_counter()
        if now - self.last_update >= self.update_every:
            self.last_update = now
            rate = self.samples / max(now - self.epoch_start, 1e-9)
            shown = {k: f"{v:.4f}" for k, v in logs.items() if k not in ("size", "batch")}
            shown["samples/s"] = f"{rate:,.0f}"
            self.bar.set_postfix(shown, refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.perf_counter() - self.epoch_start
        rate = self.samples / max(elapsed, 1e-9)
        self.epochs_done += 1
        remaining_epochs = self.params["epochs"] - epoch - 1
        per_epoch = (time.perf_counter() - self.train_start) / self.epochs_done
        line = f"{elapsed:.1f}s - {rate:,.0f} samples/s - {_fmt_logs(logs or {})}"
        if self.bar is not None:
            self.bar.set_postfix_str(line, refresh=True)
            self.bar.close()
        elif self.verbose == 2:
            eta = f" - ETA {_fmt_time(per_epoch * remaining_epochs)}" if remaining_epochs else ""
            print(f"Epoch {epoch + 1}/{self.params['epochs']} - {line}{eta}", file=self.stream or sys.stdout, flush=True)
