"""Character vocabularies: text <-> fixed-length arrays of ids.

A ``Vocab`` lists its symbols by id. Special symbols come first: ``<pad>`` (id 0,
fills the tail of short sequences; on the output side it also marks the end of
a variable-length target) and ``<unk>`` (any character the vocabulary lacks, so
unseen input never crashes a model). Normalisation (lower-casing, characters to
drop) is part of the vocabulary, so training and translation read text the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PAD = "<pad>"
UNK = "<unk>"


@dataclass
class Vocab:
    """Symbols by id, plus how text is normalised before lookup.

    Args:
        symbols: id -> symbol; specials (``<pad>``, ``<unk>``) first when present.
        lowercase: lower-case text before lookup.
        drop: characters removed before lookup (the course drops commas).
    """

    symbols: list[str]
    lowercase: bool = False
    drop: str = ""
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self):
        self.symbols = list(self.symbols)
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("Vocab: symbols must be distinct")
        self.index = {s: i for i, s in enumerate(self.symbols)}

    @classmethod
    def build(cls, chars, *, pad: bool = True, unk: bool = True, lowercase: bool = False, drop: str = "") -> "Vocab":
        """A vocabulary of the distinct characters in ``chars`` (a string or strings), sorted."""
        seen = set("".join(chars) if not isinstance(chars, str) else chars)
        if lowercase:
            seen = {c.lower() for c in seen}
        seen -= set(drop)
        specials = ([PAD] if pad else []) + ([UNK] if unk else [])
        return cls(specials + sorted(seen), lowercase=lowercase, drop=drop)

    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def pad_id(self) -> int | None:
        return self.index.get(PAD)

    @property
    def unk_id(self) -> int | None:
        return self.index.get(UNK)

    def normalize(self, text: str) -> str:
        if self.lowercase:
            text = text.lower()
        if self.drop:
            text = text.translate({ord(c): None for c in self.drop})
        return text

    def unknown(self, text: str) -> list[str]:
        """Characters of ``text`` (after normalisation) that the vocabulary lacks, in order of appearance."""
        return list(dict.fromkeys(c for c in self.normalize(text) if c not in self.index))

    def encode(self, texts: list[str], length: int, what: str = "text") -> np.ndarray:
        """``(len(texts), length)`` int64 ids, right-padded with ``<pad>``.

        Unknown characters become ``<unk>`` (an error if the vocabulary has none);
        a text longer than ``length`` after normalisation is an error naming it."""
        out = np.full((len(texts), length), self.pad_id or 0, dtype=np.int64)
        for row, text in enumerate(texts):
            norm = self.normalize(text)
            if len(norm) > length:
                raise ValueError(f"{what} {text!r} has {len(norm)} characters; this model reads at most {length}")
            if len(norm) < length and self.pad_id is None:
                raise ValueError(f"{what} {text!r} has {len(norm)} characters; this vocabulary has no <pad>, "
                                 f"so it must have exactly {length}")
            try:
                out[row, : len(norm)] = [self.index[c] for c in norm]
            except KeyError:
                if self.unk_id is None:
                    unknown = "".join(self.unknown(text))
                    raise ValueError(f"{what} {text!r} has characters outside the vocabulary: {unknown!r}") from None
                out[row, : len(norm)] = [self.index.get(c, self.unk_id) for c in norm]
        return out

    def decode(self, ids) -> str:
        """The text of one id sequence, up to its first ``<pad>``; ``<unk>`` shows as ``?``."""
        chars = []
        for i in np.asarray(ids).tolist():
            if i == self.pad_id:
                break
            chars.append("?" if i == self.unk_id else self.symbols[i])
        return "".join(chars)

    def tokens(self, ids) -> list[str]:
        """Every symbol of ``ids`` (pads included), for plot labels."""
        return [self.symbols[i] for i in np.asarray(ids).tolist()]

    def to_json(self) -> dict:
        return {"symbols": self.symbols, "lowercase": self.lowercase, "drop": self.drop}

    @classmethod
    def from_json(cls, obj: dict) -> "Vocab":
        return cls(obj["symbols"], lowercase=bool(obj.get("lowercase", False)), drop=obj.get("drop", ""))
