"""The run folder: everything a training run leaves behind, enough to resume it or generate from it.

    runs/sonnets/
        config.json        what was trained on what: level, corpus, window, model and training options
        tokenizer.json     the fitted tokenizer (Keras's JSON format)
        model.safetensors  the model with its optimizer state (``Model.save``), rewritten every epoch
        rng.safetensors    torch's CPU random state when training started and at the end of the
                           last two epochs, so a resumed run shuffles and drops out exactly as an
                           uninterrupted one would (on CPU)
        metrics.json       one entry per finished epoch: loss, accuracy, val_*, seconds, and the
                           optimizer's step count at the epoch's end (``iterations``)
        metrics.png        the curves, when asked for

Every file is written atomically (temporary file, fsync, rename), so a run
stopped at any moment leaves the previous complete version of each file. After
an epoch the random state is written first, then the metrics, then the model:
a run stopped between two of these writes has a model one epoch behind the
metrics, and resuming (`RunFolder.resume_metrics`) goes back to the model's
epoch, whose random state is still kept, and trains the lost epoch again,
exactly. Nothing here knows about word or character models: ``config.json``
names the ``level`` and the engine for that level reads the rest.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..training.callbacks import Callback
from ..utils import atomic_write, atomic_write_bytes, atomic_write_text, check_folder_path

__all__ = ["RunFolder", "RunFolderError", "EpochCheckpoint", "FORMAT", "RUN_FILES", "describe_run", "remove_run_files"]

FORMAT = "rnnkit-run/1"


#: Every file an rnnkit run may hold, of any engine (n-gram word runs, streaming LM runs,
#: seq2seq runs): what replacing a run (--overwrite) removes, and nothing else.
RUN_FILES = ("config.json", "tokenizer.json", "model.safetensors", "metrics.json", "rng.safetensors", "metrics.png",
             "last.safetensors", "best.safetensors", "metrics.jsonl", "heldout.tsv", "trainer.safetensors")


def describe_run(folder) -> str | None:
    """What kind of rnnkit run ``folder`` holds, in words ("a seq2seq run", "a char-level
    streaming run", ...), or None when it holds none (no rnnkit config.json)."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or not str(config.get("format", "")).startswith("rnnkit-"):
        return None
    if str(config["format"]).startswith("rnnkit-seq2seq"):
        return "a seq2seq run"
    if config.get("engine") == "stream":
        return f"a {config.get('level', 'char')}-level streaming run"
    return f"a {config.get('level', 'word')}-level n-gram run"


def remove_run_files(folder) -> None:
    """Remove the files of the rnnkit run in ``folder`` (`RUN_FILES`), whatever its engine;
    nothing when the folder holds no rnnkit run (`describe_run`)."""
    folder = Path(folder)
    if describe_run(folder) is None:
        return
    for name in RUN_FILES:
        (folder / name).unlink(missing_ok=True)


class RunFolderError(ValueError):
    """A folder is not a (complete) rnnkit run, or a run cannot be started or resumed there."""


class RunFolder:
    """Paths and atomic readers/writers of one run folder.

    Args:
        path: The folder (created on the first write).
    """

    def __init__(self, path):
        self.path = Path(path)
        self.config_path = self.path / "config.json"
        self.tokenizer_path = self.path / "tokenizer.json"
        self.model_path = self.path / "model.safetensors"
        self.metrics_path = self.path / "metrics.json"
        self.rng_path = self.path / "rng.safetensors"
        self.plot_path = self.path / "metrics.png"

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def is_run(self) -> bool:
        return self.config_path.is_file()

    def config_kind(self) -> str | None:
        """None (no config.json), ``"run"`` (an rnnkit run's config, of any engine, seq2seq
        included) or ``"foreign"`` (a config.json rnnkit did not write: a folder of something else)."""
        if not self.config_path.is_file():
            return None
        return "run" if describe_run(self.path) is not None else "foreign"

    def refuse_foreign(self) -> None:
        """Raise `RunFolderError` when the folder's config.json is not an rnnkit run's: its files
        are someone else's, and neither a new run nor --overwrite may touch them."""
        if self.config_kind() == "foreign":
            raise RunFolderError(f"{self.path} holds a config.json that rnnkit did not write (not a run folder); "
                                 f"choose another --out folder")

    @classmethod
    def open(cls, path) -> "RunFolder":
        """An existing run folder (one with a config.json); a clear `RunFolderError` when `path` is not one."""
        run = cls(path)
        if not run.path.exists():
            raise RunFolderError(f"{run.path}: no such run folder (expected the --out folder of `rnnkit train`)")
        if not run.path.is_dir():
            raise RunFolderError(f"{run.path} is a file, not a run folder (expected the --out folder of `rnnkit train`)")
        if not run.is_run():
            raise RunFolderError(f"{run.path} is not an rnnkit run folder: it has no config.json "
                                 f"(expected the --out folder of `rnnkit train`)")
        return run

    def require(self, *paths: Path) -> None:
        """Raises a clear `RunFolderError` when one of the run's files is missing."""
        for needed in paths:
            if not needed.is_file():
                raise RunFolderError(f"{self.path}: incomplete run folder, {needed.name} is missing")

    @classmethod
    def create(cls, path, overwrite: bool = False) -> "RunFolder":
        """A folder for a new run; refuses to replace an existing run unless `overwrite`."""
        run = cls(path)
        try:
            check_folder_path(run.path)
        except ValueError as exc:
            raise RunFolderError(str(exc)) from None
        run.refuse_foreign()
        if run.is_run() and not overwrite:
            raise RunFolderError(f"{run.path} already holds a run; pass --resume to continue it, "
                                 f"--overwrite to replace it, or another --out folder")
        run.path.mkdir(parents=True, exist_ok=True)
        if overwrite:
            remove_run_files(run.path)
        return run

    # ------------------------------------------------------------- config
    def write_config(self, config: dict) -> None:
        atomic_write_text(self.config_path, json.dumps({"format": FORMAT, **config}, indent=2) + "\n")

    def read_config(self) -> dict:
        config = self._read_json(self.config_path)
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            found = config.get("format") if isinstance(config, dict) else type(config).__name__
            raise RunFolderError(f"{self.config_path}: not an rnnkit run config (format {found!r}, expected {FORMAT!r})")
        return config

    # ---------------------------------------------------------- tokenizer
    def write_tokenizer(self, tokenizer) -> None:
        atomic_write_text(self.tokenizer_path, tokenizer.to_json())

    def read_tokenizer(self):
        from ..text import tokenizer_from_json

        try:
            return tokenizer_from_json(self.tokenizer_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, TypeError, KeyError, AttributeError) as exc:
            raise RunFolderError(f"{self.tokenizer_path}: unreadable tokenizer ({exc})") from None

    # -------------------------------------------------------------- model
    def load_model(self, compile: bool = False):
        from ..saving import load_model

        return load_model(self.model_path, compile=compile)

    # ------------------------------------------------------- random state
    def write_rng_state(self, fit_start: torch.Tensor, epoch_ends: dict[int, torch.Tensor] | None = None) -> None:
        """Saves the CPU random state from just before the run's first `fit`, and ``{epoch: state}`` at
        the end of (recent) epochs."""
        states = {"fit_start": fit_start, **{f"epoch_end/{n}": s for n, s in (epoch_ends or {}).items()}}
        atomic_write_bytes(self.rng_path, st_save(states))

    def read_rng_state(self) -> tuple[torch.Tensor, dict[int, torch.Tensor]] | None:
        """`(fit_start, {epoch: state at its end})`, or None when the run has no saved random state."""
        if not self.rng_path.is_file():
            return None
        try:
            states = st_load(self.rng_path.read_bytes())
            ends = {int(k.split("/", 1)[1]): v for k, v in states.items() if k.startswith("epoch_end/")}
            return states["fit_start"], ends
        except Exception as exc:  # safetensors raises its own error types; any of them means "unusable"
            raise RunFolderError(f"{self.rng_path}: unreadable random state ({exc})") from None

    # ------------------------------------------------------------ metrics
    def read_metrics(self) -> dict:
        """``{"epochs": [...]}``; empty before the first epoch ends."""
        if not self.metrics_path.is_file():
            return {"epochs": []}
        metrics = self._read_json(self.metrics_path)
        if not isinstance(metrics, dict) or not isinstance(metrics.get("epochs"), list):
            raise RunFolderError(f"{self.metrics_path}: expected an object with an 'epochs' list")
        return metrics

    def resume_metrics(self, iterations: int) -> dict:
        """The metrics of the epochs a saved model with `iterations` optimizer steps has finished.

        Entries past the model's epoch (a run stopped after writing an epoch's
        metrics but before its model) are dropped with a warning: that epoch is
        trained again. Raises `RunFolderError` when no epoch ends at `iterations`.
        """
        metrics = self.read_metrics()
        marks = [e.get("iterations") for e in metrics["epochs"]]
        if iterations == 0:
            done = 0
        elif iterations in marks:
            done = marks.index(iterations) + 1
        else:
            raise RunFolderError(f"{self.model_path} has taken {iterations} optimizer steps, which is the end of no "
                                 f"epoch in {self.metrics_path.name}; the run folder is inconsistent")
        if done < len(marks):
            warn(f"{self.path} stopped while saving epoch {len(marks)}: the model holds {done} epoch(s); "
                 f"epoch {done + 1} is trained again")
            metrics["epochs"] = metrics["epochs"][:done]
        return metrics

    def write_metrics(self, metrics: dict) -> None:
        atomic_write_text(self.metrics_path, json.dumps(metrics, indent=2) + "\n")

    def plot_metrics(self, path=None) -> Path:
        """Draws loss and accuracy per epoch (and their validation curves) to a PNG; returns its path."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            from matplotlib.ticker import MaxNLocator
        except ImportError:
            raise RunFolderError("plotting needs matplotlib: pip install 'rnnkit[plot]'") from None
        epochs = self.read_metrics()["epochs"]
        if not epochs:
            raise RunFolderError(f"{self.path}: no finished epoch to plot yet")
        x = [e["epoch"] for e in epochs]
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, key in zip(axes, ("loss", "accuracy")):
            for name, style in ((key, "-"), (f"val_{key}", "--")):
                if all(name in e for e in epochs):
                    ax.plot(x, [e[name] for e in epochs], style, marker=".", label=name)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(key)
            ax.grid(alpha=0.3)
            ax.legend()
        fig.suptitle(str(self.path))
        fig.tight_layout()
        out = Path(path) if path is not None else self.plot_path
        with atomic_write(out, "wb") as fh:
            fig.savefig(fh, format="png", dpi=100)
        plt.close(fig)
        return out

    def _read_json(self, path: Path):
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunFolderError(f"{path}: missing from the run folder") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RunFolderError(f"{path}: not valid JSON ({exc})") from None


class EpochCheckpoint(Callback):
    """After every epoch: saves the random state, appends the epoch's figures to metrics.json,
    then saves the model (with optimizer state), in that order (see the module docstring).

    Exact resumption: `fit` draws its shuffling seed from torch's global
    generator when it starts, and dropout draws from it during epochs. So a
    run keeps the state from just before its first `fit` (`fit_start`): a
    resumed run restores that before calling `fit` (same shuffling seed), and
    this callback then restores the resumed epoch's end state (`resume_state`)
    once `fit` has drawn it, before the first batch.

    Args:
        run: The `RunFolder`.
        metrics: The metrics of the epochs done when training (re)started;
            new epochs are appended to it.
        fit_start: CPU random state from just before the run's first `fit`.
        resume_state: State to restore when training begins (resuming), or `None`.
        epoch_end: ``(epoch, state)`` of the last finished epoch, kept in the
            random-state file beside the next one's. Defaults to `None`.
    """

    def __init__(self, run: RunFolder, metrics: dict, fit_start: torch.Tensor,
                 resume_state: torch.Tensor | None = None, epoch_end: tuple[int, torch.Tensor] | None = None):
        super().__init__()
        self.run = run
        self.metrics = metrics
        self.fit_start = fit_start
        self.resume_state = resume_state
        self.epoch_end = epoch_end

    def on_train_begin(self, logs=None):
        if self.resume_state is not None:
            torch.set_rng_state(self.resume_state)

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        entry = {"epoch": epoch + 1}
        entry.update({k: float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float))})
        entry["seconds"] = round(time.perf_counter() - self.started, 3)
        entry["iterations"] = self.model.optimizer.iterations
        # the previous epoch's state stays until this epoch's model is saved
        ends = dict([self.epoch_end]) if self.epoch_end is not None else {}
        self.epoch_end = (epoch + 1, torch.get_rng_state())
        self.run.write_rng_state(self.fit_start, {**ends, self.epoch_end[0]: self.epoch_end[1]})
        self.metrics["epochs"].append(entry)
        self.run.write_metrics(self.metrics)
        self.model.save(self.run.model_path)


def warn(message: str) -> None:
    """A one-line warning on stderr (never on stdout, which carries the results)."""
    print(f"rnnkit: warning: {message}", file=sys.stderr)
