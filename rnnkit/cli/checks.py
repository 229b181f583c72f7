"""Checks the commands run before their work, so a bad option fails in seconds, not after training."""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from .. import limits
from ..utils import file_in_the_way


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def check_writable(option: str, path: str | None) -> None:
    """Raise ValueError (one line) when ``path`` cannot be written as a file; None passes."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"{option} {path} is a folder; expected a file path")
    folder = target.parent
    blocker = file_in_the_way(folder)
    if blocker is not None:
        raise ValueError(f"{option} {path}: {blocker} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ValueError(f"{option} {path}: cannot write there ({exc.strerror or exc})") from None


# argparse types: a bad value is refused while the arguments are read, before anything is
# created; each runs the library's own check (`rnnkit.limits`), so the CLI and the Python API
# refuse the same values. argparse prints "argument --lr: expected ..., got inf" on one line.
def _typed(parse, check, expected: str):
    def convert(text: str):
        try:
            value = parse(text)
            check("value", value)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}") from None
        return value

    convert.__name__ = parse.__name__  # argparse names the type in some errors
    return convert


positive_int = _typed(int, lambda n, v: limits.integer(n, v, 1), "an integer >= 1")
non_negative_int = _typed(int, limits.integer, "an integer >= 0")
positive_float = _typed(float, limits.positive, "a finite number > 0")
non_negative_float = _typed(float, limits.non_negative, "a finite number >= 0")
seed_int = _typed(int, limits.seed, f"an integer from 0 to {limits.SEED_MAX} (a seed)")
#: A rate such as dropout: [0, 1).
rate = _typed(float, lambda n, v: limits.in_range(n, v, 0, 1, high_open=True), "a number in [0, 1)")
#: A share of the total such as --top-p: (0, 1].
share = _typed(float, lambda n, v: limits.in_range(n, v, 0, 1, low_open=True), "a number in (0, 1]")
#: A held-out fraction: (0, 1).
open_fraction = _typed(float, lambda n, v: limits.in_range(n, v, 0, 1, True, True), "a number in (0, 1)")
#: A fraction from 0 to 1, both included (--min-lr-ratio).
unit_interval = _typed(float, lambda n, v: limits.in_range(n, v, 0, 1), "a number in [0, 1]")


def int_range(low: int, high: int):
    """An argparse type for an integer from ``low`` to ``high``."""
    return _typed(int, lambda n, v: limits.integer(n, v, low, high), f"an integer from {low} to {high}")


def device_name(text: str) -> str:
    """``auto`` or a device torch can name (``cpu``, ``cuda``, ``cuda:1``, ``mps``, ...); whether
    it is present is checked when it is used."""
    if text == "auto":
        return text
    import torch

    try:
        torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or mps, got {text!r}") from None
    return text


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (what was wrong, and where the options are
    listed) instead of the usage block followed by the error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (options: {self.prog} --help)\n")
