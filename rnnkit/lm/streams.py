"""Corpus -> flat token ids -> batches of parallel streams.

A `Vocab` turns text into one flat array of token ids (characters, or
whitespace-separated words with ``<eos>`` at each line end) and back.
`StreamBatcher` cuts the array into ``batch_size`` contiguous streams, one row
each, and hands out the next ``seq_len`` tokens of every stream per step; the
model's state at the end of a batch is the right starting state for the next
one, row by row. Batches are views cut by index: any 1-D integer array works,
a ``np.memmap`` included.
"""
from __future__ import annotations

import math
import unicodedata
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

EOS = "<eos>"
UNK = "<unk>"
LEVELS = ("char", "word")


class Vocab:
    """Token <-> id mapping for one level: ``"char"`` (each character a token) or
    ``"word"`` (whitespace-separated words, ``<eos>`` closing every line, ``<unk>``
    for words outside the vocabulary).

    Char vocabularies are the sorted set of characters; word vocabularies are
    ordered by frequency (ties alphabetically), with ``<unk>`` and ``<eos>`` always present.
    """

    def __init__(self, tokens: list[str], level: str):
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r}; expected 'char' or 'word'")
        if not tokens:
            raise ValueError("a vocabulary needs at least one token (is the corpus empty?)")
        self.level = level
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("vocabulary tokens must be unique")

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def build(cls, text: str, level: str) -> "Vocab":
        if level == "char":
            return cls(sorted(set(text)), "char")
        counts = Counter(_words(text))
        counts.pop(UNK, None)
        counts.pop(EOS, None)
        words = sorted(counts, key=lambda w: (-counts[w], w))
        return cls([EOS, UNK] + words, level)

    def to_dict(self) -> dict:
        return {"level": self.level, "tokens": self.tokens}

    @classmethod
    def from_dict(cls, d: dict) -> "Vocab":
        return cls(list(d["tokens"]), d["level"])

    # ------------------------------------------------------------- encoding
    @property
    def dtype(self):
        """Smallest unsigned dtype that holds every id (1 byte a character for most corpora)."""
        return np.uint8 if len(self) <= 256 else np.uint16 if len(self) <= 65536 else np.int32

    def encode(self, text: str) -> tuple[np.ndarray, Counter]:
        """Token ids of ``text`` as a flat array, and a Counter of the tokens not in the
        vocabulary: unknown characters are left out, unknown words become ``<unk>``."""
        if self.level == "word":
            unk = self.index[UNK]
            missing: Counter = Counter()
            out = []
            for w in _words(text):
                i = self.index.get(w)
                if i is None:
                    missing[w] += 1
                    i = unk
                out.append(i)
            return np.asarray(out, dtype=self.dtype), missing
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        known = np.array([ord(t) for t in self.tokens], dtype=np.int64)
        table = np.full(max(int(codes.max(initial=0)), int(known.max())) + 1, -1, dtype=np.int64)
        table[known] = np.arange(len(self))
        ids = table[codes]
        bad = ids < 0
        missing = Counter(chr(c) for c in codes[bad]) if bad.any() else Counter()
        return ids[~bad].astype(self.dtype), missing

    def decode(self, ids, prev: int | None = None) -> str:
        """Text of ``ids``; ``prev`` is the token before them, if any (see `token_text`)."""
        out = []
        for i in ids:
            out.append(self.token_text(int(i), prev))
            prev = int(i)
        return "".join(out)

    def token_text(self, i: int, prev: int | None = None) -> str:
        """Text of token ``i`` in running output after token ``prev`` (None: at the start).
        Words are separated by spaces, ``<eos>`` is a line break."""
        t = self.tokens[i]
        if self.level == "char":
            return t
        if t == EOS:
            return "\n"
        return t if prev is None or self.tokens[prev] == EOS else " " + t

    def encode_prime(self, text: str) -> tuple[list[int], list[str]]:
        """Ids of a generation prime and a list of notes on tokens that had to be mapped.

        Characters the model never saw become their accent-free form when that is
        known (``é`` -> ``e``), else their other case, else are skipped. Unknown
        words become ``<unk>``. Never raises for unknown tokens.
        """
        notes, ids = [], []
        if self.level == "word":
            words = text.split()
            for w in words:
                if w in self.index:
                    ids.append(self.index[w])
                else:
                    ids.append(self.index[UNK])
                    notes.append(f"{w!r} -> {UNK}")
            return ids, notes
        for ch in text:
            if ch in self.index:
                ids.append(self.index[ch])
                continue
            for alt in _char_fallbacks(ch):
                if alt in self.index:
                    ids.append(self.index[alt])
                    notes.append(f"{ch!r} -> {alt!r}")
                    break
            else:
                notes.append(f"{ch!r} skipped")
        return ids, notes

    def default_prime(self) -> list[int]:
        """Start token when the prime is empty: a newline (``<eos>`` for words), else the first token."""
        for t in ("\n", EOS):
            if t in self.index:
                return [self.index[t]]
        return [0]


