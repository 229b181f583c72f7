"""Tokenizer against tf_keras: vocabulary, encoding, decoding, matrices and JSON files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from rnnkit.text import Tokenizer, tokenizer_from_json

ANALYZERS = {"whitespace": str.split}
MODES = ["binary", "count", "tfidf", "freq"]
NESTED_ORDERED = ("word_counts", "word_index", "index_word")  # JSON strings whose key order is fixed
NESTED_UNORDERED = ("word_docs", "index_docs")  # Keras fills these from a set(): order varies per run


def make_tokenizer(case) -> Tokenizer:
    kwargs = dict(case["kwargs"])
    if "analyzer" in kwargs:
        kwargs["analyzer"] = ANALYZERS[kwargs["analyzer"]]
    tok = Tokenizer(**kwargs)
    tok.fit_on_texts(case["fit_texts"])
    return tok


def parsed_config(json_string: str) -> dict:
    """A tokenizer JSON with its nested JSON strings parsed (ordered ones as item lists)."""
    outer = json.loads(json_string)
    config = dict(outer["config"])
    for key in NESTED_ORDERED:
        config[key] = json.loads(config[key], object_pairs_hook=list)
    for key in NESTED_UNORDERED:
        config[key] = json.loads(config[key])
    return {"keys": list(outer), "config_keys": list(outer["config"]), "class_name": outer["class_name"],
            "config": config}


def test_fit_state_matches_keras(keras_ref):
    for case in keras_ref["tokenizer"]:
        tok = make_tokenizer(case)
        name = case["name"]
        assert [list(kv) for kv in tok.word_index.items()] == case["word_index"], name
        assert [list(kv) for kv in tok.index_word.items()] == case["index_word"], name
        assert [list(kv) for kv in tok.word_counts.items()] == case["word_counts"], name
        assert dict(tok.word_docs) == case["word_docs"], name
        assert [list(kv) for kv in sorted(tok.index_docs.items())] == case["index_docs"], name
        assert tok.document_count == case["document_count"], name


def test_encode_decode_matches_keras(keras_ref):
    for case in keras_ref["tokenizer"]:
        tok = make_tokenizer(case)
        assert tok.texts_to_sequences(case["test_texts"]) == case["sequences"], case["name"]
        assert list(tok.texts_to_sequences_generator(case["test_texts"])) == case["generator_sequences"]
        assert tok.sequences_to_texts(case["decode_inputs"]) == case["decoded"], case["name"]


@pytest.mark.parametrize("mode", MODES)
def test_texts_to_matrix_matches_keras_exactly(keras_ref, mode):
    for case in keras_ref["tokenizer"]:
        got = make_tokenizer(case).texts_to_matrix(case["test_texts"], mode=mode)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, np.array(case["matrices"][mode]).reshape(got.shape))


def test_to_json_has_keras_format(keras_ref):
    for case in keras_ref["tokenizer"]:
        if case["to_json"] is None:  # analyzer cases: Keras saves no analyzer either
            continue
        ours = make_tokenizer(case).to_json()
        assert parsed_config(ours) == parsed_config(case["to_json"]), case["name"]


def test_reads_keras_json_strings(keras_ref):
    for case in keras_ref["tokenizer"]:
        if case["to_json"] is None:
            continue
        tok = tokenizer_from_json(case["to_json"])
        assert tok.texts_to_sequences(case["test_texts"]) == case["sequences"], case["name"]
        assert tok.sequences_to_texts(case["decode_inputs"]) == case["decoded"], case["name"]
        np.testing.assert_array_equal(
            tok.texts_to_matrix(case["test_texts"], mode="tfidf"),
            np.array(case["matrices"]["tfidf"]).reshape(len(case["test_texts"]), -1),
        )


def test_reads_keras_written_tokenizer_file(keras_ref, text_fixtures):
    expected = keras_ref["keras_tokenizer_file"]
    tok = tokenizer_from_json((text_fixtures / "keras_tokenizer.json").read_text(encoding="utf-8"))
    assert tok.num_words == 8 and tok.oov_token == "<OOV>"
    assert tok.texts_to_sequences(expected["test_texts"]) == expected["sequences"]
    np.testing.assert_array_equal(tok.texts_to_matrix(expected["test_texts"], mode="count"),
                                  np.array(expected["matrix_count"]))
    # unlike a Keras-loaded tokenizer, ours can keep fitting (Keras: KeyError in word_docs)
    tok.fit_on_texts(["brand new words"])
    assert tok.word_counts["brand"] == 1 and tok.word_docs["brand"] == 1


def test_json_round_trip_is_lossless(keras_ref):
    for case in keras_ref["tokenizer"]:
        tok = make_tokenizer(case)
        again = tokenizer_from_json(tok.to_json())
        assert again.get_config() == tok.get_config(), case["name"]
        assert again.to_json() == tok.to_json()
        if "analyzer" not in case["kwargs"]:  # the analyzer itself is not saved
            assert again.texts_to_sequences(case["test_texts"]) == case["sequences"]


def test_fit_on_sequences_and_matrix_errors_match_keras(keras_ref):
    extra = keras_ref["tokenizer_extra"]
    ref = extra["fit_on_sequences"]
    tok = Tokenizer(num_words=ref["num_words"])
    tok.fit_on_sequences(ref["fit"])
    assert tok.document_count == ref["document_count"]
    assert [list(kv) for kv in sorted(tok.index_docs.items())] == ref["index_docs"]
    for mode in MODES:
        np.testing.assert_array_equal(tok.sequences_to_matrix(ref["sequences"], mode=mode),
                                      np.array(ref["matrices"][mode]))
    with pytest.raises(ValueError, match="Specify a dimension"):
        Tokenizer().sequences_to_matrix([[1]])
    with pytest.raises(ValueError, match="tfidf"):
        Tokenizer(num_words=4).sequences_to_matrix([[1]], mode="tfidf")
    with pytest.raises(ValueError, match="Unknown vectorization mode"):
        tok.sequences_to_matrix([[]], mode="bogus")  # checked up front (Keras: only for non-empty rows)


def test_fitting_twice_matches_keras(keras_ref):
    ref = keras_ref["tokenizer_extra"]["fit_twice"]
    tok = Tokenizer(oov_token="<OOV>")
    for texts in ref["fits"]:
        tok.fit_on_texts(texts)
    assert [list(kv) for kv in tok.word_index.items()] == ref["word_index"]
    assert [list(kv) for kv in tok.word_counts.items()] == ref["word_counts"]
    assert tok.document_count == ref["document_count"]
    assert tok.texts_to_sequences(["a b c d"]) == ref["sequences"]


def test_vocab_size_bounds_every_emitted_id(keras_ref):
    for case in keras_ref["tokenizer"]:
        tok = make_tokenizer(case)
        ids = [i for seq in case["sequences"] for i in seq]
        assert all(0 < i < tok.vocab_size for i in ids), case["name"]
        full = len(tok.word_index) + 1
        if case["name"] == "oov_collides_with_word":
            assert tok.vocab_size == full + 1  # Keras leaves index 1 unused here
        elif tok.num_words:
            assert tok.vocab_size == min(full, tok.num_words)
        else:
            assert tok.vocab_size == full


def test_vocab_size_simple():
    tok = Tokenizer()
    assert tok.vocab_size == 1
    tok.fit_on_texts(["a b c", "a"])
    assert tok.vocab_size == 4
    tok.num_words = 2
    assert tok.vocab_size == 2


def test_unknown_kwargs_rejected_and_nb_words_alias():
    with pytest.raises(TypeError, match="Unrecognized keyword"):
        Tokenizer(bogus=1)
    with pytest.warns(UserWarning):
        assert Tokenizer(nb_words=5).num_words == 5
