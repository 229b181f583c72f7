"""Tasks (where pairs come from, how they are split and encoded) and model presets.

A task yields ``TaskData``: source/target pairs for training, validation (shown
while training) and a held-out test set (``evaluate``), the two vocabularies,
and the lengths ``Tx``/``Ty``. Built in: ``dates`` (``rnnkit.seq2seq.dates``);
any tab-separated file of pairs (``pairs_task``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import dates
from .vocab import PAD, UNK, Vocab

Pair = tuple[str, str]

# The course's vocabularies: its generator writes 35 distinct characters (lower case,
# commas removed) plus <unk> and <pad>; the targets use 11.
COURSE_INPUT_CHARS = " ./0123456789abcdefghijlmnoprstuvwy"
ISO_CHARS = "-0123456789"

# Model and training settings by name. "course" is the Coursera model itself
# (52,960 parameters, one-hot inputs, relu energies, context-only decoder, 10,000
# pairs, Adam 0.005, batch 100); "dates" is tuned to reach >= 99% exact match on
# held-out dates within 3 CPU minutes (see benchmarks/README.md): GRU cells, a
# 16-wide input embedding, linear energies (relu ones start dead: all-zero energies
# give uniform attention and no gradient), masked padding with length-bucketed
# batches (short dates cost less), 50,000 pairs, batch 32, Adam 0.01 with cosine decay.
PRESETS: dict[str, dict] = {
    "course": {
        "vocab": "course",
        "model": dict(n_a=32, n_s=64, cell="lstm", embedding_dim=0, attention="additive", attention_units=10,
                      energy_activation="relu", decoder_input="context", mask_padding=False),
        "train": dict(train_size=10_000, batch_size=100, learning_rate=0.005, min_lr_ratio=1.0, bucket=False),
    },
    "dates": {
        "vocab": "dates",
        "model": dict(n_a=32, n_s=64, cell="gru", embedding_dim=16, attention="additive", attention_units=16,
                      energy_activation="linear", decoder_input="context", mask_padding=True),
        "train": dict(train_size=50_000, batch_size=32, learning_rate=0.01, min_lr_ratio=0.02, bucket=True),
    },
    # Your own pairs: outputs of any length, so the decoder also sees its previous symbol.
    "pairs": {
        "model": dict(n_a=32, n_s=64, cell="gru", embedding_dim=16, attention="additive", attention_units=16,
                      energy_activation="linear", decoder_input="feedback", mask_padding=True),
        "train": dict(batch_size=32, learning_rate=0.01, min_lr_ratio=0.02, bucket=True),
    },
}


@dataclass
class TaskData:
    """Everything a run needs from its task; ``spec`` (JSON) says how to rebuild it."""

    train: list[Pair]
    val: list[Pair]
    test: list[Pair]
    input_vocab: Vocab
    output_vocab: Vocab
    tx: int
    ty: int
    spec: dict = field(default_factory=dict)


def dates_vocabs(kind: str, ty: int) -> tuple[Vocab, Vocab]:
    """Input and output vocabularies for the dates task: ``"course"`` (37 and 11 symbols,
    as the course; ``-`` is not among them and reads as ``<unk>``) or ``"dates"`` (every
    character the generator writes). Both lower-case the input; the course also drops commas."""
    if kind == "course":
        inp = Vocab([PAD, UNK] + list(COURSE_INPUT_CHARS), lowercase=True, drop=",")
    elif kind == "dates":
        inp = Vocab([PAD, UNK] + list(dates.alphabet()), lowercase=True)
    else:
        raise ValueError(f"unknown dates vocabulary {kind!r}; expected 'course' or 'dates'")
    # ISO dates are exactly 10 characters: a longer Ty needs <pad> to end them.
    out = Vocab(([PAD] if ty > 10 else []) + list(ISO_CHARS))
    return inp, out


def dates_task(train_size: int = 10_000, test_size: int = 1000, val_size: int = 500, seed: int = 0,
               tx: int = 30, ty: int = 10, vocab: str = "dates") -> TaskData:
    """The date-normalisation task: generated pairs, a validation stream and a held-out test
    set whose texts never occur in training."""
    if ty < 10:
        raise ValueError(f"the dates task needs Ty >= 10 (ISO dates have 10 characters), got {ty}")
    train, test = dates.date_splits(train_size + val_size, test_size, seed=seed, max_length=tx)
    pairs = [(e.text, e.iso) for e in train]
    inp, out = dates_vocabs(vocab, ty)
    spec = {"task": "dates", "seed": seed, "train_size": train_size, "val_size": val_size,
            "test_size": test_size, "vocab": vocab}
    return TaskData(pairs[:train_size], pairs[train_size:], [(e.text, e.iso) for e in test], inp, out, tx, ty, spec)


def read_pairs(path: str | Path, max_source: int | None = None, max_target: int | None = None) -> list[Pair]:
    """Source/target pairs from a UTF-8 file, one ``source<TAB>target`` per line.

    Blank lines are skipped; any other line without exactly one tab, with an
    empty side, or with a side longer than ``max_source``/``max_target``
    characters is an error naming the file and line number."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"pairs file {path} is a folder; expected a UTF-8 file of source<TAB>target lines")
    if not path.is_file():
        raise FileNotFoundError(f"pairs file {path} does not exist")
    pairs = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            found = "no tab" if len(fields) == 1 else f"{len(fields)} tab-separated fields"
            raise ValueError(f"{path} line {number}: expected 'source<TAB>target', found {found}: {line[:60]!r}")
        if not fields[0] or not fields[1]:
            side = "source" if not fields[0] else "target"
            raise ValueError(f"{path} line {number}: the {side} is empty")
        for side, value, limit in (("source", fields[0], max_source), ("target", fields[1], max_target)):
            if limit is not None and len(value) > limit:
                raise ValueError(f"{path} line {number}: the {side} has {len(value)} characters, "
                                 f"more than the limit {limit}")
        pairs.append((fields[0], fields[1]))
    return pairs


def pairs_task(path: str | Path, seed: int = 0, tx: int | None = None, ty: int | None = None,
               lowercase: bool = False, test_size: int | None = None) -> TaskData:
    """A task from a pairs file (``read_pairs``), character level. ``Tx``/``Ty`` default to the
    longest source/target. The pairs are shuffled with ``seed``; 10% (at most 1,000) are held
    out for ``evaluate`` and 5% (at most 500) for validation."""
    pairs = read_pairs(path, max_source=tx, max_target=ty)
    if len(pairs) < 20:
        raise ValueError(f"{path}: {len(pairs)} pairs; training needs at least 20")
    tx = tx or max(len(s) for s, _ in pairs)
    ty = ty or max(len(t) for _, t in pairs)
    order = np.random.default_rng(seed).permutation(len(pairs))
    pairs = [pairs[i] for i in order]
    n_test = test_size if test_size is not None else min(1000, max(1, len(pairs) // 10))
    n_val = min(500, max(1, len(pairs) // 20))
    test, val, train = pairs[:n_test], pairs[n_test : n_test + n_val], pairs[n_test + n_val :]
    inp = Vocab.build([s for s, _ in pairs], lowercase=lowercase)
    out = Vocab.build([t for _, t in pairs], unk=False)
    spec = {"task": "pairs", "path": str(Path(path).resolve()), "seed": seed, "pairs": len(pairs)}
    return TaskData(train, val, test, inp, out, tx, ty, spec)
