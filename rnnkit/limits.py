"""Range checks for numeric options, shared by the run configs and the CLI.

One function per kind of value; each returns the value or raises one `ValueError`
line naming the option, what it got and what was expected. The CLI's argparse types
(`rnnkit.cli.checks`) call these, so ``--lr inf`` and ``TrainConfig(lr=inf)`` are refused
with the same words. NaN and infinities are refused wherever a number is expected: a
NaN fails every comparison, so a check written as ``if x < 0: raise`` lets it through.

Memory that a command can estimate before it allocates (`refuse_large`) is refused
above `memory_limit` bytes with the estimate in the message.
"""
from __future__ import annotations

import math
import numbers
import os

#: Seeds are integers from 0 to 2**32 - 1: what NumPy's, Python's and torch's generators all take.
SEED_MAX = 2**32 - 1

#: Gigabytes a command may plan to allocate for one request (generation's samples and beams),
#: unless ``RNNKIT_MEMORY_LIMIT_GB`` says otherwise.
DEFAULT_MEMORY_LIMIT_GB = 8.0


def memory_limit() -> int:
    """Bytes one request may plan to allocate: ``RNNKIT_MEMORY_LIMIT_GB`` (default 8) gigabytes."""
    text = os.environ.get("RNNKIT_MEMORY_LIMIT_GB")
    if text is None:
        return int(DEFAULT_MEMORY_LIMIT_GB * 2**30)
    try:
        return int(positive("RNNKIT_MEMORY_LIMIT_GB", float(text)) * 2**30)
    except ValueError:
        raise ValueError(f"RNNKIT_MEMORY_LIMIT_GB must be a finite number > 0 (gigabytes), got {text!r}") from None


def _number(name: str, value, expected: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return value


def positive(name: str, value) -> float:
    """A finite number > 0 (a learning rate, a time budget)."""
    if not _number(name, value, "a finite number > 0") > 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def non_negative(name: str, value) -> float:
    """A finite number >= 0 (a gradient clip, a weight decay, a temperature)."""
    if not _number(name, value, "a finite number >= 0") >= 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def in_range(name: str, value, low: float, high: float, low_open: bool = False, high_open: bool = False) -> float:
    """A finite number in the interval from ``low`` to ``high`` (each end open or closed)."""
    expected = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    v = _number(name, value, expected)
    if (v <= low if low_open else v < low) or (v >= high if high_open else v > high):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return value


def integer(name: str, value, low: int = 0, high: int | None = None) -> int:
    """An integer from ``low`` to ``high`` (booleans and floats, even whole ones, are refused)."""
    span = f">= {low}" if high is None else f"from {low} to {high}"
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low
            or (high is not None and value > high)):
        raise ValueError(f"{name} must be an integer {span}, got {value!r}")
    return int(value)


def seed(name: str, value) -> int:
    """A seed: an integer from 0 to `SEED_MAX`."""
    return integer(name, value, 0, SEED_MAX)


def refuse_large(what: str, estimate: int, hint: str) -> None:
    """Refuse a request whose planned memory ``estimate`` (bytes) exceeds `memory_limit`."""
    limit = memory_limit()
    if estimate > limit:
        raise ValueError(f"{what} would need about {_gb(estimate)} of memory, over the limit of {_gb(limit)} "
                         f"(RNNKIT_MEMORY_LIMIT_GB); {hint}")


def _gb(n: int) -> str:
    return f"{n / 2**30:,.1f} GB"
