"""Sequential: shape inference, naming, summary tables (checked against the seed notes'
real tf.keras output), masks flowing through the stack, errors."""
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.layers import (
    LSTM, Bidirectional, Conv1D, Dense, Embedding, Flatten, GlobalAveragePooling1D, Input, MaxPooling1D, RepeatVector,
)

NOTES = Path(__file__).resolve().parents[2] / "shared" / "seed" / "rnn-notes.txt"


def seed_model_1():
    return rnnkit.Sequential([
        Embedding(120, 42, input_shape=(33,)),
        Bidirectional(LSTM(56, return_sequences=True)),
        Bidirectional(LSTM(12)),
        Dense(8),
    ])


def seed_model_2():
    return rnnkit.Sequential([
        Embedding(120, 42, input_shape=(33,)),
        Conv1D(56, 5, activation="relu"),
        MaxPooling1D(pool_size=4),
        Bidirectional(LSTM(12)),
        Dense(8),
    ])


def summary_lines(model):
    lines = []
    model.summary(print_fn=lines.append)
    return lines


def notes_tables():
    """The two summary tables as printed in the notes (which omit the '=' rules)."""
    if not NOTES.exists():
        pytest.skip(f"seed notes not found at {NOTES}")
    text = NOTES.read_text()
    return [block.strip("\n").splitlines() for block in re.findall(r"(Model: \"sequential.*?)\n\n", text, re.S)]


def test_seed_summaries_match_the_notes_exactly():
    tables = notes_tables()
    assert len(tables) == 2
    for model, expected in zip([seed_model_1(), seed_model_2()], tables):
        ours = [line for line in summary_lines(model) if not set(line) == {"="}]
        # The notes dropped a '_' rule after the header row; compare everything else line by line.
        assert [l.rstrip() for l in ours if l.strip("_")] == [l.rstrip() for l in expected if l.strip("_")]
        # trailing spaces: rows are padded to the full 65 columns as Keras pads them
        assert all(len(l) == 65 for l in ours[1:-4])


def test_summary_layout_rules():
    lines = summary_lines(seed_model_1())
    assert lines[0] == 'Model: "sequential"'
    assert lines[1] == "_" * 65 and lines[3] == "=" * 65
    assert lines[2] == "Layer (type)                 Output Shape              Param #   "
    assert lines[4] == "embedding (Embedding)        (None, 33, 42)            5040      "
    assert lines[6] == "bidirectional (Bidirectional (None, 33, 112)           44352     "
    assert lines[11] == "=" * 65
    assert lines[12:] == ["Total params: 61,592", "Trainable params: 61,592", "Non-trainable params: 0", "_" * 65]


def test_summary_options_and_frozen_layers():
    model = seed_model_2()
    model.layers[0].trainable = False
    lines = summary_lines(model)
    assert "Trainable params: 18,640" in lines and "Non-trainable params: 5,040" in lines
    wide = []
    model.summary(line_length=80, positions=[0.4, 0.7, 1.0], print_fn=wide.append)
    assert wide[1] == "_" * 80 and wide[2].index("Output Shape") == 32


def test_names_count_per_process_as_keras():
    m1, m2 = seed_model_1(), seed_model_2()
    assert m1.name == "sequential" and m2.name == "sequential_1"
    assert [l.name for l in m2.layers] == ["embedding_1", "conv1d", "max_pooling1d", "bidirectional_2", "dense_1"]
    assert m2.get_layer("conv1d") is m2.layers[1] and m2.get_layer(index=-1).name == "dense_1"
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        m2.get_layer("nope")


def test_count_params_and_shape_inference():
    m = seed_model_1()
    assert m.count_params() == 61592 and m.output_shape == (None, 8)
    assert seed_model_2().count_params() == 23680
    assert [l.output_shape for l in m.layers] == [(None, 33, 42), (None, 33, 112), (None, 24), (None, 8)]


def test_deferred_build_from_first_batch_and_input_layer():
    m = rnnkit.Sequential([Embedding(50, 8), LSTM(4), Dense(2)])
    assert not m.built
    with pytest.raises(ValueError, match="has not yet been built"):
        m.summary()
    out = m(np.random.randint(0, 50, (3, 7)))
    assert out.shape == (3, 2) and m.built and m.count_params() == 50 * 8 + 4 * 4 * (8 + 4 + 1) + 10
    m2 = rnnkit.Sequential([Input((6,)), Dense(8), RepeatVector(4), LSTM(3)])
    assert m2.output_shape == (None, 3)
    m3 = rnnkit.Sequential()
    m3.add(Dense(4, input_shape=(3,)))
    m3.add(Dense(2))
    assert m3.output_shape == (None, 2) and m3.count_params() == 16 + 10


