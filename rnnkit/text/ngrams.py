"""N-gram prefixes of encoded lines, for next-word prediction (the classic Keras recipe).

    sequences = tokenizer.texts_to_sequences(lines)
    padded = pad_sequences(ngram_sequences(sequences), padding="pre")
    xs, labels = split_xy(padded)

For large corpora use `rnnkit.text.ngram_arrays`, which builds the same
`(xs, labels)` without the intermediate lists.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

__all__ = ["ngram_sequences", "split_xy"]


def ngram_sequences(sequences: Iterable[Sequence[int]], min_len: int = 2) -> list[list[int]]:
    """All prefixes of length `>= min_len` of each sequence, in order.

    >>> ngram_sequences([[7, 3, 4, 9], [5]])
    [[7, 3], [7, 3, 4], [7, 3, 4, 9]]

    A sequence of length `L` gives ``max(0, L - min_len + 1)`` prefixes.

    Args:
        sequences: Iterable of encoded lines (lists of ints).
        min_len: Shortest prefix kept (>= 1). Defaults to `2` (one input
            word and the word to predict).

    Returns:
        A list of lists of ints.
    """
    if min_len < 1:
        raise ValueError(f"ngram_sequences: min_len must be >= 1, got {min_len}")
    return [list(seq[:end]) for seq in sequences for end in range(min_len, len(seq) + 1)]


def split_xy(padded) -> tuple[np.ndarray, np.ndarray]:
    """Splits padded n-grams into inputs and next-word labels.

    >>> split_xy(pad_sequences([[7, 3], [7, 3, 4], [7, 3, 4, 9]], maxlen=5))
    (array([[0, 0, 0, 7],
           [0, 0, 7, 3],
           [0, 7, 3, 4]], dtype=int32), array([3, 4, 9], dtype=int32))

    Args:
        padded: Array of shape `(N, maxlen)`, `maxlen >= 2`, as returned by
            `pad_sequences(..., padding="pre")`.

    Returns:
        `(xs, labels)`: views of `padded`, `xs` of shape `(N, maxlen - 1)`
        (all but the last column) and sparse labels of shape `(N,)` (the last
        column). One-hot labels, if needed, are ``to_categorical(labels, vocab_size)``.
    """
    padded = np.asarray(padded)
    if padded.ndim != 2 or padded.shape[1] < 2:
        raise ValueError(f"split_xy: expected shape (N, maxlen) with maxlen >= 2, got {padded.shape}")
    return padded[:, :-1], padded[:, -1]