def _words(text: str):
    for line in text.splitlines():
        yield from line.split()
        yield EOS


def _char_fallbacks(ch: str) -> list[str]:
    out = []
    base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
    if len(base) == 1 and base != ch:
        out.append(base)
    for c in (ch.lower(), ch.upper(), base.lower(), base.upper()):
        if len(c) == 1 and c not in out and c != ch:
            out.append(c)
    return out


def split_train_val(ids: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The first ``1 - val_fraction`` of the token stream for training, the rest for validation."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {val_fraction!r}")
    cut = len(ids) - int(round(len(ids) * val_fraction))
    return ids[:cut], ids[cut:]


@dataclass
class StreamBatcher:
    """Cuts ``tokens`` into ``batch_size`` contiguous streams of ``n = (len - 1) // batch_size``
    targets each; row ``b`` of every batch continues row ``b`` of the previous one.

    An epoch visits every position of every stream once: target ``b * n + p + 1`` is
    predicted from input ``b * n + p`` at stream offset ``p``. The last
    ``(len - 1) % batch_size`` tokens (fewer than one per stream) are not trained on.

    Data-parallel training: with ``world`` processes the text is cut into
    ``world * batch_size`` streams and process ``rank`` reads streams
    ``rank * batch_size`` to ``(rank + 1) * batch_size - 1``, so the processes
    together see exactly the batches one process with ``world * batch_size`` streams sees.
    """

    tokens: np.ndarray
    batch_size: int
    seq_len: int
    world: int = 1
    rank: int = 0

    def __post_init__(self):
        if self.batch_size < 1 or self.seq_len < 1:
            raise ValueError(f"batch size and sequence length must be >= 1, got {self.batch_size} and {self.seq_len}")
        if not 0 <= self.rank < self.world:
            raise ValueError(f"rank must be in [0, {self.world}), got {self.rank}")
        streams = self.batch_size * self.world
        self.stream_len = (len(self.tokens) - 1) // streams
        if self.stream_len < self.seq_len:
            need = streams * self.seq_len + 1
            if self.world == 1:
                what, fix = f"{self.batch_size} streams", "lower --batch-size or --seq-len"
            else:
                what = f"{self.world} processes x {self.batch_size} streams"
                fix = "use fewer processes, lower --batch-size or --seq-len"
            raise ValueError(
                f"training text too short: {len(self.tokens):,} tokens, need at least {need:,} for one batch of "
                f"{what} x {self.seq_len} steps; {fix}, or use a longer corpus"
            )
        used = self.tokens[: streams * self.stream_len + 1]
        rows = slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        self._x = used[:-1].reshape(streams, self.stream_len)[rows]
        self._y = used[1:].reshape(streams, self.stream_len)[rows]

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.stream_len / self.seq_len)

    def batch(self, pos: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets ``(batch, t)`` at stream offset ``pos``; ``t = seq_len`` except
        at the end of an epoch, where it is what is left of the streams."""
        end = min(pos + self.seq_len, self.stream_len)
        x = torch.from_numpy(self._x[:, pos:end].astype(np.int64))
        y = torch.from_numpy(self._y[:, pos:end].astype(np.int64))
        if device is not None and torch.device(device).type != "cpu":
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        return x, y
