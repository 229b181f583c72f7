"""compile / fit / evaluate / predict: learning, losses, metrics, validation, errors."""
import math

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import losses, optimizers
from rnnkit.cli.demo import synthetic_task
from rnnkit.layers import GRU, LSTM, Bidirectional, Dense, Embedding
from rnnkit.training import TrainingError


def small_model(out_activation=None):
    return rnnkit.Sequential([
        Embedding(120, 16, input_shape=(12,)),
        Bidirectional(GRU(16)),
        Dense(8, activation=out_activation),
    ])


def test_learning_task_rises_well_above_chance():
    x, y = synthetic_task(2048, seed=0, length=12)
    xv, yv = synthetic_task(512, seed=1, length=12)
    model = small_model("softmax")
    model.compile(optimizer=optimizers.Adam(5e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=64, epochs=8, validation_data=(xv, yv), verbose=0)
    loss, acc = model.evaluate(xv, yv)
    assert acc > 0.6, f"held-out accuracy {acc:.2f} is not well above chance (0.125)"
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.history["val_accuracy"][-1] == pytest.approx(acc, abs=1e-6)


def test_softmax_output_trains_on_logits_with_keras_loss_values():
    """With a softmax output the loop uses logits; the loss must equal Keras's formula on probabilities."""
    model = small_model("softmax")
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = synthetic_task(64, seed=3, length=12)
    probs = model.predict(x)
    expected = -np.mean(np.log(np.clip(probs[np.arange(64), y], 1e-7, 1 - 1e-7)))
    assert model.evaluate(x, y) == pytest.approx(expected, rel=1e-5)
    onehot = rnnkit.to_categorical(y, 8)
    model.compile("adam", "categorical_crossentropy")
    assert model.evaluate(x, onehot) == pytest.approx(expected, rel=1e-5)


def test_from_logits_loss_and_binary_crossentropy():
    x = np.random.rand(200, 3).astype("float32")
    y = (x.sum(1) > 1.5).astype("float32")
    model = rnnkit.Sequential([Dense(8, activation="relu", input_shape=(3,)), Dense(1, activation="sigmoid")])
    model.compile(optimizers.Adam(0.02), "binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    assert model.evaluate(x, y)[1] > 0.85
    p = model.predict(x[:10])[:, 0]
    bce = -np.mean(y[:10] * np.log(p) + (1 - y[:10]) * np.log(1 - p))
    assert model.evaluate(x[:10], y[:10])[0] == pytest.approx(bce, rel=1e-4)


def test_mse_regression_and_sgd():
    x = np.random.rand(256, 4).astype("float32")
    y = x @ np.array([1.0, -2.0, 0.5, 3.0], "float32") + 0.1
    model = rnnkit.Sequential([Dense(1, input_shape=(4,))])
    model.compile(optimizers.SGD(0.1, momentum=0.9), "mse", metrics=["mae"])
    model.fit(x, y[:, None], epochs=40, batch_size=32, verbose=0)
    assert model.evaluate(x, y[:, None])[0] < 1e-3


def test_validation_split_takes_the_last_samples_before_shuffling():
    x = np.arange(100, dtype="float32")[:, None]
    y = np.zeros((100, 1), "float32")
    y[80:] = 5.0  # only the validation part is off; val_loss must see exactly these
    model = rnnkit.Sequential([Dense(1, input_shape=(1,), kernel_initializer="zeros")])
    model.compile(optimizers.SGD(1e-9), "mse")
    h = model.fit(x, y, validation_split=0.2, epochs=1, verbose=0)
    assert h.history["val_loss"][0] == pytest.approx(25.0, rel=1e-4)
    assert h.history["loss"][0] == pytest.approx(0.0, abs=1e-4)


def test_clipnorm_is_per_tensor_as_keras():
    model = rnnkit.Sequential([Dense(2, input_shape=(2,))])
    model.compile(optimizers.SGD(1.0, clipnorm=0.5), "mse")
    before = [w.copy() for w in model.get_weights()]
    model.train_on_batch(np.array([[100.0, 100.0]]), np.array([[-100.0, 100.0]]))
    for b, a in zip(before, model.get_weights()):
        assert np.linalg.norm(a - b) == pytest.approx(0.5, rel=1e-4)


def test_nan_loss_stops_with_the_step():
    model = rnnkit.Sequential([Dense(1, input_shape=(2,))])
    model.compile("sgd", "mse")
    twin = rnnkit.Sequential([Dense(1, input_shape=(2,))])
    twin.compile("sgd", "mse")
    twin.set_weights(model.get_weights())
    x = np.random.rand(64, 2).astype("float32")
    y = np.ones((64, 1), "float32")
    y[40] = np.nan
    with pytest.raises(TrainingError, match=r"loss became nan at epoch 1, step 2"):
        model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    # only step 1 was applied: the bad update never touched the weights
    twin.train_on_batch(x[:32], y[:32])
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_bad_inputs_are_refused_clearly():
    model = small_model()
    with pytest.raises(RuntimeError, match="must be compiled"):
        model.fit(np.zeros((4, 12)), np.zeros(4))
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'; expected one of adagrad, adam, adamw, rmsprop, sgd"):
        model.compile("adamm", "mse")
    with pytest.raises(ValueError, match="unknown loss 'cross'; expected one of"):
        model.compile("adam", "cross")
    with pytest.raises(ValueError, match="unknown metric"):
        model.compile("adam", "mse", metrics=["acuracy"])
        model.fit(np.zeros((4, 12)), np.zeros((4, 8)), verbose=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="x has 4 samples but y has 3"):
        model.fit(np.zeros((4, 12)), np.zeros(3), verbose=0)
    with pytest.raises(ValueError, match="label 9 is out of range for an output of 8 classes"):
        model.fit(np.zeros((4, 12)), np.full(4, 9), verbose=0)
    with pytest.raises(ValueError, match="token id 500 is out of range"):
        model.fit(np.full((4, 12), 500), np.zeros(4), verbose=0)


def test_progress_one_line_per_epoch_when_not_a_terminal(capsys):
    model = small_model("softmax")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = synthetic_task(64, seed=0, length=12)
    model.fit(x, y, epochs=2, batch_size=32, verbose=2)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 2
    assert out[0].startswith("Epoch 1/2 - ") and "samples/s" in out[0] and "loss: " in out[0]
    assert "accuracy: " in out[0] and "ETA" in out[0]


def test_predict_is_deterministic_and_batched():
    model = small_model()
    x = np.random.randint(0, 120, (70, 12))
    a = model.predict(x, batch_size=8)
    b = model.predict(x, batch_size=70)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert a.shape == (70, 8)


def test_sequence_loss_ignores_masked_steps():
    """Embedding(mask_zero) -> LSTM(return_sequences) -> Dense: padded steps do not count."""
    model = rnnkit.Sequential([
        Embedding(10, 4, mask_zero=True, input_shape=(5,)),
        LSTM(3, return_sequences=True),
        Dense(4, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.array([[0, 0, 1, 2, 3]])
    y = np.array([[3, 3, 1, 2, 3]])
    y_other = np.array([[0, 1, 1, 2, 3]])  # differs only at padded steps
    assert model.evaluate(x, y) == pytest.approx(model.evaluate(x, y_other), rel=1e-6)
