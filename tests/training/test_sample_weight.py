"""sample_weight / class_weight in fit, evaluate, train_on_batch and validation data, against
what Keras 3 computed from the same weights (tests/fixtures/keras/make_weighted_fixtures.py):
the loss is ``sum(loss * weight) / count`` (count: values, or unmasked steps), metrics stay
unweighted, class weights come from each sample's label."""
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnkit.keras as keras
from rnnkit.training.loop import sample_weights

K = np.load(Path(__file__).parents[1] / "fixtures" / "keras" / "weighted.npz")


def arrays(case, prefix="w"):
    return [K[f"{case}/{prefix}{i}"] for i in range(len([k for k in K.files if k.startswith(f"{case}/{prefix}")
                                                         and k[len(case) + 1 + len(prefix):].isdigit()]))]


def classifier(loss="sparse_categorical_crossentropy", metric="accuracy"):
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="tanh"),
                          keras.layers.Dense(3, activation="softmax")])
    m.set_weights(arrays("clf"))
    m.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss, metrics=[metric])
    return m


def close(got, want, tol=2e-5):
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


def test_weighted_evaluate_and_train_on_batch_match_keras():
    m = classifier()
    x, y, sw = K["clf/x"], K["clf/y"], K["clf/sample_weight"]
    got = m.evaluate(x, y, sample_weight=sw, batch_size=10, return_dict=True)
    assert got["loss"] == pytest.approx(float(K["clf/eval_loss"]), rel=1e-5)
    assert got["accuracy"] == pytest.approx(float(K["clf/eval_accuracy"]))  # metrics are not weighted
    assert m.evaluate(x, y, batch_size=10)[0] == pytest.approx(float(K["clf/eval_plain_loss"]), rel=1e-5)
    before = m.test_on_batch(x, y, sample_weight=sw, return_dict=True)
    assert before == pytest.approx({"loss": got["loss"], "accuracy": got["accuracy"]}, rel=1e-6)
    loss, accuracy = m.train_on_batch(x, y, sample_weight=sw)  # [loss, *metrics], as Keras returns them
    assert loss == pytest.approx(float(K["clf/tob_loss"]), rel=1e-5) and accuracy == before["accuracy"]
    close(m.get_weights(), arrays("clf", "tob_w"))


def test_fit_with_class_weight_matches_keras_sparse_one_hot_and_binary():
    cw = dict(zip(K["clf/class_weight_keys"].tolist(), K["clf/class_weight_values"].tolist()))
    m = classifier()
    h = m.fit(K["clf/x"], K["clf/y"], class_weight=cw, batch_size=4, epochs=2, shuffle=False, verbose=0).history
    np.testing.assert_allclose(h["loss"], K["clf/fit_loss"], rtol=1e-5)
    np.testing.assert_allclose(h["accuracy"], K["clf/fit_accuracy"], rtol=1e-6)
    close(m.get_weights(), arrays("clf", "fit_w"))

    m = classifier("categorical_crossentropy", "categorical_accuracy")
    h = m.fit(K["clf/x"], K["onehot/y"], class_weight=cw, batch_size=10, epochs=1, shuffle=False, verbose=0).history
    np.testing.assert_allclose(h["loss"], K["onehot/fit_loss"], rtol=1e-5)
    close(m.get_weights(), arrays("onehot", "fit_w"))

    b = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    b.set_weights(arrays("binary"))
    b.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy", metrics=["accuracy"])
    h = b.fit(K["clf/x"], K["binary/y"], class_weight={0: 1.0, 1: 3.0}, batch_size=5, shuffle=False,
              verbose=0).history
    np.testing.assert_allclose(h["loss"], K["binary/fit_loss"], rtol=1e-5)
    np.testing.assert_allclose(h["accuracy"], K["binary/fit_accuracy"])
    close(b.get_weights(), arrays("binary", "fit_w"))