def test_mask_flows_from_embedding_through_the_stack():
    model = rnnkit.Sequential([
        Embedding(20, 4, mask_zero=True, input_shape=(6,)),
        Bidirectional(LSTM(3, return_sequences=True)),
        GlobalAveragePooling1D(),
        Dense(2),
    ])
    ids = np.array([[0, 0, 5, 6, 7, 8]])
    padded_more = np.array([[0, 0, 0, 0, 5, 6, 7, 8]])
    unpadded = np.array([[5, 6, 7, 8]])
    a, b, c = (model.predict(v) for v in (ids, padded_more, unpadded))
    np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, c, rtol=1e-5, atol=1e-6)


def test_multi_output_layer_is_refused_in_sequential():
    with pytest.raises(ValueError, match="exactly one output"):
        rnnkit.Sequential([LSTM(3, return_state=True, input_shape=(4, 2)), Dense(1)])


def test_shape_mismatch_between_model_and_data_is_clear():
    m = rnnkit.Sequential([Dense(4, input_shape=(3,)), Dense(1)])
    with pytest.raises(ValueError, match=r"layer 'dense' \(Dense\) expected input shape \(None, 3\), got \(2, 5\)"):
        m(np.zeros((2, 5), "float32"))


def test_layer_built_elsewhere_must_fit_the_stack():
    # Inside a model layers run without per-call checks, so a shared layer is checked as the stack is built.
    shared = Dense(2)
    shared(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match=r"layer 'dense\w*' \(Dense\) expected input shape \(None, 3\), got \(None, 5\)"):
        rnnkit.Sequential([Dense(5, input_shape=(4,)), shared])
    ok = rnnkit.Sequential([Dense(3, input_shape=(4,)), shared])
    assert ok(np.zeros((2, 4), "float32")).shape == (2, 2)


def test_device_follows_to():
    m = seed_model_1()
    m(np.zeros((1, 33), "int64"))  # caches the parameters' device
    assert m.device == torch.device("cpu") and m.layers[1]._param_device() == torch.device("cpu")
    m.to("meta")
    assert m.device.type == "meta" and m.layers[1]._param_device().type == "meta"


def test_duplicate_layer_names_refused():
    with pytest.raises(ValueError, match="unique names"):
        rnnkit.Sequential([Dense(2, name="a", input_shape=(2,)), Dense(2, name="a")])


def test_call_on_numpy_and_torch_agree():
    m = seed_model_1()
    x = np.random.randint(0, 120, (2, 33))
    torch.testing.assert_close(m(x), m(torch.from_numpy(x)))


def test_build_with_an_input_shape_as_keras():
    m = rnnkit.Sequential([Embedding(50, 8), LSTM(4), Dense(3)])
    assert not m.built
    m.build((None, 6))
    assert m.built and m.output_shape == (None, 3) and m.count_params() == 400 + 208 + 15
    m.build((None, 6))  # again: a no-op
    with pytest.raises(ValueError, match="needs an input shape"):
        rnnkit.Sequential([Dense(2)]).build()


def test_an_input_of_another_shape_names_the_layer_it_does_not_fit():
    m = rnnkit.Sequential([Embedding(10, 4, input_shape=(8,)), Flatten(), Dense(2)])
    with pytest.raises(ValueError, match=r"layer 'flatten_?\d*' \(Flatten\) expected input shape \(None, 8, 4\), "
                                         r"got \(1, 12, 4\)"):
        m.predict(np.ones((1, 12), int))
    assert m.predict(np.ones((1, 8), int)).shape == (1, 2)
    # a recurrent stack takes any length, as in Keras
    r = rnnkit.Sequential([Embedding(10, 4, input_shape=(8,)), LSTM(3), Dense(2)])
    assert r.predict(np.ones((2, 12), int)).shape == (2, 2)


def test_windows_longer_than_the_input_are_refused_when_the_model_is_built():
    with pytest.raises(ValueError, match=r"\(Conv1D\): input of 3 steps is shorter than the kernel span 5"):
        rnnkit.Sequential([Embedding(10, 4, input_shape=(3,)), Conv1D(2, 5)])
    with pytest.raises(ValueError, match=r"\(MaxPooling1D\): input of 3 steps is shorter than pool_size=5"):
        rnnkit.Sequential([Embedding(10, 4, input_shape=(3,)), MaxPooling1D(5), LSTM(2)])
    m = rnnkit.Sequential([Embedding(10, 4, input_shape=(None,)), Conv1D(2, 5), Dense(1)])
    with pytest.raises(ValueError, match="shorter than the kernel span"):
        m.predict(np.ones((1, 3), int))


def test_float64_tensors_take_the_weights_dtype():
    x = torch.ones(2, 4, dtype=torch.float64)
    assert Dense(3)(x).dtype == torch.float32  # built by this very call
    m = rnnkit.Sequential([Dense(3, input_shape=(4,)), Dense(1)])
    np.testing.assert_allclose(m.predict(x), m.predict(x.float().numpy()))
    m.double()  # a float64 model keeps float64
    assert m(torch.ones(2, 4)).dtype == torch.float64
