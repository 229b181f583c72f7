"""Splitting a text into words, and hashing words to integer ids.

Pure Python ports of ``keras.preprocessing.text.text_to_word_sequence``,
``one_hot`` and ``hashing_trick`` (Keras 2 / ``tf_keras``), same arguments,
same defaults, same results.
"""
from __future__ import annotations

import hashlib
from typing import Callable

__all__ = ["DEFAULT_FILTERS", "text_to_word_sequence", "one_hot", "hashing_trick"]

#: Characters removed by default: ASCII punctuation except ``'``, plus tab and newline.
DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'


def text_to_word_sequence(
    input_text: str,
    filters: str = DEFAULT_FILTERS,
    lower: bool = True,
    split: str = " ",
) -> list[str]:
    """Converts a text to a list of words (tokens).

    Every character of `filters` is replaced by `split`, then the text is split
    on `split` and empty strings are dropped.

    >>> text_to_word_sequence('This is a sample sentence.')
    ['this', 'is', 'a', 'sample', 'sentence']

    Args:
        input_text: Input text (string).
        filters: String of characters to filter out. Defaults to
            ``DEFAULT_FILTERS`` (punctuation except ``'``, tab and newline).
        lower: Whether to lowercase the text first. Defaults to `True`.
        split: Separator for word splitting. Defaults to `" "`.

    Returns:
        A list of words.
    """
    if lower:
        input_text = input_text.lower()
    input_text = input_text.translate(str.maketrans({c: split for c in filters}))
    return [word for word in input_text.split(split) if word]


def hashing_trick(
    text: str,
    n: int,
    hash_function: Callable[[str], int] | str | None = None,
    filters: str = DEFAULT_FILTERS,
    lower: bool = True,
    split: str = " ",
    analyzer: Callable[[str], list[str]] | None = None,
) -> list[int]:
    """Converts a text to a list of word ids in a hashing space of size `n`.

    Each word ``w`` becomes ``hash_function(w) % (n - 1) + 1``, an integer in
    ``[1, n - 1]``; `0` is never produced. Different words may collide.

    Args:
        text: Input text (string).
        n: Dimension of the hashing space.
        hash_function: `None` (Python's `hash`: salted per process for
            strings, so ids differ between runs), `"md5"` (stable across runs),
            or any callable from string to int. Defaults to `None`.
        filters: Characters to filter out. Defaults to ``DEFAULT_FILTERS``.
        lower: Whether to lowercase the text. Defaults to `True`.
        split: Separator for word splitting. Defaults to `" "`.
        analyzer: Optional callable splitting a text into words; replaces
            `filters`/`lower`/`split` when given. Defaults to `None`.

    Returns:
        A list of integer word ids, one per word.
    """
    if hash_function is None:
        hash_function = hash
    elif hash_function == "md5":
        hash_function = _md5_int
    if analyzer is None:
        words = text_to_word_sequence(text, filters=filters, lower=lower, split=split)
    else:
        words = analyzer(text)
    return [hash_function(w) % (n - 1) + 1 for w in words]


def one_hot(
    input_text: str,
    n: int,
    filters: str = DEFAULT_FILTERS,
    lower: bool = True,
    split: str = " ",
    analyzer: Callable[[str], list[str]] | None = None,
) -> list[int]:
    """Encodes a text as a list of word ids in ``[1, n - 1]`` using Python's `hash`.

    Despite the name, this returns integer ids, not one-hot vectors: it is
    ``hashing_trick(input_text, n, hash_function=hash, ...)``. Python salts
    string hashes per process, so ids are only stable within one run (set
    ``PYTHONHASHSEED`` or use ``hashing_trick(..., hash_function="md5")``).

    Args:
        input_text: Input text (string).
        n: Size of the hashing space.
        filters: Characters to filter out. Defaults to ``DEFAULT_FILTERS``.
        lower: Whether to lowercase the text. Defaults to `True`.
        split: Separator for word splitting. Defaults to `" "`.
        analyzer: Optional callable splitting a text into words. Defaults to `None`.

    Returns:
        A list of integer word ids, one per word.
    """
    return hashing_trick(
        input_text, n, hash_function=hash, filters=filters, lower=lower, split=split,
        analyzer=analyzer,
    )


def _md5_int(word: str) -> int:
    return int(hashlib.md5(word.encode()).hexdigest(), 16)
