"""text_to_word_sequence / hashing_trick / one_hot against tf_keras outputs."""
from __future__ import annotations

from rnnkit.text import hashing_trick, one_hot, text_to_word_sequence


def test_text_to_word_sequence_matches_keras(keras_ref):
    for case in keras_ref["words"]["text_to_word_sequence"]:
        assert text_to_word_sequence(case["text"], **case["kwargs"]) == case["result"], case


def test_hashing_trick_md5_matches_keras(keras_ref):
    for case in keras_ref["words"]["hashing_trick_md5"]:
        assert hashing_trick(case["text"], case["n"], hash_function="md5") == case["result"], case


def test_one_hot_range_and_consistency():
    ids = one_hot("a b a C c", 7)
    assert all(1 <= i <= 6 for i in ids)
    assert ids[0] == ids[2] and ids[3] == ids[4]


def test_hashing_trick_custom_function_and_analyzer():
    assert hashing_trick("x,y", 5, hash_function=len, analyzer=lambda t: t.split(",")) == [2, 2]
