"""keras.saving.register_keras_serializable, get_registered_object, custom_object_scope, custom_objects=."""
import numpy as np
import pytest
import torch

import rnnkit
import rnnkit.keras as keras
from rnnkit.layers import Dense
from rnnkit.layers.base import Layer
from rnnkit.layers.registry import deserialize_layer, get_class, serialize_layer
from rnnkit.saving import objects


class Scale(Layer):
    """Multiplies by a learned per-feature factor (a custom layer for these tests)."""

    def __init__(self, start=1.0, **kwargs):
        super().__init__(**kwargs)
        self.start = start

    def build(self, input_shape):
        self.factor = torch.nn.Parameter(torch.full((input_shape[-1],), float(self.start)))

    def forward(self, inputs, mask=None, training=None):
        return inputs * self.factor

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "start": self.start}


def test_register_and_look_up():
    @keras.saving.register_keras_serializable(package="Tests", name="Twice")
    def twice(x):
        return 2 * x

    assert keras.saving.get_registered_object("Tests>Twice") is twice
    assert keras.saving.get_registered_name(twice) == "Tests>Twice"
    assert keras.saving.get_registered_object("twice") is None  # only the registered name finds it
    assert keras.saving.get_registered_object("twice", custom_objects={"twice": twice}) is twice


def test_register_refuses_a_class_without_get_config():
    with pytest.raises(ValueError, match="get_config"):
        keras.saving.register_keras_serializable()(type("NoConfig", (), {}))


def test_custom_object_scope_nests_and_ends():
    with keras.saving.custom_object_scope({"A": 1}):
        with keras.utils.custom_object_scope({"B": 2}):
            assert objects.get_registered_object("A") == 1 and objects.get_registered_object("B") == 2
        assert objects.get_registered_object("B") is None
    assert objects.get_registered_object("A") is None


def test_layer_lookup_by_registered_name_and_custom_objects():
    with pytest.raises(ValueError, match="unknown layer class 'Scale'"):
        get_class("Scale")
    assert get_class("Scale", custom_objects={"Scale": Scale}) is Scale
    with keras.saving.custom_object_scope({"Scale": Scale}):
        assert get_class("Scale") is Scale
    with pytest.raises(ValueError):  # a name bound to something that is not a layer class
        get_class("Scale", custom_objects={"Scale": len})


def test_registered_layer_round_trips_through_its_config():
    Registered = keras.saving.register_keras_serializable("Tests")(type("RegisteredScale", (Scale,), {}))
    layer = Registered(start=3.0)
    spec = serialize_layer(layer)
    assert spec["registered_name"] == "Tests>RegisteredScale"
    again = deserialize_layer(spec)
    assert type(again) is Registered and again.start == 3.0


def test_load_model_with_custom_objects(tmp_path):
    model = rnnkit.Sequential([Dense(3, input_shape=(4,)), Scale(start=0.5)])
    x = np.random.default_rng(0).standard_normal((2, 4)).astype("float32")
    want = model.predict(x, verbose=0)
    path = tmp_path / "m.safetensors"
    model.save(path)
    with pytest.raises(Exception, match="Scale"):
        rnnkit.load_model(path)
    loaded = keras.models.load_model(path, custom_objects={"Scale": Scale})
    np.testing.assert_allclose(loaded.predict(x, verbose=0), want, atol=1e-6)
    assert objects.get_registered_object("Scale") is None  # the scope ended with the call
