"""Memory-lean n-gram training sets for large corpora.

Builds exactly what the list-based recipe

    split_xy(pad_sequences(ngram_sequences(seqs, min_len), maxlen=max_len))

builds, but writes it straight into two preallocated NumPy arrays: no list per
n-gram, and sparse integer labels instead of one-hot rows. The encoded corpus
is kept as one flat int32 token array plus line offsets (4 bytes a token).
Memory is ``N * (max_len - 1) * itemsize`` for `xs` plus small chunk buffers,
where `N` is the number of n-grams (about the number of tokens).
"""
from __future__ import annotations

from array import array
from typing import Iterable, Sequence

import numpy as np

__all__ = ["flatten_sequences", "ngram_arrays", "ngram_training_set"]

#: Elements per temporary index buffer while filling rows (int64: 8 MiB).
_CHUNK_ELEMENTS = 1 << 20


def flatten_sequences(sequences: Iterable[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenates encoded lines into one flat array plus offsets, streaming.

    Line `i` is ``tokens[offsets[i]:offsets[i + 1]]``. Pass
    ``tokenizer.texts_to_sequences_generator(lines)`` to encode a corpus
    without holding a list per line.

    Args:
        sequences: Iterable of sequences of ints (each < 2**31).

    Returns:
        `(tokens, offsets)`: int32 array of shape `(total_tokens,)` and int64
        array of shape `(num_lines + 1,)` with ``offsets[0] == 0``.
    """
    tokens = array("i")
    offsets = array("q", [0])
    for seq in sequences:
        tokens.extend(seq)
        offsets.append(len(tokens))
    return (
        np.frombuffer(tokens, dtype=np.intc).astype(np.int32, copy=False),
        np.frombuffer(offsets, dtype=np.int64),
    )


def ngram_arrays(
    tokens,
    offsets,
    max_len: int | None = None,
    min_len: int = 2,
    dtype="int32",
) -> tuple[np.ndarray, np.ndarray]:
    """Next-word training arrays from a flat encoded corpus.

    Every line yields one sample per prefix of length `>= min_len`, in order.
    A sample is the prefix's last `max_len` tokens, pre-padded with 0 to
    `max_len`; its last token is the label and the rest the input (lines
    longer than `max_len` thus give sliding windows, as ``truncating="pre"``).

    With `tokens = [7, 3, 4, 9]`, `offsets = [0, 4]` and `max_len=5`:
    `xs = [[0, 0, 0, 7], [0, 0, 7, 3], [0, 7, 3, 4]]`, `labels = [3, 4, 9]`.

    Args:
        tokens: 1-D int array of all lines' tokens (see `flatten_sequences`).
        offsets: 1-D int array of line boundaries, length `num_lines + 1`.
        max_len: Window length including the label (>= 2). Defaults to
            `None`: the longest line that yields a sample (the recipe's
            `max_sequence_len`).
        min_len: Shortest prefix kept (>= 1). Defaults to `2`.
        dtype: Dtype of both outputs. Defaults to `"int32"`.

    Returns:
        `(xs, labels)`: array of shape `(N, max_len - 1)` and sparse labels
        of shape `(N,)`, where ``N = sum(max(0, len(line) - min_len + 1))``.

    Raises:
        ValueError: bad `min_len`/`max_len`/`offsets`, or `max_len=None` and
            no line long enough to give a sample.
    """
    tokens = np.asarray(tokens)
    offsets = np.asarray(offsets, dtype=np.int64)
    if min_len < 1:
        raise ValueError(f"ngram_arrays: min_len must be >= 1, got {min_len}")
    if offsets.ndim != 1 or offsets.size == 0 or offsets[-1] > tokens.size or np.any(np.diff(offsets) < 0):
        raise ValueError("ngram_arrays: offsets must be non-decreasing line boundaries into tokens")
    counts = np.maximum(np.diff(offsets) - (min_len - 1), 0)
    if max_len is None:
        if not counts.any():
            raise ValueError(f"ngram_arrays: no line has {min_len} or more tokens; pass max_len")
        max_len = int(counts.max()) + min_len - 1
    if max_len < 2:
        raise ValueError(f"ngram_arrays: max_len must be >= 2, got {max_len}")

    num_samples = int(counts.sum())
    xs = np.empty((num_samples, max_len - 1), dtype=dtype)
    labels = np.empty((num_samples,), dtype=dtype)
    first_row = np.cumsum(counts) - counts  # row of each line's first sample
    window = np.arange(-(max_len - 1), 1)  # positions relative to the label
    step = max(1, _CHUNK_ELEMENTS // max_len)
    for r0 in range(0, num_samples, step):
        rows = np.arange(r0, min(r0 + step, num_samples))
        # last line whose first row is <= row: lines without samples share their
        # first_row with the next line, so "right" skips past them
        line = np.searchsorted(first_row, rows, side="right") - 1
        start = offsets[line]
        end = start + (min_len - 1) + (rows - first_row[line])
        pos = end[:, None] + window
        chunk = tokens[np.maximum(pos, 0)]
        chunk[pos < start[:, None]] = 0
        xs[r0 : r0 + len(rows)] = chunk[:, :-1]
        labels[r0 : r0 + len(rows)] = chunk[:, -1]
    return xs, labels


def ngram_training_set(
    tokenizer,
    texts: Iterable,
    max_len: int | None = None,
    min_len: int = 2,
    dtype="int32",
) -> tuple[np.ndarray, np.ndarray]:
    """Encodes `texts` with a fitted `tokenizer` and returns `ngram_arrays` of them.

    Each text (usually one line of a corpus) is encoded one at a time, so no
    list of encoded lines is ever held.

    Args:
        tokenizer: A fitted `Tokenizer`.
        texts: Iterable of strings.
        max_len: Window length including the label. Defaults to `None`
            (longest line).
        min_len: Shortest prefix kept. Defaults to `2`.
        dtype: Dtype of both outputs. Defaults to `"int32"`.

    Returns:
        `(xs, labels)` of shapes `(N, max_len - 1)` and `(N,)`.
    """
    tokens, offsets = flatten_sequences(tokenizer.texts_to_sequences_generator(texts))
    return ngram_arrays(tokens, offsets, max_len=max_len, min_len=min_len, dtype=dtype)