def test_sequence_outputs_with_a_mask_take_per_sample_and_per_step_weights_as_keras_does():
    m = keras.Sequential([keras.Input((6,), dtype="int32"), keras.layers.Embedding(9, 4, mask_zero=True),
                          keras.layers.LSTM(5, return_sequences=True), keras.layers.Dense(3, activation="softmax")])
    m.set_weights(arrays("seq"))
    m.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = K["seq/x"], K["seq/y"]
    # (n,) and (n, 1) both weigh whole samples (Keras took (n, 1): see the fixture script).
    for key, w in (("sample", K["seq/sample_weight"]), ("sample", K["seq/sample_weight"][:, None]),
                   ("step", K["seq/step_weight"]), ("plain", None)):
        got = m.evaluate(x, y, sample_weight=w, batch_size=6, return_dict=True)
        assert got["loss"] == pytest.approx(float(K[f"seq/eval_{key}_loss"]), rel=1e-5), key
        assert got["accuracy"] == pytest.approx(float(K[f"seq/eval_{key}_accuracy"]), rel=1e-6), key
    m.train_on_batch(x, y, sample_weight=K["seq/step_weight"])
    close(m.get_weights(), arrays("seq", "tob_w"))


def test_weights_follow_the_validation_split_and_a_three_tuple_validation_data():
    m = classifier()
    x, y, sw = K["clf/x"], K["clf/y"], K["clf/sample_weight"]
    # Validation runs after the epoch's updates: evaluating after fit sees the same weights.
    h = m.fit(x, y, sample_weight=sw, validation_split=0.3, epochs=1, verbose=0).history
    assert h["val_loss"][0] == pytest.approx(m.evaluate(x[7:], y[7:], sample_weight=sw[7:])[0], rel=1e-6)
    assert h["val_loss"][0] != pytest.approx(m.evaluate(x[7:], y[7:])[0], rel=1e-3)
    h = m.fit(x, y, validation_data=(x[:5], y[:5], sw[:5]), epochs=1, verbose=0).history
    assert h["val_loss"][0] == pytest.approx(m.evaluate(x[:5], y[:5], sample_weight=sw[:5])[0], rel=1e-6)
    # Zero weight on a sample is the same as leaving it out of the sum (but not of the count).
    w = np.ones(10, np.float32)
    w[3] = 0
    keep = np.arange(10) != 3
    assert m.evaluate(x, y, sample_weight=w, batch_size=10)[0] == pytest.approx(
        m.evaluate(x[keep], y[keep], batch_size=10)[0] * 9 / 10, rel=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"sample_weight": np.ones(3), "class_weight": {0: 1.0}}, "give sample_weight or class_weight, not both"),
    ({"sample_weight": np.ones(4)}, r"sample_weight must have shape \(n,\) or \(n, steps\) matching the targets "
                                    r"\(10,\), got \(4,\)"),
    ({"sample_weight": np.full(10, np.nan)}, "sample_weight has values that are not finite numbers"),
    ({"class_weight": [1.0, 2.0]}, "class_weight must be a dict of class index -> weight"),
    ({"class_weight": {"a": 1.0}}, "class_weight must be a dict of class index -> weight"),
])
def test_bad_weights_are_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        classifier().fit(K["clf/x"], K["clf/y"], verbose=0, **kwargs)


def test_class_weight_needs_one_label_per_sample():
    with pytest.raises(ValueError, match=r"class_weight needs one label per sample .* got targets of shape \(6, 6\)"):
        sample_weights(torch.as_tensor(K["seq/y"]), class_weight={0: 2.0})
    assert sample_weights(torch.tensor([0, 2, 1, 2]), class_weight={2: 3.0}).tolist() == [1.0, 3.0, 1.0, 3.0]


def test_predict_and_evaluate_stop_after_steps_batches_as_keras_does():
    m = classifier()
    x, y = K["clf/x"], K["clf/y"]
    assert m.predict(x, batch_size=3, steps=2).shape == (6, 3)
    assert m.predict(x, batch_size=3, steps=10).shape == (10, 3)  # more steps than batches: all of them
    assert m.evaluate(x, y, batch_size=3, steps=2)[0] == pytest.approx(m.evaluate(x[:6], y[:6], batch_size=3)[0])
    with pytest.raises(ValueError, match="steps must be a positive number of batches or None, got 0"):
        m.predict(x, steps=0)


def test_batch_methods_return_the_loss_alone_without_metrics():
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    m.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    x, y = K["clf/x"], K["clf/y"]
    assert isinstance(m.test_on_batch(x, y), float) and isinstance(m.train_on_batch(x, y), float)
    assert set(m.train_on_batch(x, y, return_dict=True)) == {"loss"}
    assert not m.training  # back in inference mode, as after fit
