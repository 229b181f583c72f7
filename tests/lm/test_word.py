"""The word-level recipe: n-gram data, models (the moroney-sonnets preset as Keras prints it), generation."""
import re

import numpy as np
import pytest
import torch

from rnnkit.data import load_corpus
from rnnkit.layers import GRU, LSTM, Bidirectional, Dense, Dropout, Embedding, MinGRU, MinLSTM
from rnnkit.lm.word import PRESETS, WordConfig, build_word_dataset, build_word_model, encode_prime, generate_words
from rnnkit.text import Tokenizer

FIXTURE = "tests/fixtures/keras/summary_tf_keras_moroney.txt"
GRADED_FIXTURE = "tests/fixtures/keras/summary_tf_keras_moroney_graded.txt"  # make_word_preset_summaries.py
TEXT = "How are you today\nthe cat sat on the mat\nthe dog sat\nalone\n"


def test_dataset_is_the_notes_recipe():
    ds = build_word_dataset(TEXT)
    tok = ds.tokenizer
    assert ds.max_len == 6 and ds.window == 5 and ds.vocab_size == len(tok.word_index) + 1
    how = tok.texts_to_sequences(["how are you today"])[0]
    # "How are you today?" -> [0 0 0 0 how | are], [0 0 0 how are | you], [0 0 how are you | today]
    assert ds.xs[:3].tolist() == [[0, 0, 0, 0, how[0]], [0, 0, 0, how[0], how[1]], [0, 0, how[0], how[1], how[2]]]
    assert ds.labels[:3].tolist() == how[1:]
    assert len(ds.xs) == 3 + 5 + 2 and ds.labels.ndim == 1  # sparse labels, the one-word line gives none


def test_sonnets_give_the_course_numbers(data_dir):
    ds = build_word_dataset(load_corpus("sonnets"))
    assert (len(ds.xs), ds.vocab_size, ds.max_len) == (15462, 3211, 11)
    assert ds.xs.dtype == np.int32 and ds.labels.shape == (15462,)


@pytest.mark.parametrize("text, message", [
    ("", "is empty"), ("  \n\n", "is empty"), ("one\ntwo\n!!! three", "no line of two or more words"),
])
def test_unusable_corpora_are_clear_errors(text, message):
    with pytest.raises(ValueError, match=message):
        build_word_dataset(text, source="mine")


def keras_rows(text):
    """(name, output shape, params) per layer from a Keras 3 summary (names may wrap onto a second line)."""
    rows = re.findall(r"^ (\w+) \(\w+.*?(\(None[^)]*\))\s+(\d+)", text, re.M)
    return [(name, shape, int(params)) for name, shape, params in rows]


def test_moroney_preset_summary_matches_tf_keras():
    model = build_word_model(WordConfig(preset="moroney-sonnets"), vocab_size=3211, max_len=11)
    expected = keras_rows(open(FIXTURE).read())
    ours = [(l.name, str(l.output_shape).replace(" ", ""), l.count_params()) for l in model.layers]
    assert [(n, s.replace(" ", ""), p) for n, s, p in expected] == ours
    text = model.summary_text()
    assert "Total params: 6,101,671" in text and "Output Shape" in text
    assert re.search(r"^lstm_1 \(LSTM\)\s+\(None, 100\)\s+160400\s*$", text, re.M)
    assert "Total params: 6101671" in open(FIXTURE).read()
    assert model.compiled.loss.name == "sparse_categorical_crossentropy"
    assert model.layers[-2].get_config()["kernel_regularizer"] == {"class_name": "L1L2", "config": {"l1": 0.0, "l2": 0.01}}


def test_graded_preset_summary_matches_tf_keras():
    model = build_word_model(WordConfig(preset="moroney-sonnets-graded"), vocab_size=3211, max_len=11)
    fixture = open(GRADED_FIXTURE).read()
    ours = [(l.name, str(l.output_shape).replace(" ", ""), l.count_params()) for l in model.layers]
    assert [(n, s.replace(" ", ""), p) for n, s, p in keras_rows(fixture)] == ours
    assert [type(l) for l in model.layers] == [Embedding, Bidirectional, Dense]
    assert isinstance(model.layers[1].forward_layer, LSTM) and not model.layers[1].forward_layer.return_sequences
    assert "Total params: 1588811 " in fixture and "Total params: 1,588,811" in model.summary_text()
    optimizer = model.compiled.optimizer.get_config()  # Keras's Adam defaults
    assert (optimizer["learning_rate"], optimizer["beta_1"], optimizer["beta_2"], optimizer["epsilon"]) == (
        0.001, 0.9, 0.999, 1e-7)
    assert model.compiled.loss.name == "sparse_categorical_crossentropy"


def test_presets_bring_their_courses_epochs():
    assert list(PRESETS) == ["moroney-sonnets", "moroney-sonnets-graded"]
    assert WordConfig(preset="moroney-sonnets-graded").resolved_epochs() == 50
    assert WordConfig(preset="moroney-sonnets").resolved_epochs() == 100
    assert WordConfig().resolved_epochs() == 10
    assert WordConfig(preset="moroney-sonnets-graded", epochs=3).resolved_epochs() == 3
    assert WordConfig(preset="moroney-sonnets-graded").batch_size == 32


