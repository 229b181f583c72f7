"""Every layer against real Keras 3: same weights in, same outputs out.

The fixtures (``tests/fixtures/keras/layers.json`` + ``layers/<case>.npz``) were made
by ``tests/fixtures/keras/make_keras_fixtures.py`` with Keras 3 on TensorFlow; each
holds a layer config, random weights (biases included), inputs, masks, initial
states and Keras's outputs. Keras is not needed to run this test.
"""
import json

import numpy as np
import pytest
import torch

from rnnkit import layers as L
from rnnkit.layers import Bidirectional, TimeDistributed

from ..conftest import FIXTURES

KERAS = FIXTURES / "keras"
CASES = json.loads((KERAS / "layers.json").read_text())


def build(case):
    cls = getattr(L, case["class"])
    if case["inner"]:
        inner = getattr(L, case["inner"]["class"])(**case["inner"]["config"])
        return cls(inner, **case["config"])
    return cls(**case["config"])


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_layer_matches_keras(case):
    arrays = np.load(KERAS / "layers" / f"{case['case']}.npz", allow_pickle=False)
    layer = build(case)
    x = arrays[case["inputs"]["x"]]
    kwargs = {"training": False}
    if case["inputs"].get("mask"):
        kwargs["mask"] = arrays[case["inputs"]["mask"]]
    if case["inputs"].get("initial_state"):
        kwargs["initial_state"] = [arrays[k] for k in case["inputs"]["initial_state"]]
    for k, v in (case.get("call_kwargs") or {}).items():
        kwargs[k] = v
    layer(x, **kwargs)  # build
    weights = [arrays[k] for k in case["weights"]]
    assert [tuple(w.shape) for w in layer.get_weights()] == [tuple(s) for s in case["weight_shapes"]]
    layer.set_weights(weights)
    assert layer.count_params() == case["count_params"]
    with torch.no_grad():
        out = layer(x, **kwargs)
    outs = out if isinstance(out, list) else [out]
    assert len(outs) == len(case["outputs"])
    for got, key in zip(outs, case["outputs"]):
        np.testing.assert_allclose(got.numpy(), arrays[key], rtol=1e-5, atol=1e-6, err_msg=f"{case['case']}:{key}")
    # output shape with the batch axis as None, as Keras reports it
    shapes = layer.output_shape if isinstance(layer.output_shape, list) else [layer.output_shape]
    assert [tuple(s[1:]) for s in shapes] == [tuple(s[1:]) for s in case["output_shapes"]]
    if case.get("output_mask"):
        mask = layer.compute_mask(torch.as_tensor(x), kwargs.get("mask") if "mask" not in kwargs else torch.as_tensor(kwargs["mask"]))
        mask = mask[0] if isinstance(mask, list) else mask
        np.testing.assert_array_equal(mask.numpy(), arrays[case["output_mask"]])
    # get_weights gives back exactly what was set (Keras layout, gate order)
    for a, b in zip(layer.get_weights(), weights):
        np.testing.assert_allclose(a, b, rtol=0, atol=0)
