"""The Keras 3 cases of ``tests/fixtures/keras/layers_args`` (made by its
``make_layers_args_fixtures.py``): build rnnkit's layer from the case's config, load
Keras's weights, run the case's input (and mask) and compare with Keras's output."""
import json

import numpy as np
import torch

from rnnkit import layers as L

from ..conftest import FIXTURES

HERE = FIXTURES / "keras" / "layers_args"
_META = json.loads((HERE / "cases.json").read_text())
ARRAYS = np.load(HERE / "cases.npz")
SIGNATURES = json.loads((HERE / "signatures.json").read_text())["layers"]


def cases(prefix: str) -> list[dict]:
    """The cases whose name starts with ``prefix`` (a layer class name)."""
    found = [c for c in _META["cases"] if c["case"].startswith(prefix)]
    assert found, f"no Keras case starts with {prefix!r}"
    return found


def run(case, layer=None, **call_kwargs):
    """``(rnnkit output, Keras output, layer)`` for ``case`` (``layer`` defaults to one built from its config)."""
    layer = layer or getattr(L, case["class"])(**case["config"])
    x = ARRAYS[case["x"]]
    if case["mask"]:
        call_kwargs.setdefault("mask", ARRAYS[case["mask"]])
    layer(x, **call_kwargs)
    layer.set_weights([ARRAYS[k] for k in case["weights"]])
    with torch.no_grad():
        y = layer(x, **call_kwargs).numpy()
    want = ARRAYS[case["y"]]
    assert y.shape == want.shape, case["case"]
    assert tuple(layer.compute_output_shape((None,) + x.shape[1:]))[1:] == want.shape[1:], case["case"]
    return y, want, layer


def assert_matches(case, **call_kwargs):
    y, want, layer = run(case, **call_kwargs)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5, err_msg=case["case"])
    return layer