def test_custom_architecture():
    cfg = WordConfig(cell="gru", bidirectional=True, embedding=8, hidden=6, layers=2, dropout=0.1)
    model = build_word_model(cfg, vocab_size=30, max_len=5)
    kinds = [type(l) for l in model.layers]
    assert kinds == [Embedding, Bidirectional, Dropout, Bidirectional, Dropout, Dense]
    assert isinstance(model.layers[1].forward_layer, GRU) and model.layers[1].output_shape == (None, 4, 12)
    assert model.layers[3].output_shape == (None, 12) and model.output_shape == (None, 30)


@pytest.mark.parametrize("cell, layer_cls", [("mingru", MinGRU), ("minlstm", MinLSTM)])
def test_parallel_scan_cells_stack_bidirectionally(cell, layer_cls):
    cfg = WordConfig(cell=cell, bidirectional=True, embedding=8, hidden=6, layers=2)
    model = build_word_model(cfg, vocab_size=30, max_len=5)
    assert [type(l) for l in model.layers] == [Embedding, Bidirectional, Bidirectional, Dense]
    first, second = model.layers[1], model.layers[2]
    assert isinstance(first.forward_layer, layer_cls) and first.forward_layer.return_sequences
    assert first.output_shape == (None, 4, 12) and second.output_shape == (None, 12)
    blocks = {"mingru": 2, "minlstm": 3}[cell]  # input-only gates: no recurrent weights
    assert first.count_params() == 2 * blocks * 6 * (8 + 1)
    probs = model.predict(np.random.randint(1, 30, (3, 4)))
    assert probs.shape == (3, 30) and np.allclose(probs.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("options, message", [
    ({"preset": "moroney-sonnets", "hidden": 64}, "fixes the architecture"),
    ({"preset": "nope"}, "unknown preset"), ({"cell": "lstmx"}, "expected one of lstm, gru, rnn, mingru, minlstm"),
    ({"preset": "moroney-sonnets-graded", "cell": "mingru"}, "fixes the architecture"), ({"epochs": 0}, "epochs"),
    ({"dropout": 1.0}, "dropout"), ({"layers": 0}, "layers"), ({"max_len": 1}, "max_len"),
    ({"validation_split": 1.5}, "validation_split"), ({"learning_rate": 0}, "learning_rate"),
])
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(ValueError, match=message) as err:
        WordConfig(**options).validate()
    assert "\n" not in str(err.value)


@pytest.fixture
def tiny():
    ds = build_word_dataset(TEXT)
    model = build_word_model(WordConfig(embedding=8, hidden=8), ds.vocab_size, ds.max_len)
    return model, ds.tokenizer


def test_same_seed_same_text_and_greedy_at_temperature_zero(tiny):
    model, tok = tiny
    one = generate_words(model, tok, "the cat", words=12, temperature=1.0, seed=3)
    assert one == generate_words(model, tok, "the cat", words=12, temperature=1.0, seed=3)
    assert one.words != generate_words(model, tok, "the cat", words=12, temperature=1.0, seed=4).words
    assert one.text == "the cat " + " ".join(one.words) and len(one.words) == 12 and one.seed == 3
    greedy = [generate_words(model, tok, "the cat", words=6, temperature=0, seed=s).words for s in (1, 2)]
    assert greedy[0] == greedy[1] == generate_words(model, tok, "the cat", words=6, top_k=1, seed=9).words
    assert generate_words(model, tok, "the cat", words=3).seed is not None  # a fresh seed is reported


def test_long_prime_uses_its_last_window(tiny):
    model, tok = tiny
    long_prime = "how are you today the cat sat on the mat the dog"
    full = generate_words(model, tok, long_prime, words=8, seed=1)
    tail = generate_words(model, tok, "sat on the mat the dog", words=8, seed=1)  # last 5 words = the window
    assert full.words == tail.words
    ids, _ = encode_prime(tok, long_prime, 5)
    assert ids.tolist() == tok.texts_to_sequences(["on the mat the dog"])[0]


def test_unknown_prime_words_dropped_or_oov(tiny):
    model, tok = tiny
    gen = generate_words(model, tok, "Zebra the cat quokka", words=4, seed=0)
    assert gen.unknown_words == ["zebra", "quokka"]
    assert gen.words == generate_words(model, tok, "the cat", words=4, seed=0).words
    oov_tok = Tokenizer(oov_token="<OOV>")
    oov_tok.fit_on_texts(TEXT.lower().split("\n"))
    ids, unknown = encode_prime(oov_tok, "zebra the cat", 5)
    assert ids.tolist() == [0, 0, 1, oov_tok.word_index["the"], oov_tok.word_index["cat"]] and unknown == ["zebra"]
    torch.manual_seed(0)
    oov_model = build_word_model(WordConfig(embedding=8, hidden=8), oov_tok.vocab_size, 6)
    with torch.no_grad():  # make the OOV id by far the likeliest: it must still never be written
        oov_model.layers[-1].bias[1] = 50.0
    words = generate_words(oov_model, oov_tok, "zebra the", words=20, temperature=0).words
    assert "<OOV>" not in words and len(words) == 20


def test_beam_search_generation(tiny):
    model, tok = tiny
    beam = generate_words(model, tok, "the dog", words=5, beam_width=4)
    assert beam == generate_words(model, tok, "the dog", words=5, beam_width=4)
    assert len(beam.words) == 5 and beam.log_prob < 0 and beam.seed is None
    with pytest.raises(ValueError, match="beam search"):
        generate_words(model, tok, "the dog", words=5, beam_width=4, top_p=0.9)
    with pytest.raises(ValueError, match="words must be"):
        generate_words(model, tok, "the dog", words=-1)
