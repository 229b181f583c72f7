"""rnnkit.initializers' classes against real Keras 3 (tests/fixtures/keras/ops/initializers.json)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnkit
import rnnkit.keras as keras
from rnnkit import initializers
from rnnkit.layers import LSTM, Dense

DATA = json.loads((Path(__file__).parent / "fixtures" / "keras" / "ops" / "initializers.json").read_text())
CASES = DATA["cases"]


@pytest.mark.parametrize("case", CASES, ids=[f"{i}-{c['class']}" for i, c in enumerate(CASES)])
def test_matches_keras(case):
    init = getattr(initializers, case["class"])(**case["config"])
    want_config = case["get_config"]
    if case["class"] == "Identity":  # Keras 3.15 drops gain from its config; rnnkit keeps it
        want_config = {"gain": case["config"].get("gain", 1.0)}
    assert init.get_config() == want_config
    assert initializers.serialize(init)["class_name"] == case["serialized"]["class_name"]
    assert initializers.serialize(init)["module"] == "keras.initializers"
    v = init(tuple(case["shape"])).numpy()
    assert list(v.shape) == case["out_shape"] and v.dtype == np.float32
    if "values" in case:
        np.testing.assert_allclose(v, np.asarray(case["values"]), atol=1e-7)
        return
    assert np.array_equal(v, init(tuple(case["shape"])).numpy()) == case["same_twice"]
    s = case["stats"]
    assert abs(v.std() - s["std"]) < 0.03 * s["std"]
    if case["class"] == "Orthogonal":  # unbounded, and its mean is not a property of the distribution
        flat = v.reshape(-1, v.shape[-1])
        gram = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
        np.testing.assert_allclose(gram, case["gram_diag"] * np.eye(len(gram)), atol=1e-4)
        return
    assert abs(v.mean() - s["mean"]) < 0.05 * s["std"] + 1e-3
    if case["class"] not in ("RandomNormal", "VarianceScaling") or case["config"].get("distribution") == "uniform":
        # bounded distributions: the same limits (uniform) or truncation points
        assert abs(v.max() - s["max"]) < 0.03 * (s["max"] - s["min"])
        assert abs(v.min() - s["min"]) < 0.03 * (s["max"] - s["min"])


def test_round_trip_through_keras_dicts():
    for case in CASES:
        init = initializers.get(case["serialized"])
        assert type(init).__name__ == case["class"]
        assert init.get_config() == initializers.get(initializers.serialize(init)).get_config()


def test_names_resolve_to_keras_classes():
    for name, spec in DATA["by_name"].items():
        init = initializers.get(name)
        cls = spec["class_name"]
        if callable(init) and not isinstance(init, initializers.Initializer):
            continue  # the original function forms (glorot_uniform ...): drawn from torch's generator
        assert type(init).__name__ == cls, name
        assert initializers.serialize(init) == name  # a layer given a name saves that name


def test_seeded_instance_repeats_and_seeds_differ():
    a = initializers.GlorotUniform(seed=1)
    assert torch.equal(a((5, 4)), a((5, 4)))
    assert torch.equal(a((5, 4)), initializers.GlorotUniform(seed=1)((5, 4)))
    assert not torch.equal(a((5, 4)), initializers.GlorotUniform(seed=2)((5, 4)))


def test_unseeded_instance_follows_the_global_seed():
    keras.utils.set_random_seed(3)
    first = initializers.HeNormal()((6, 6))
    keras.utils.set_random_seed(3)
    assert torch.equal(first, initializers.HeNormal()((6, 6)))


def test_layers_take_instances_and_save_them(tmp_path):
    model = rnnkit.Sequential([
        LSTM(3, input_shape=(5, 2), kernel_initializer=keras.initializers.Constant(0.25),
             recurrent_initializer=keras.initializers.Orthogonal(gain=2.0, seed=4)),
        Dense(2, kernel_initializer="he_normal", bias_initializer=keras.initializers.Constant(1.5)),
    ])
    lstm, dense = model.layers
    np.testing.assert_array_equal(np.asarray(lstm.get_weights()[0]), 0.25)
    np.testing.assert_allclose(dense.get_weights()[1], 1.5)
    cfg = lstm.get_config()
    assert cfg["recurrent_initializer"]["config"] == {"seed": 4, "gain": 2.0}
    assert dense.get_config()["kernel_initializer"] == "he_normal"
    path = tmp_path / "m.safetensors"
    model.save(path)
    again = rnnkit.load_model(path)
    assert again.layers[0].get_config()["recurrent_initializer"] == cfg["recurrent_initializer"]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="mode"):
        initializers.VarianceScaling(mode="fan_sideways")
    with pytest.raises(ValueError, match="distribution"):
        initializers.VarianceScaling(distribution="cauchy")
    with pytest.raises(ValueError, match="seed"):
        initializers.RandomNormal(seed="seven")
    with pytest.raises(ValueError, match="2 axes"):
        initializers.Orthogonal()((3,))
    with pytest.raises(ValueError, match="2-D"):
        initializers.Identity()((2, 2, 2))
    with pytest.raises(TypeError):
        initializers.GlorotUniform(gain=2)
    with pytest.raises(ValueError, match="unknown initializer class"):
        initializers.get({"class_name": "Nope", "config": {}})
