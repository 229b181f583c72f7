"""Multi-input / multi-output training against Keras 3 (tests/fixtures/keras/training), with a
torch model that follows the functional models' protocol (a list of outputs, output_names)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnkit.models import Model
from rnnkit.training.optimizers import SGD

HERE = Path(__file__).parent.parent / "fixtures" / "keras" / "training"
FIX = json.loads((HERE / "multi_io.json").read_text())
D = np.load(HERE / "multi_io.npz")


class TwoHeads(Model):
    """cls = softmax(a W0 + b0), reg = [a, b] W2 + b2: the fixtures' Keras model."""

    output_names = ["cls", "reg"]
    input_names = ["a", "b"]

    def __init__(self):
        super().__init__(name="two_heads")
        self.w = torch.nn.ParameterList([torch.nn.Parameter(torch.tensor(D[f"w{i}"])) for i in range(4)])
        self.built = True

    @property
    def layers(self):
        return []

    output_activations = ["softmax", None]

    def forward_with_mask(self, x, mask=None, training=None, return_logits=False):
        logits = return_logits if isinstance(return_logits, list) else [return_logits] * 2
        a, b = (x["a"], x["b"]) if isinstance(x, dict) else x
        cls = F.linear(a, self.w[0].t(), self.w[1])
        reg = F.linear(torch.cat([a, b], -1), self.w[2].t(), self.w[3])
        return [cls if logits[0] else torch.softmax(cls, -1), reg], [None, None]

    def forward(self, x, training=None):
        return self.forward_with_mask(x, training=training)[0]


X = [D["xa"], D["xb"]]
Y = [D["y_cls"], D["y_reg"]]


def compiled(case):
    cfg = dict(FIX[case]["compile"])
    model = TwoHeads()
    model.compile(optimizer=SGD(0.1), device="cpu", **cfg)
    return model


def close(got, want):
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=2e-5), k


@pytest.mark.parametrize("case", ["list_losses_weights_metrics", "dict_losses_dict_metrics", "one_loss_none",
                                  "weighted_metrics"])
def test_evaluate_and_fit_match_keras(case):
    fix = FIX[case]
    model = compiled(case)
    close(model.evaluate(X, Y, batch_size=4, return_dict=True), fix["evaluate"])
    close(model.evaluate(X, Y, sample_weight=D["sw"], batch_size=4, return_dict=True), fix["evaluate_sample_weight"])
    hist = model.fit({"a": D["xa"], "b": D["xb"]}, {"cls": D["y_cls"], "reg": D["y_reg"]}, batch_size=4, epochs=1,
                     shuffle=False, validation_data=(X, Y), verbose=0)
    assert sorted(hist.history) == fix["history_keys"]
    close({k: v[0] for k, v in hist.history.items()}, fix["history"])
    close(model.evaluate(X, Y, batch_size=4, return_dict=True), fix["evaluate_after_fit"])
    assert model.evaluate(X, Y, batch_size=4) == pytest.approx(fix["evaluate_list"], abs=2e-5)
    assert model.metrics_names == fix["metrics_names"]


def test_loss_structures_are_checked_as_keras_does():
    assert FIX["loss_dict_missing_refused"] and FIX["flat_metrics_list_refused"]
    model = TwoHeads()
    with pytest.raises(ValueError, match=r"no entry for output\(s\) \['reg'\]"):
        model.compile(loss={"cls": "sparse_categorical_crossentropy"}, device="cpu")
    model = TwoHeads()
    with pytest.raises(ValueError, match="one list of metrics per output"):
        model.compile(loss=["sparse_categorical_crossentropy", "mse"], metrics=["accuracy"], device="cpu")
    model = TwoHeads()
    model.compile(loss=["sparse_categorical_crossentropy", "mse"], device="cpu")
    with pytest.raises(ValueError, match=r"x has no entry for input 'b'; the model's inputs are \['a', 'b'\]"):
        model.fit({"a": D["xa"]}, Y, verbose=0)
    with pytest.raises(ValueError, match="y has no entry for output 'reg'"):
        model.fit(X, {"cls": D["y_cls"]}, verbose=0)
    with pytest.raises(ValueError, match="x\\[0\\] has 10 samples but y\\[1\\] has 3"):
        model.fit(X, [D["y_cls"], D["y_reg"][:3]], verbose=0)
    with pytest.raises(ValueError, match="loss_weights must be a list or a dict"):
        model.compile(loss="mse", loss_weights=2.0)


def test_predict_keeps_the_output_structure():
    model = compiled("list_losses_weights_metrics")
    out = model.predict(X, batch_size=3)
    assert isinstance(out, list) and out[0].shape == (10, 3) and out[1].shape == (10, 1)


def test_outputs_of_one_shared_layer_get_keras_3s_history_names():
    # Ng's date model makes its ten outputs with one Dense; Keras 3.15 names their metrics
    # dense_2_accuracy, dense_2_accuracy_1, ... _9 and keeps one dense_2_loss (benchmarks/ng_epoch.py
    # run under Keras printed exactly that list, with val_ twins).
    import rnnkit.keras as keras

    x_in = keras.Input((4,))
    shared = keras.layers.Dense(3, activation="softmax", name="head")
    hidden = keras.layers.Dense(4, activation="tanh")
    outs, h = [], x_in
    for _ in range(3):
        h = hidden(h)
        outs.append(shared(h))
    model = keras.Model(x_in, outs)
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=[["accuracy"]] * 3)
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    y = [np.eye(3, dtype="float32")[np.arange(8) % 3]] * 3
    history = model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y)).history
    names = ["head_accuracy", "head_accuracy_1", "head_accuracy_2", "head_loss", "loss"]
    assert sorted(history) == sorted(names + ["val_" + n for n in names])
