"""Word/character tokenizer compatible with ``keras.preprocessing.text.Tokenizer``.

Same arguments, same indices, same matrices and the same JSON format as the
Keras 2 (``tf_keras``) class, so a tokenizer saved by one loads in the other.
"""
from __future__ import annotations

import collections
import json
import warnings
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from .words import DEFAULT_FILTERS, text_to_word_sequence

__all__ = ["Tokenizer", "tokenizer_from_json"]

_MATRIX_MODES = ("binary", "count", "tfidf", "freq")


class Tokenizer:
    """Text tokenization utility: maps words (or characters) to integer indices.

    Fitting counts every token; indices are then given by decreasing count
    (ties keep first-seen order), starting at 1. Index `0` is reserved for
    padding and never assigned. If `oov_token` is set it gets index 1 and
    replaces unknown words when encoding.

    Args:
        num_words: Maximum number of words to keep when *encoding*: only
            indices ``< num_words`` (the ``num_words - 1`` most frequent words)
            are emitted. `word_index` always holds the full vocabulary.
            Defaults to `None` (keep all).
        filters: Characters removed from texts. Defaults to ``DEFAULT_FILTERS``
            (punctuation except ``'``, tab and newline).
        lower: Whether to lowercase texts. Defaults to `True`.
        split: Separator for word splitting. Defaults to `" "`.
        char_level: If `True`, every character is a token. Defaults to `False`.
        oov_token: Token given index 1 and used for out-of-vocabulary words in
            `texts_to_sequences`. Defaults to `None` (unknown words are dropped).
        analyzer: Callable splitting a text into tokens; replaces
            `filters`/`lower`/`split`. Not saved by `to_json`. Defaults to `None`.

    Attributes:
        word_counts: `OrderedDict` token -> count, in first-seen order.
        word_docs: dict token -> number of documents containing it.
        index_docs: dict index -> number of documents containing it.
        word_index: dict token -> index (1-based, most frequent first).
        index_word: dict index -> token.
        document_count: number of documents (texts or sequences) fitted.
    """

    def __init__(
        self,
        num_words: int | None = None,
        filters: str = DEFAULT_FILTERS,
        lower: bool = True,
        split: str = " ",
        char_level: bool = False,
        oov_token: str | None = None,
        analyzer: Callable[[str], list[str]] | None = None,
        **kwargs,
    ):
        if "nb_words" in kwargs:
            warnings.warn("The `nb_words` argument in `Tokenizer` has been renamed `num_words`.")
            num_words = kwargs.pop("nb_words")
        document_count = kwargs.pop("document_count", 0)
        if kwargs:
            raise TypeError("Unrecognized keyword arguments: " + str(kwargs))
        self.word_counts: collections.OrderedDict[str, int] = collections.OrderedDict()
        self.word_docs: collections.defaultdict[str, int] = collections.defaultdict(int)
        self.filters = filters
        self.split = split
        self.lower = lower
        self.num_words = num_words
        self.document_count = document_count
        self.char_level = char_level
        self.oov_token = oov_token
        self.index_docs: collections.defaultdict[int, int] = collections.defaultdict(int)
        self.word_index: dict[str, int] = {}
        self.index_word: dict[int, str] = {}
        self.analyzer = analyzer

    @property
    def vocab_size(self) -> int:
        """Number of distinct ids `texts_to_sequences` can emit, padding 0 included.

        This is the `input_dim` of an embedding and the number of classes of a
        next-word softmax: ``len(word_index) + 1``, capped at `num_words` when
        that is set. (Precisely, ``max(word_index.values()) + 1``: the two differ
        only when `oov_token` also occurs as a word in the fitted texts, where
        Keras leaves index 1 unused.)
        """
        size = max(self.word_index.values(), default=0) + 1
        return min(size, self.num_words) if self.num_words else size

    def _tokens(self, text) -> Sequence[str]:
        """The tokens of one text (a string, or a list of tokens), as Keras splits it."""
        if self.char_level or isinstance(text, list):
            if self.lower:
                text = [t.lower() for t in text] if isinstance(text, list) else text.lower()
            return text
        if self.analyzer is None:
            return text_to_word_sequence(
                text, filters=self.filters, lower=self.lower, split=self.split
            )
        return self.analyzer(text)

    def fit_on_texts(self, texts: Iterable) -> None:
        """Updates the vocabulary from texts.

        Args:
            texts: Iterable (list or generator) of strings, or of lists of
                tokens (each list item is then one token).
        """
        for text in texts:
            self.document_count += 1
            seq = self._tokens(text)
            for w in seq:
                self.word_counts[w] = self.word_counts.get(w, 0) + 1
            # dict.fromkeys: Keras iterates set(seq), whose order varies per process.
            for w in dict.fromkeys(seq):
                self.word_docs[w] += 1

        wcounts = sorted(self.word_counts.items(), key=lambda wc: wc[1], reverse=True)
        sorted_voc = [] if self.oov_token is None else [self.oov_token]
        sorted_voc.extend(w for w, _ in wcounts)
        # A word equal to oov_token appears twice; dict() keeps its later index, as Keras.
        self.word_index = dict(zip(sorted_voc, range(1, len(sorted_voc) + 1)))
        self.index_word = {i: w for w, i in self.word_index.items()}
        for w, c in list(self.word_docs.items()):
            self.index_docs[self.word_index[w]] = c

    def fit_on_sequences(self, sequences: Sequence[Sequence[int]]) -> None:
        """Updates document counts from already-encoded sequences.

        Needed before `sequences_to_matrix(mode="tfidf")` if `fit_on_texts`
        was never called.

        Args:
            sequences: List of sequences of integer word indices.
        """
        self.document_count += len(sequences)
        for seq in sequences:
            for i in set(seq):
                self.index_docs[i] += 1

    def texts_to_sequences(self, texts: Iterable) -> list[list[int]]:
        """Encodes each text as a list of word indices.

        Words with index ``>= num_words`` and unknown words become the
        `oov_token` index if there is one, and are dropped otherwise.

        Args:
            texts: Iterable of strings (or of lists of tokens).

        Returns:
            A list with one list of ints per text.
        """
        return list(self.texts_to_sequences_generator(texts))

    def texts_to_sequences_generator(self, texts: Iterable) -> Iterator[list[int]]:
        """Like `texts_to_sequences`, yielding one encoded text at a time."""
        num_words = self.num_words
        oov_index = self.word_index.get(self.oov_token)
        for text in texts:
            vect = []
            for w in self._tokens(text):
                i = self.word_index.get(w)
                if i is None:
                    if self.oov_token is not None:
                        vect.append(oov_index)
                elif num_words and i >= num_words:
                    if oov_index is not None:
                        vect.append(oov_index)
                else:
                    vect.append(i)
            yield vect

    def sequences_to_texts(self, sequences: Iterable[Sequence[int]]) -> list[str]:
        """Decodes each sequence of indices into a space-joined string.

        Indices ``>= num_words`` and unknown indices become the `oov_token` if
        there is one, and are dropped otherwise.

        Args:
            sequences: Iterable of sequences of ints.

        Returns:
            A list with one string per sequence.
        """
        return list(self.sequences_to_texts_generator(sequences))

    def sequences_to_texts_generator(self, sequences: Iterable[Sequence[int]]) -> Iterator[str]:
        """Like `sequences_to_texts`, yielding one string at a time."""
        num_words = self.num_words
        oov_index = self.word_index.get(self.oov_token)
        for seq in sequences:
            vect = []
            for num in seq:
                word = self.index_word.get(num)
                if word is None:
                    if self.oov_token is not None:
                        vect.append(self.index_word[oov_index])
                elif num_words and num >= num_words:
                    if oov_index is not None:
                        vect.append(self.index_word[oov_index])
                else:
                    vect.append(word)
            yield " ".join(vect)

    def texts_to_matrix(self, texts: Iterable, mode: str = "binary") -> np.ndarray:
        """Encodes texts as a float64 matrix of shape `(len(texts), vocab)`.

        Equivalent to ``sequences_to_matrix(texts_to_sequences(texts), mode)``.
        """
        return self.sequences_to_matrix(self.texts_to_sequences(texts), mode=mode)

    def sequences_to_matrix(self, sequences: Sequence[Sequence[int]], mode: str = "binary") -> np.ndarray:
        """Encodes sequences as a bag-of-words float64 matrix.

        The matrix has shape `(len(sequences), num_words)`, or
        `(len(sequences), len(word_index) + 1)` when `num_words` is not set;
        indices outside it are ignored. Entry ``[i, j]`` for a word `j` occurring
        `c` times in sequence `i` is: `1` (`"binary"`), `c` (`"count"`),
        ``c / len(sequence)`` (`"freq"`), or
        ``(1 + log c) * log(1 + document_count / (1 + index_docs[j]))`` (`"tfidf"`).

        Args:
            sequences: List of sequences of ints.
            mode: One of `"binary"`, `"count"`, `"tfidf"`, `"freq"`.
                Defaults to `"binary"`.

        Returns:
            A float64 NumPy array.

        Raises:
            ValueError: unknown `mode` (checked up front; Keras only notices
                it at the first non-empty sequence), no `num_words` and an
                unfitted tokenizer, or `"tfidf"` with no fitted documents.
        """
        if mode not in _MATRIX_MODES:
            raise ValueError("Unknown vectorization mode:", mode)
        if self.num_words:
            num_words = self.num_words
        elif self.word_index:
            num_words = len(self.word_index) + 1
        else:
            raise ValueError(
                "Specify a dimension (`num_words` argument), or fit on some text data first."
            )
        if mode == "tfidf" and not self.document_count:
            raise ValueError("Fit the Tokenizer on some data before using tfidf mode.")

        x = np.zeros((len(sequences), num_words))
        for i, seq in enumerate(sequences):
            if not seq:
                continue
            counts = collections.Counter(j for j in seq if j < num_words)
            for j, c in counts.items():
                if mode == "count":
                    x[i][j] = c
                elif mode == "freq":
                    x[i][j] = c / len(seq)
                elif mode == "binary":
                    x[i][j] = 1
                else:  # tfidf, weighting scheme 2 of https://en.wikipedia.org/wiki/Tf%E2%80%93idf
                    tf = 1 + np.log(c)
                    idf = np.log(1 + self.document_count / (1 + self.index_docs.get(j, 0)))
                    x[i][j] = tf * idf
        return x

    def get_config(self) -> dict:
        """The configuration as a dict; the count dicts are JSON strings, as in Keras."""
        return {
            "num_words": self.num_words,
            "filters": self.filters,
            "lower": self.lower,
            "split": self.split,
            "char_level": self.char_level,
            "oov_token": self.oov_token,
            "document_count": self.document_count,
            "word_counts": json.dumps(self.word_counts),
            "word_docs": json.dumps(self.word_docs),
            "index_docs": json.dumps(self.index_docs),
            "index_word": json.dumps(self.index_word),
            "word_index": json.dumps(self.word_index),
        }

    def to_json(self, **kwargs) -> str:
        """Serializes the tokenizer to a JSON string in Keras's format.

        The string is ``{"class_name": "Tokenizer", "config": get_config()}``;
        load it with `tokenizer_from_json` here or in Keras. `analyzer` is not
        saved.

        Args:
            **kwargs: Passed on to `json.dumps`.
        """
        return json.dumps({"class_name": type(self).__name__, "config": self.get_config()}, **kwargs)


def tokenizer_from_json(json_string: str) -> Tokenizer:
    """Rebuilds a `Tokenizer` from `Tokenizer.to_json()` output (ours or Keras's).

    Unlike Keras, the loaded count dicts keep their types (`word_counts` an
    `OrderedDict`, `word_docs`/`index_docs` defaulting to 0), so the loaded
    tokenizer can be fitted further.

    Args:
        json_string: JSON string of a tokenizer configuration.

    Returns:
        A `Tokenizer`.
    """
    config = dict(json.loads(json_string).get("config"))
    word_counts = json.loads(config.pop("word_counts"))
    word_docs = json.loads(config.pop("word_docs"))
    index_docs = json.loads(config.pop("index_docs"))
    index_word = json.loads(config.pop("index_word"))
    word_index = json.loads(config.pop("word_index"))

    tokenizer = Tokenizer(**config)
    tokenizer.word_counts = collections.OrderedDict(word_counts)
    tokenizer.word_docs = collections.defaultdict(int, word_docs)
    tokenizer.index_docs = collections.defaultdict(int, {int(k): v for k, v in index_docs.items()})
    tokenizer.word_index = word_index
    tokenizer.index_word = {int(k): v for k, v in index_word.items()}
    return tokenizer
