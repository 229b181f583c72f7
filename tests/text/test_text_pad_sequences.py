"""pad_sequences: every tf_keras reference case, plus property tests against a simple reference."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.text import pad_sequences


def call_kwargs(kwargs: dict) -> dict:
    """Fixture kwargs -> call kwargs: dtype "py:object" stands for the Python type `object`."""
    return {k: object if v == "py:object" else v for k, v in kwargs.items()}


def _bad_side(kwargs: dict) -> bool:
    return kwargs.get("padding", "pre") not in ("pre", "post") or kwargs.get("truncating", "pre") not in (
        "pre", "post")


def test_matches_every_keras_case(keras_ref):
    for case in keras_ref["pad_sequences"]:
        seqs = np.array(case["sequences"]) if case["as_array"] else case["sequences"]
        kwargs = call_kwargs(case["kwargs"])
        expected = case["result"]
        label = (case["input"], case["kwargs"])
        if _bad_side(kwargs) and "error" not in expected:
            # Keras only checks padding/truncating when some sequence is non-empty; we always do
            with pytest.raises(ValueError, match="not understood"):
                pad_sequences(seqs, **kwargs)
            continue
        if "error" in expected:
            with pytest.raises(ValueError if expected["error"] == "ValueError" else Exception) as info:
                pad_sequences(seqs, **kwargs)
            assert type(info.value).__name__ == expected["error"], label
            continue
        out = pad_sequences(seqs, **kwargs)
        assert out.dtype.str == expected["dtype"], label
        assert list(out.shape) == expected["shape"], label
        want = np.array(expected["values"], dtype=out.dtype).reshape(out.shape)
        assert np.array_equal(out, want), label


def test_keras_docstring_examples():
    seqs = [[1], [2, 3], [4, 5, 6]]
    np.testing.assert_array_equal(pad_sequences(seqs), [[0, 0, 1], [0, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(seqs, value=-1), [[-1, -1, 1], [-1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(seqs, padding="post"), [[1, 0, 0], [2, 3, 0], [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(seqs, maxlen=2), [[0, 1], [2, 3], [5, 6]])


def test_argument_errors():
    with pytest.raises(ValueError, match="must be iterable"):
        pad_sequences(x for x in [[1]])
    with pytest.raises(ValueError, match="non-iterable"):
        pad_sequences([[1], 2])
    with pytest.raises(ValueError, match="empty list"):
        pad_sequences([])
    assert pad_sequences([], maxlen=3).shape == (0, 3)
    # validated even when no sequence needs padding (Keras would silently accept these)
    with pytest.raises(ValueError, match='Padding type "middle"'):
        pad_sequences([[]], padding="middle")
    with pytest.raises(ValueError, match='Truncating type "x"'):
        pad_sequences([[]], truncating="x")


def reference_pad(seqs, maxlen, padding, truncating, value):
    """Obviously-correct padding, one row at a time."""
    width = maxlen if maxlen is not None else max(len(s) for s in seqs)
    rows = []
    for s in seqs:
        kept = list(s)
        if len(kept) > width:
            kept = kept[len(kept) - width:] if truncating == "pre" else kept[:width]
        fill = [value] * (width - len(kept))
        rows.append(fill + kept if padding == "pre" else kept + fill)
    return np.array(rows, dtype="int32").reshape(len(seqs), width)


sequences_st = st.lists(st.lists(st.integers(-1000, 1000), max_size=12), min_size=1, max_size=12)
side_st = st.sampled_from(["pre", "post"])


@settings(max_examples=100, deadline=None)
@given(sequences_st, st.one_of(st.none(), st.integers(1, 15)), side_st, side_st, st.integers(-5, 5))
def test_agrees_with_reference(seqs, maxlen, padding, truncating, value):
    out = pad_sequences(seqs, maxlen=maxlen, padding=padding, truncating=truncating, value=value)
    width = maxlen if maxlen is not None else max(map(len, seqs))
    assert out.shape == (len(seqs), width) and out.dtype == np.int32
    np.testing.assert_array_equal(out, reference_pad(seqs, maxlen, padding, truncating, value))


@settings(max_examples=100, deadline=None)
@given(sequences_st, st.integers(1, 15), side_st, side_st)
def test_content_is_preserved(seqs, maxlen, padding, truncating):
    out = pad_sequences(seqs, maxlen=maxlen, padding=padding, truncating=truncating, value=-9999)
    for row, s in zip(out, seqs):
        n = min(len(s), maxlen)
        kept = row[maxlen - n:] if padding == "pre" else row[:n]
        pad = row[: maxlen - n] if padding == "pre" else row[n:]
        expected = s[len(s) - n:] if truncating == "pre" else s[:n]
        assert kept.tolist() == expected
        assert (pad == -9999).all()


@settings(max_examples=100, deadline=None)
@given(sequences_st, side_st, side_st)
def test_truncating_irrelevant_when_everything_fits(seqs, padding, truncating):
    longest = max(map(len, seqs))
    a = pad_sequences(seqs, maxlen=longest + 2, padding=padding, truncating=truncating)
    b = pad_sequences(seqs, maxlen=longest + 2, padding=padding, truncating="pre")
    np.testing.assert_array_equal(a, b)
    assert pad_sequences(seqs).shape[1] == longest


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.integers(0, 9), min_size=3, max_size=3), min_size=1, max_size=6),
       st.integers(1, 5), side_st, side_st)
def test_numpy_input_same_as_lists(seqs, maxlen, padding, truncating):
    kwargs = dict(maxlen=maxlen, padding=padding, truncating=truncating)
    np.testing.assert_array_equal(pad_sequences(np.array(seqs), **kwargs), pad_sequences(seqs, **kwargs))
