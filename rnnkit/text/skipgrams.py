"""Skip-gram pairs for word2vec-style training, as ``keras.preprocessing.sequence``.

Randomness follows Keras exactly, so results match it for the same state of
Python's global `random` module: sampling-table draws, negative words and the
default shuffle seed all come from that global generator, and a shuffle
re-seeds it with `seed` (a global side effect, kept for bit-exact agreement).
"""
from __future__ import annotations

import random
from typing import Sequence

import numpy as np

__all__ = ["make_sampling_table", "skipgrams"]


def make_sampling_table(size: int, sampling_factor: float = 1e-5) -> np.ndarray:
    """Word2vec keep-probabilities for words ranked by frequency.

    Assuming Zipf-distributed word frequencies,
    ``frequency(rank) ~ 1 / (rank * (log(rank) + gamma) + 1/2 - 1/(12 * rank))``,
    entry `i` is ``min(1, sqrt(f / sampling_factor) / (f / sampling_factor))``
    for the word of rank `i` (rank 0 is treated as rank 1).

    Args:
        size: Number of words (length of the table).
        sampling_factor: The word2vec sampling factor. Defaults to `1e-5`.

    Returns:
        float64 array of shape `(size,)`: probability of keeping the
        `i`-th most frequent word.
    """
    gamma = 0.577
    rank = np.arange(size)
    rank[0] = 1
    inv_fq = rank * (np.log(rank) + gamma) + 0.5 - 1.0 / (12.0 * rank)
    f = sampling_factor * inv_fq
    return np.minimum(1.0, f / np.sqrt(f))


def skipgrams(
    sequence: Sequence[int],
    vocabulary_size: int,
    window_size: int = 4,
    negative_samples: float = 1.0,
    shuffle: bool = True,
    categorical: bool = False,
    sampling_table: Sequence[float] | None = None,
    seed: int | None = None,
) -> tuple[list[list[int]], list]:
    """Generates (target, context) word pairs with 1/0 labels.

    Positive pairs ``[w_i, w_j]`` (label 1) take every `j != i` with
    ``|i - j| <= window_size``, skipping index 0 on either side. Then
    ``int(num_positive * negative_samples)`` negative pairs (label 0) pair a
    target word (targets shuffled, cycled) with a uniform random word in
    ``[1, vocabulary_size - 1]``; negatives may hit true context words.

    Args:
        sequence: Word indices (list of ints); 0 is a non-word and skipped.
            With a `sampling_table`, indices must be frequency ranks.
        vocabulary_size: Maximum word index + 1.
        window_size: Half-width of the context window. Defaults to `4`.
        negative_samples: Negatives per positive pair (float >= 0; 0 for
            none). Defaults to `1.0`.
        shuffle: Whether to shuffle the pairs (and labels alike).
            Defaults to `True`.
        categorical: If `True`, labels are `[0, 1]` (positive) / `[1, 0]`
            (negative) instead of `1` / `0`. Defaults to `False`.
        sampling_table: Optional array of shape `(vocabulary_size,)`; word `w`
            is used as a target with probability `sampling_table[w]`
            (see `make_sampling_table`). Defaults to `None`.
        seed: Seed of the final shuffle. Defaults to `None` (drawn from the
            global `random`). Negatives and sampling are *not* governed by it:
            call ``random.seed(...)`` first for fully reproducible output.

    Returns:
        `(couples, labels)`: a list of `[target, context]` pairs and a list
        of labels of the same length.
    """
    couples: list[list[int]] = []
    for i, wi in enumerate(sequence):
        if not wi:
            continue
        if sampling_table is not None and sampling_table[wi] < random.random():
            continue
        for j in range(max(0, i - window_size), min(len(sequence), i + window_size + 1)):
            if j != i and sequence[j]:
                couples.append([wi, sequence[j]])
    num_positive = len(couples)
    num_negative = 0

    if negative_samples > 0:
        num_negative = int(num_positive * negative_samples)
        words = [c[0] for c in couples]
        random.shuffle(words)
        couples += [
            [words[i % len(words)], random.randint(1, int(vocabulary_size - 1))]
            for i in range(num_negative)
        ]

    positive, negative = ([0, 1], [1, 0]) if categorical else (1, 0)
    labels = [positive] * num_positive + [negative] * num_negative
    if categorical:
        labels = [list(label) for label in labels]

    if shuffle:
        if seed is None:
            seed = random.randint(0, int(10e6))
        random.seed(seed)
        random.shuffle(couples)
        random.seed(seed)
        random.shuffle(labels)
    return couples, labels
