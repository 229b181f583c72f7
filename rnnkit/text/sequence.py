"""Padding variable-length sequences into one array, as ``keras.utils.pad_sequences``."""
from __future__ import annotations

import numpy as np

__all__ = ["pad_sequences"]

_SIDES = ("pre", "post")


def pad_sequences(
    sequences,
    maxlen: int | None = None,
    dtype="int32",
    padding: str = "pre",
    truncating: str = "pre",
    value=0.0,
) -> np.ndarray:
    """Pads (and truncates) a list of sequences to a common length.

    Turns a list of `num_samples` sequences into an array of shape
    `(num_samples, maxlen) + sample_shape`, where `sample_shape` is the shape
    of one element (``()`` for sequences of scalars), taken from the first
    non-empty sequence. Shorter sequences are padded with `value`, longer ones
    cut; empty sequences become all-`value` rows.

    >>> pad_sequences([[1], [2, 3], [4, 5, 6]])
    array([[0, 0, 1],
           [0, 2, 3],
           [4, 5, 6]], dtype=int32)
    >>> pad_sequences([[1], [2, 3], [4, 5, 6]], maxlen=2, padding='post')
    array([[1, 0],
           [2, 3],
           [5, 6]], dtype=int32)

    Args:
        sequences: List (anything with `len`) of sequences.
        maxlen: Length of the output rows. Defaults to `None`: the length of
            the longest sequence.
        dtype: Output dtype; values are cast to it (floats truncate for int
            dtypes). Use `object` or a NumPy string dtype for strings.
            Defaults to `"int32"`.
        padding: `"pre"` or `"post"`: pad before or after each sequence.
            Defaults to `"pre"`.
        truncating: `"pre"` or `"post"`: drop values from the start or the
            end of sequences longer than `maxlen`. Defaults to `"pre"`.
        value: Padding value (number, or string with a string/object dtype).
            Defaults to `0.0`.

    Returns:
        NumPy array of shape `(len(sequences), maxlen) + sample_shape`.

    Raises:
        ValueError: `sequences` has no length or holds a non-iterable,
            `padding`/`truncating` is not `"pre"`/`"post"`, a string `value`
            with a non-string `dtype`, elements of differing shapes, or an
            empty `sequences` with `maxlen=None`. Unlike Keras, `padding` and
            `truncating` are validated even when every sequence is empty.
    """
    if not hasattr(sequences, "__len__"):
        raise ValueError("`sequences` must be iterable.")
    if truncating not in _SIDES:
        raise ValueError(f'Truncating type "{truncating}" not understood')
    if padding not in _SIDES:
        raise ValueError(f'Padding type "{padding}" not understood')

    lengths = []
    sample_shape: tuple | None = None  # fixed by the first non-empty sequence
    for x in sequences:
        try:
            lengths.append(len(x))
        except TypeError as e:
            raise ValueError(
                f"`sequences` must be a list of iterables. Found non-iterable: {x}"
            ) from e
        if sample_shape is None and lengths[-1]:
            sample_shape = np.asarray(x).shape[1:]
    if sample_shape is None:
        sample_shape = ()

    if maxlen is None:
        if not lengths:
            raise ValueError("pad_sequences: cannot infer `maxlen` from an empty list of sequences")
        maxlen = max(lengths)

    if isinstance(value, str) and dtype != object and not np.issubdtype(dtype, np.str_):
        raise ValueError(
            f"`dtype` {dtype} is not compatible with `value`'s type: {type(value)}. "
            "You should set `dtype=object` for variable length strings."
        )

    out = np.full((len(sequences), maxlen) + sample_shape, value, dtype=dtype)
    for idx, s in enumerate(sequences):
        if not len(s):
            continue
        trunc = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        trunc = np.asarray(trunc, dtype=dtype)
        if trunc.shape[1:] != sample_shape:
            raise ValueError(
                f"Shape of sample {trunc.shape[1:]} of sequence at position {idx} "
                f"is different from expected shape {sample_shape}"
            )
        if padding == "post":
            out[idx, : len(trunc)] = trunc
        else:
            out[idx, -len(trunc):] = trunc
    return out
