"""Keras 3's train_step override (its PyTorch-backend guide's example, verbatim), predict_classes."""
import numpy as np
import pytest
import torch

from rnnkit.layers import Dense
from rnnkit.models import Sequential

rng = np.random.default_rng(0)
X = rng.normal(size=(16, 3)).astype("float32")
Y = rng.normal(size=(16, 1)).astype("float32")


class Custom(Sequential):
    calls = 0

    def train_step(self, data):
        Custom.calls += 1
        x, y = data
        y_pred = self(x, training=True)
        self.zero_grad()
        loss = self.compute_loss(y=y, y_pred=y_pred)
        loss.backward()
        trainable_weights = [v for v in self.trainable_weights]
        gradients = [v.value.grad for v in trainable_weights]
        with torch.no_grad():
            self.optimizer.apply(gradients, trainable_weights)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}


def build(cls):
    torch.manual_seed(0)
    m = cls([Dense(1, input_shape=(3,))])
    m.compile("sgd", "mse", metrics=["mae"], device="cpu")
    return m


def test_the_keras_example_trains_as_the_default_step():
    a, b = build(Sequential), build(Custom)
    ha = a.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    hb = b.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    assert Custom.calls == 8
    assert np.allclose(a.get_weights()[0], b.get_weights()[0], atol=1e-6)
    assert sorted(hb.history) == ["loss", "mae"]
    assert hb.history["loss"] == pytest.approx(ha.history["loss"], abs=1e-5)
    assert hb.history["mae"] == pytest.approx(ha.history["mae"], abs=1e-5)


def test_predict_classes_is_deprecated_but_works():
    m = Sequential([Dense(3, activation="softmax", input_shape=(3,))])
    with pytest.warns(DeprecationWarning):
        assert (m.predict_classes(X) == m.predict(X).argmax(-1)).all()
    m = Sequential([Dense(1, activation="sigmoid", input_shape=(3,))])
    with pytest.warns(DeprecationWarning):
        assert m.predict_classes(X).shape == (16, 1)


def test_compile_refuses_what_it_cannot_do():
    m = Sequential([Dense(1, input_shape=(3,))])
    with pytest.raises(ValueError, match="jit_compile=True is not supported"):
        m.compile("sgd", "mse", jit_compile=True)
    with pytest.raises(ValueError, match="steps_per_execution=4 is not supported"):
        m.compile("sgd", "mse", steps_per_execution=4)
