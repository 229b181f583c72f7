"""Small utilities shared across rnnkit: atomic file writes, label encoding, global seeding."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "set_random_seed", "to_categorical"]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Open a temporary file beside ``path``; on clean exit fsync it and rename it over ``path``.

    A crash (or exception) inside the block leaves ``path`` exactly as it was:
    readers see either the old file or the complete new one, never a torn write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def file_in_the_way(path: str | os.PathLike) -> Path | None:
    """The file that stops ``path`` from being (or going under) a folder: ``path`` itself or
    its nearest existing ancestor, when that is not a folder; None otherwise."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists():
            return None if p.is_dir() else p
    return None


def check_folder_path(path: str | os.PathLike, option: str = "--out") -> None:
    """ValueError (one line) when ``path`` cannot be a folder: it, or a folder above it, is a file."""
    path = Path(path)
    blocker = file_in_the_way(path)
    if blocker is not None:
        where = "is a file" if blocker == path else f"lies under {blocker}, which is a file"
        raise ValueError(f"{option} {path} {where}; expected a folder for the run")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_write(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def to_categorical(y, num_classes: int | None = None, dtype: str = "float32") -> np.ndarray:
    """One-hot encode integer class labels, as ``keras.utils.to_categorical``.

    ``y`` of shape ``S`` becomes an array of shape ``S + (num_classes,)``; a
    trailing axis of size 1 is dropped first, as Keras does. ``num_classes``
    defaults to ``max(y) + 1``.
    """
    y = np.asarray(y, dtype="int64")
    input_shape = y.shape
    if input_shape and input_shape[-1] == 1 and len(input_shape) > 1:
        input_shape = input_shape[:-1]
    y = y.reshape(-1)
    if y.size and y.min() < 0:
        raise ValueError(f"to_categorical: labels must be non-negative integers, got {int(y.min())}")
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    elif y.size and y.max() >= num_classes:
        raise ValueError(
            f"to_categorical: label {int(y.max())} out of range for num_classes={num_classes}"
        )
    out = np.zeros((y.shape[0], num_classes), dtype=dtype)
    out[np.arange(y.shape[0]), y] = 1
    return out.reshape(input_shape + (num_classes,))


def set_random_seed(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (every device), as
    ``keras.utils.set_random_seed`` does for its backends."""
    import random

    import torch

    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"set_random_seed: seed must be an integer, got {seed!r} ({type(seed).__name__})")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds the CUDA generators too
