"""Keras-API arguments of the wrong type or range are refused when given, with a ValueError
naming the layer (or call) and the argument, where Keras 3 refuses them too (``Dense(2.5)``,
``Dropout(1.5)``) and where Keras lets nonsense through to fail later or never (``LSTM(2.5)``,
``fit(epochs=-1)``, ``Adam(learning_rate=nan)``)."""
import numpy as np
import pytest

import rnnkit.keras as keras

L = keras.layers
NAN = float("nan")

LAYERS = [
    (lambda: L.Dense(2.5), "Dense: units must be a positive integer, got 2.5"),
    (lambda: L.LSTM(2.5), "LSTM: units must be a positive integer, got 2.5"),
    (lambda: L.GRU(2.5), "GRU: units must be a positive integer, got 2.5"),
    (lambda: L.SimpleRNN(0), "SimpleRNN: units must be a positive integer, got 0"),
    (lambda: L.LSTMCell(2.5), "LSTMCell: units must be a positive integer, got 2.5"),
    (lambda: L.MinLSTM(2.5), "MinLSTM: units must be a positive integer, got 2.5"),
    (lambda: L.LSTM(2, dropout=1.5), "LSTM: dropout must be in [0, 1), got 1.5"),
    (lambda: L.Conv1D(2.5, 3), "Conv1D: filters must be a positive integer, got 2.5"),
    (lambda: L.Conv1D(2, 0), "Conv1D: kernel_size must be a positive integer, got 0"),
    (lambda: L.Conv1D(2, 3, strides=0), "Conv1D: strides must be a positive integer, got 0"),
    (lambda: L.Dropout(NAN), "Dropout: rate must be in [0, 1), got nan"),
    (lambda: L.Embedding(3.5, 2), "Embedding: input_dim must be a positive integer, got 3.5"),
    (lambda: L.MaxPooling1D(0), "MaxPooling1D: pool_size must be a positive integer, got 0"),
    (lambda: L.LayerNormalization(epsilon=-1), "LayerNormalization: epsilon must be a finite number > 0, got -1"),
    (lambda: L.BatchNormalization(momentum=2), "BatchNormalization: momentum must be a number in [0, 1], got 2"),
    (lambda: keras.optimizers.Adam(learning_rate=NAN), "Adam: learning_rate must be a finite number > 0, got nan"),
    (lambda: keras.optimizers.SGD(learning_rate=float("inf")), "SGD: learning_rate must be a finite number > 0, got inf"),
]


@pytest.mark.parametrize("make, message", LAYERS, ids=[m.split(",")[0] for _, m in LAYERS])
def test_a_bad_constructor_argument_is_refused(make, message):
    with pytest.raises(ValueError) as refused:
        make()
    assert str(refused.value) == message


CALLS = [
    ("fit", dict(batch_size=0), "batch_size must be a positive whole number, got 0"),
    ("fit", dict(epochs=-1), "epochs must be a whole number >= 0, got -1"),
    ("fit", dict(epochs=2.5), "epochs must be a whole number >= 0, got 2.5"),
    ("fit", dict(initial_epoch=-1), "initial_epoch must be a whole number >= 0, got -1"),
    ("fit", dict(steps_per_epoch=0), "steps_per_epoch must be a positive number of batches or None, got 0"),
    ("fit", dict(validation_split=NAN), "validation_split must be in (0, 1), got nan"),
    ("fit", dict(validation_split=0.25, validation_batch_size=0),
     "validation_batch_size must be a positive whole number or None, got 0"),
    ("fit", dict(verbose=5), "verbose must be 'auto', 0, 1 or 2, got 5"),
    ("evaluate", dict(verbose=-1), "verbose must be 'auto', 0, 1 or 2, got -1"),
    ("evaluate", dict(batch_size=True), "batch_size must be a positive whole number, got True"),
    ("predict", dict(batch_size=2.5), "batch_size must be a positive whole number, got 2.5"),
    ("predict", dict(steps=0), "steps must be a positive number of batches or None, got 0"),
]


@pytest.fixture(scope="module")
def model():
    m = keras.Sequential([keras.Input((3,)), L.Dense(1)])
    m.compile("sgd", "mse")
    return m


@pytest.mark.parametrize("method, kwargs, message", CALLS, ids=[f"{m}-{k}" for m, k, _ in CALLS])
def test_a_bad_fit_evaluate_or_predict_argument_is_refused_before_any_step(model, method, kwargs, message):
    x, y = np.zeros((8, 3), np.float32), np.zeros((8, 1), np.float32)
    before = [p.detach().clone() for p in model.parameters()]
    args = (x,) if method == "predict" else (x, y)
    with pytest.raises(ValueError) as refused:
        getattr(model, method)(*args, **({"verbose": 0} | kwargs))
    assert str(refused.value) == message
    assert all(np.array_equal(a, b.detach()) for a, b in zip(before, model.parameters()))
