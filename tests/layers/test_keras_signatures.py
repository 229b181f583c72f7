"""Every Keras 3 constructor argument of the core, convolutional and pooling layers is either
implemented or refused with an error naming it — never accepted and ignored.

``signatures.json`` (made by ``tests/fixtures/keras/layers_args/make_layers_args_fixtures.py``
with ``inspect.signature``) lists Keras's arguments per layer. Each is passed with a value
that changes what Keras computes; rnnkit must raise a one-line error naming the argument, or
the argument must be in ``IMPLEMENTED`` below — each of those has its own test against Keras
(tests/layers/test_core.py, test_convolutional.py, test_pooling.py, tests/test_constraints.py). So a new argument that a
constructor starts to swallow (say through ``**kwargs``) fails here until it is implemented.
"""
import re

import numpy as np
import pytest

from rnnkit import layers as L

from ._keras_cases import SIGNATURES

# A value for each argument that is not its neutral default.
PROBES = {
    "activation": "tanh", "use_bias": False, "kernel_initializer": "ones", "bias_initializer": "ones",
    "kernel_regularizer": "l2", "bias_regularizer": "l2", "activity_regularizer": "l2",
    "kernel_constraint": "non_neg", "bias_constraint": "non_neg", "embeddings_constraint": "non_neg",
    "lora_rank": 2, "lora_alpha": 2, "quantization_config": {"mode": "int8"},
    "embeddings_initializer": "ones", "embeddings_regularizer": "l2", "mask_zero": True,
    "weights": [np.ones((5, 3), "float32")], "noise_shape": (None, 1), "seed": 3,
    "data_format": "channels_first", "keepdims": True, "groups": 2, "strides": 2, "padding": "same",
    "dilation_rate": 2, "pool_size": 3, "trainable": False, "dtype": "float16", "autocast": False,
    "name": "probe", "input_shape": (7, 4), "input_dim": 4, "shape": (7, 4), "batch_size": 8,
    "batch_shape": (8, 7, 4), "sparse": True, "ragged": True, "input_tensor": object(), "tensor": object(),
    "optional": True,
}
PROBES_FOR = {("InputLayer", "dtype"): "int32", ("Input", "dtype"): "int32"}

# Required arguments (and the constructor) per layer.
REQUIRED = {
    "InputLayer": {"shape": (7, 4)}, "Input": {"shape": (7, 4)}, "Dense": {"units": 4},
    "Embedding": {"input_dim": 5, "output_dim": 3}, "Dropout": {"rate": 0.5}, "Activation": {"activation": "relu"},
    "Flatten": {}, "RepeatVector": {"n": 2}, "TimeDistributed": {"layer": None}, "Conv1D": {"filters": 4, "kernel_size": 3},
    "MaxPooling1D": {}, "AveragePooling1D": {"pool_size": 2}, "GlobalMaxPooling1D": {}, "GlobalAveragePooling1D": {},
}

_BASE = {"trainable", "name", "input_shape", "input_dim"}
IMPLEMENTED = {
    "InputLayer": {"shape", "batch_size", "dtype", "batch_shape", "name", "input_shape", "trainable"},
    "Input": {"shape", "batch_size", "dtype", "batch_shape", "name"},
    "Dense": _BASE | {"units", "activation", "use_bias", "kernel_initializer", "bias_initializer",
                      "kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
                      "bias_constraint"},
    "Embedding": _BASE | {"output_dim", "embeddings_initializer", "embeddings_regularizer", "mask_zero", "weights",
                          "embeddings_constraint"},
    "Dropout": _BASE | {"rate", "noise_shape", "seed"},
    "Activation": _BASE | {"activation"},
    "Flatten": _BASE | {"data_format"},
    "RepeatVector": _BASE | {"n"},
    "TimeDistributed": _BASE | {"layer"},
    "Conv1D": _BASE | {"filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "groups",
                       "activation", "use_bias", "kernel_initializer", "bias_initializer", "kernel_regularizer",
                       "bias_regularizer", "activity_regularizer", "kernel_constraint", "bias_constraint"},
    "MaxPooling1D": _BASE | {"pool_size", "strides", "padding", "data_format"},
    "AveragePooling1D": _BASE | {"pool_size", "strides", "padding", "data_format"},
    "GlobalMaxPooling1D": _BASE | {"data_format", "keepdims"},
    "GlobalAveragePooling1D": _BASE | {"data_format", "keepdims"},
}
CASES = [(layer, arg) for layer, args in SIGNATURES.items() for arg in args]


def construct(layer: str, arg: str):
    kwargs = dict(REQUIRED[layer])
    if layer == "TimeDistributed":
        kwargs["layer"] = L.Dense(2)
    if layer in ("InputLayer", "Input") and arg in ("batch_shape", "input_shape", "input_tensor", "tensor"):
        kwargs.pop("shape")
    if arg not in REQUIRED[layer]:  # the required ones are given in every case
        kwargs[arg] = PROBES_FOR.get((layer, arg), PROBES[arg])
    return (L.Input if layer == "Input" else getattr(L, layer))(**kwargs)


def test_every_keras_argument_has_a_probe_and_every_layer_is_listed():
    assert set(SIGNATURES) == set(REQUIRED) == set(IMPLEMENTED)
    missing = {arg for layer, args in SIGNATURES.items() for arg in args if arg not in REQUIRED[layer]} - set(PROBES)
    assert not missing, f"Keras arguments without a probe value here: {sorted(missing)}"


@pytest.mark.parametrize("layer,arg", CASES, ids=[f"{layer}-{arg}" for layer, arg in CASES])
def test_keras_argument_is_implemented_or_refused_by_name(layer, arg):
    try:
        construct(layer, arg)
    except (TypeError, ValueError) as exc:
        message = str(exc)
        assert re.search(rf"\b{arg}\b", message) and "\n" not in message, message
        assert arg not in IMPLEMENTED[layer], f"{layer}: {arg} is listed as implemented but refused: {message}"
        return
    assert arg in IMPLEMENTED[layer], f"{layer} accepted {arg}={PROBES[arg]!r} without it being implemented"
