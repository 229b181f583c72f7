"""Checks the commands run before their work, so a bad option fails in seconds, not after training."""
from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from ..utils import file_in_the_way


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


# argparse types: a bad value is refused while the arguments are read.
def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


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
