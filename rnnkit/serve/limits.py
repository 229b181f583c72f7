"""The server's bounds (each a ``rnnkit serve`` flag) and the count of open streams."""
from __future__ import annotations

import threading
from dataclasses import dataclass

from .errors import APIError


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may ask and on what the server holds at once.

    ``max_body_bytes``: request body size; ``max_tokens``: tokens per choice; ``max_n``: choices
    per request; ``max_prompt_chars``: prime (or text to score/translate) length in characters;
    ``max_texts``: texts per translate request; ``max_streams``: choices being generated at once
    over all models (beyond: 429 with Retry-After); ``request_timeout_s``: wall time of one
    request, after which it is cut (504, or an error event on a stream)."""

    max_body_bytes: int = 1 << 20
    max_tokens: int = 4096
    max_n: int = 16
    max_prompt_chars: int = 20_000
    max_texts: int = 256
    max_streams: int = 256
    request_timeout_s: float = 300.0

    def __post_init__(self):
        for name, value in self.__dict__.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")


class StreamSlots:
    """How many choices are being generated now, out of ``capacity``: `take` refuses with a
    429 (Retry-After) when a request's ``n`` would pass it."""

    def __init__(self, capacity: int):
        self.capacity, self.active = capacity, 0
        self._lock = threading.Lock()

    def take(self, n: int) -> None:
        with self._lock:
            if self.active + n > self.capacity:
                raise APIError(429, f"the server is generating {self.active} streams, its limit is {self.capacity} "
                                    f"(--max-streams); retry shortly", "rate_limit_error", None, {"Retry-After": "1"})
            self.active += n

    def give(self, n: int) -> None:
        with self._lock:
            self.active -= n
