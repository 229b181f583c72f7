"""The exception raised by corpus loading."""
from __future__ import annotations

__all__ = ["CorpusError"]


class CorpusError(ValueError):
    """A corpus could not be found, fetched, verified or decoded (one-line message)."""
