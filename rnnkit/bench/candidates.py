"""The candidates: classifiers of matched size that differ only in their sequence layer.

Every candidate is ``Embedding(vocab, embedding) -> <sequence layer(s)> ->
Dense(classes, softmax)`` over windows of ``seq_len`` tokens, with the same
hidden width: ``Dense`` works on the flattened window, ``Conv1D`` slides a
5-step kernel and max-pools over time, the recurrent layers return their last
state, and the bidirectional forms run ``hidden`` units in each direction.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import layers as L
from ..models import Sequential

_RECURRENT = {"simplernn": L.SimpleRNN, "gru": L.GRU, "lstm": L.LSTM, "mingru": L.MinGRU, "minlstm": L.MinLSTM}

#: Candidate names, in report order.
CELLS = ("dense", "conv1d", *_RECURRENT, *(f"bi{name}" for name in _RECURRENT))


@dataclass(frozen=True)
class TaskShape:
    """What all candidates share: ``(batch, seq_len)`` token windows -> one of ``classes``."""

    seq_len: int
    batch_size: int = 32
    embedding: int = 32
    hidden: int = 64
    vocab: int = 1000
    classes: int = 10


def parse_cells(cells) -> list[str]:
    """Candidate names from a list or a comma-separated string; None means all of `CELLS`."""
    if cells is None:
        return list(CELLS)
    names = [c.strip().lower() for c in (cells.split(",") if isinstance(cells, str) else cells) if c.strip()]
    unknown = [c for c in names if c not in CELLS]
    if unknown:
        raise ValueError(f"unknown cell(s) {', '.join(unknown)}; expected names from {', '.join(CELLS)}")
    if not names:
        raise ValueError(f"no cells given; expected names from {', '.join(CELLS)}")
    return list(dict.fromkeys(names))


def sequence_layers(cell: str, hidden: int) -> list[L.Layer]:
    """The layers that stand between the embedding and the classifier for ``cell``."""
    if cell == "dense":
        return [L.Flatten(), L.Dense(hidden, activation="relu")]
    if cell == "conv1d":
        return [L.Conv1D(hidden, 5, padding="same", activation="relu"), L.GlobalMaxPooling1D()]
    if cell.startswith("bi"):
        return [L.Bidirectional(_RECURRENT[cell[2:]](hidden))]
    return [_RECURRENT[cell](hidden)]


def build_candidate(cell: str, shape: TaskShape) -> Sequential:
    """The classifier for ``cell``, built for ``shape``."""
    return Sequential(
        [L.Embedding(shape.vocab, shape.embedding, input_shape=(shape.seq_len,))]
        + sequence_layers(cell, shape.hidden)
        + [L.Dense(shape.classes, activation="softmax")],
        name=f"bench_{cell}",
    )
