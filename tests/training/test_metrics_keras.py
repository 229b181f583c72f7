"""keras.metrics as standalone stateful objects, against real Keras 3 (tests/fixtures/keras/ops/metrics.json)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnkit
import rnnkit.keras as keras
from rnnkit.layers import Dense
from rnnkit.training import metrics

CASES = json.loads((Path(__file__).parents[1] / "fixtures" / "keras" / "ops" / "metrics.json").read_text())


def arr(v):
    return None if v is None else np.asarray(v["array"], dtype=v["dtype"])


@pytest.mark.parametrize("case", CASES, ids=[f"{i}-{c['class']}" for i, c in enumerate(CASES)])
def test_matches_keras(case):
    m = getattr(keras.metrics, case["class"])(**case["config"])
    assert m.name == case["name"]
    assert m.get_config() == case["get_config"]
    for batch, want in zip(case["batches"], case["results"]):
        y_true, y_pred, weight = arr(batch["y_true"]), arr(batch["y_pred"]), arr(batch["sample_weight"])
        if case["class"] in ("Mean", "Sum"):
            m.update_state(y_pred, sample_weight=weight)
        else:
            m.update_state(y_true, y_pred, sample_weight=weight)
        assert m.result() == pytest.approx(want, abs=1e-5)
    m.reset_state()
    assert m.result() == case["after_reset"]
    again = type(m).from_config(m.get_config())
    assert again.get_config() == m.get_config()


def test_result_reads_like_a_keras_scalar():
    m = keras.metrics.Mean()
    out = m([1.0, 2.0, 6.0])
    assert float(out) == 3.0 and out.numpy() == np.float32(3.0) and out.item() == 3.0


def test_torch_inputs_and_sequence_weights():
    m = keras.metrics.SparseCategoricalAccuracy()
    y_pred = torch.tensor([[[0.1, 0.9], [0.8, 0.2]], [[0.3, 0.7], [0.6, 0.4]]])
    y_true = torch.tensor([[1, 1], [0, 0]])
    m.update_state(y_true, y_pred, sample_weight=torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    # per sample: mean_t(v*w) / mean_t(w): (1*1 + 0)/2 and (0 + 1)/2 over weights 1/2 + 1 -> 1/1.5
    assert m.result() == pytest.approx((0.5 + 0.5) / 1.5)


def test_ignore_class_leaves_those_labels_out():
    probs = np.array([[0.7, 0.3], [0.2, 0.8], [0.5, 0.5]], dtype="float32")
    m = keras.metrics.SparseCategoricalCrossentropy(ignore_class=1)
    m.update_state(np.array([0, 1, 0]), probs)
    assert m.result() == pytest.approx(-(np.log(0.7) + np.log(0.5)) / 2, abs=1e-6)


def test_from_sorted_ids():
    m = keras.metrics.SparseTopKCategoricalAccuracy(k=2, from_sorted_ids=True)
    m.update_state(np.array([3, 1]), np.array([[3, 0, 1], [2, 0, 1]]))
    assert m.result() == 0.5


def test_refused_arguments():
    with pytest.raises(ValueError, match="dtype"):
        keras.metrics.Mean(dtype="float64")
    with pytest.raises(ValueError, match="axis"):
        keras.metrics.CategoricalCrossentropy(axis=1)
    with pytest.raises(TypeError):
        keras.metrics.Accuracy(bogus=1)
    with pytest.raises(ValueError, match="sample_weight"):
        keras.metrics.Mean().update_state(np.ones((2, 3)), sample_weight=np.ones(4))


def test_usable_in_compile_and_fit():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + 2 * (x[:, 1] > 0)
    model = rnnkit.Sequential([Dense(4, activation="softmax", input_shape=(4,))])
    top2 = keras.metrics.SparseTopKCategoricalAccuracy(k=2, name="top2")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy", top2, "sparse_top_k_categorical_accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert {"accuracy", "top2", "sparse_top_k_categorical_accuracy"} <= set(history.history)
    pred = model.predict(x, verbose=0)
    check = keras.metrics.SparseTopKCategoricalAccuracy(k=2)
    check.update_state(y, pred)
    model.compiled.metrics[1].reset()
    model.compiled.metrics[1].update(torch.as_tensor(y), torch.as_tensor(pred))
    assert model.compiled.metrics[1].result() == pytest.approx(check.result())
    assert history.history["sparse_top_k_categorical_accuracy"][-1] == 1.0  # k=5 over 4 classes


def test_get_by_name_and_dict():
    assert isinstance(metrics.get("top_k_categorical_accuracy"), keras.metrics.TopKCategoricalAccuracy)
    m = metrics.get(metrics.serialize(keras.metrics.BinaryAccuracy(threshold=0.3)))
    assert isinstance(m, keras.metrics.BinaryAccuracy) and m.threshold == 0.3
