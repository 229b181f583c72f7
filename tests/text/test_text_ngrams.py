"""N-gram recipe (ngram_sequences + split_xy), its array-building twin, and the sonnets facts."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.data import load_corpus
from rnnkit.text import (
    Tokenizer,
    flatten_sequences,
    ngram_arrays,
    ngram_sequences,
    ngram_training_set,
    pad_sequences,
    split_xy,
)


def recipe(sequences, max_len=None, min_len=2):
    """The list-based course recipe: n-gram prefixes, pre-padded, split into inputs and labels."""
    padded = pad_sequences(ngram_sequences(sequences, min_len=min_len), maxlen=max_len, padding="pre")
    return split_xy(padded)


def test_how_are_you_today():
    assert ngram_sequences([[7, 3, 4, 9]]) == [[7, 3], [7, 3, 4], [7, 3, 4, 9]]
    xs, labels = split_xy(pad_sequences(ngram_sequences([[7, 3, 4, 9]]), maxlen=5))
    np.testing.assert_array_equal(xs, [[0, 0, 0, 7], [0, 0, 7, 3], [0, 7, 3, 4]])
    np.testing.assert_array_equal(labels, [3, 4, 9])
    xs2, labels2 = ngram_arrays(*flatten_sequences([[7, 3, 4, 9]]), max_len=5)
    np.testing.assert_array_equal(xs2, xs)
    np.testing.assert_array_equal(labels2, labels)


def test_ngram_sequences_min_len_and_short_lines():
    assert ngram_sequences([[1, 2, 3], [4], []], min_len=1) == [[1], [1, 2], [1, 2, 3], [4]]
    assert ngram_sequences([[1, 2, 3]], min_len=3) == [[1, 2, 3]]
    assert ngram_sequences([[5], []]) == []
    with pytest.raises(ValueError, match="min_len"):
        ngram_sequences([[1]], min_len=0)


def test_split_xy_rejects_bad_shapes():
    with pytest.raises(ValueError):
        split_xy(np.zeros((3,)))
    with pytest.raises(ValueError):
        split_xy(np.zeros((3, 1)))


def test_flatten_sequences_layout():
    tokens, offsets = flatten_sequences(iter([[1, 2], [], [3]]))
    assert tokens.dtype == np.int32 and tokens.tolist() == [1, 2, 3]
    assert offsets.dtype == np.int64 and offsets.tolist() == [0, 2, 2, 3]


def test_ngram_arrays_window_cap_gives_sliding_windows():
    xs, labels = ngram_arrays(*flatten_sequences([[1, 2, 3, 4, 5, 6]]), max_len=3)
    np.testing.assert_array_equal(xs, [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]])
    np.testing.assert_array_equal(labels, [2, 3, 4, 5, 6])


def test_ngram_arrays_errors_and_empty():
    tokens, offsets = flatten_sequences([[1], []])
    with pytest.raises(ValueError, match="no line"):
        ngram_arrays(tokens, offsets)
    xs, labels = ngram_arrays(tokens, offsets, max_len=4)
    assert xs.shape == (0, 3) and labels.shape == (0,)
    with pytest.raises(ValueError, match="max_len"):
        ngram_arrays(tokens, offsets, max_len=1)
    with pytest.raises(ValueError, match="offsets"):
        ngram_arrays(tokens, [0, 5])


lines_st = st.lists(st.lists(st.integers(1, 60), max_size=9), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(lines_st, st.one_of(st.none(), st.integers(2, 7)), st.integers(1, 3))
def test_ngram_arrays_equal_the_recipe(lines, max_len, min_len):
    if max_len is None and max(map(len, lines)) < max(2, min_len):
        return  # no inferable width of 2 or more: both the recipe and ngram_arrays refuse
    want_xs, want_labels = recipe(lines, max_len=max_len, min_len=min_len)
    xs, labels = ngram_arrays(*flatten_sequences(lines), max_len=max_len, min_len=min_len)
    assert xs.dtype == np.int32 and labels.dtype == np.int32
    np.testing.assert_array_equal(xs, want_xs)
    np.testing.assert_array_equal(labels, want_labels)


def test_small_chunks_give_the_same_arrays(monkeypatch):
    import rnnkit.text.streaming as module

    lines = [list(range(1, n + 1)) for n in (5, 0, 9, 1, 3, 12)]
    want = ngram_arrays(*flatten_sequences(lines), max_len=6)
    monkeypatch.setattr(module, "_CHUNK_ELEMENTS", 7)
    got = ngram_arrays(*flatten_sequences(lines), max_len=6)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def _sha256_int32(array) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype="<i4").tobytes()).hexdigest()


def test_sonnets_match_keras_course_numbers(keras_ref, data_dir):
    facts = keras_ref["sonnets"]
    assert facts is not None, "fixtures were generated without the sonnets corpus"
    corpus = load_corpus("sonnets").lower().split("\n")
    tok = Tokenizer()
    tok.fit_on_texts(corpus)
    # the course numbers, as SOURCES.md and the notebook give them
    assert (len(corpus), tok.vocab_size) == (facts["num_lines"], facts["total_words"]) == (2159, 3211)
    first = tok.texts_to_sequences([corpus[0]])[0]
    assert first == facts["first_line_sequence"] == [34, 417, 877, 166, 213, 517]
    digest = hashlib.sha256(json.dumps(list(tok.word_index.items())).encode()).hexdigest()
    assert digest == facts["word_index_items_sha256"]

    sequences = tok.texts_to_sequences(corpus)
    ngrams = ngram_sequences(sequences)
    assert len(ngrams) == facts["num_ngrams"] == 15462
    assert max(map(len, ngrams)) == facts["max_sequence_len"] == 11
    assert ngrams[:5] == facts["first_ngrams"]
    for xs, labels in (recipe(sequences), ngram_training_set(tok, corpus)):
        assert list(xs.shape) == facts["xs_shape"] == [15462, 10]
        assert _sha256_int32(xs) == facts["xs_int32_sha256"]
        assert _sha256_int32(labels) == facts["labels_int32_sha256"]


def test_wikitext2_valid_streams_into_arrays(data_dir):
    if not (data_dir / "wikitext-2" / "valid.txt").is_file():
        pytest.skip("wikitext-2/valid.txt is not in RNNKIT_DATA_DIR")
    lines = load_corpus("wikitext-2", split="valid").split("\n")
    tok = Tokenizer()
    tok.fit_on_texts(lines)
    xs, labels = ngram_training_set(tok, lines, max_len=21)
    lengths = [len(s) for s in tok.texts_to_sequences_generator(lines)]
    assert xs.shape == (sum(max(0, n - 1) for n in lengths), 20)
    assert labels.min() >= 1 and labels.max() < tok.vocab_size
    # spot check: row k of a long line is the 20 tokens before its label
    tokens, offsets = flatten_sequences(tok.texts_to_sequences_generator(lines))
    line = int(np.argmax(np.diff(offsets)))
    start = int(offsets[line])
    row = sum(max(0, n - 1) for n in lengths[:line]) + 30
    np.testing.assert_array_equal(xs[row], tokens[start + 11 : start + 31])
    assert labels[row] == tokens[start + 31]
