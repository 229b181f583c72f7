"""The Keras fixtures of the merging, reshaping, masking, activations, normalization and noise
layers (made by tests/fixtures/keras/layers2/make_layers2_fixtures.py)."""
import json

import numpy as np
import torch

from tests.conftest import FIXTURES

_DIR = FIXTURES / "keras" / "layers2"
ARRAYS = dict(np.load(_DIR / "layers2.npz"))
INFO = json.loads((_DIR / "layers2.json").read_text())
# Keras's base config keys that rnnkit's layers do not have (the dtype policy)
_NOT_RNNKIT = {"dtype", "dtype_policy"}


def arr(key: str) -> np.ndarray:
    return ARRAYS[key]


def has(key: str) -> bool:
    return key in ARRAYS


def close(got, key: str, atol: float = 1e-5) -> None:
    want = ARRAYS[key]
    got = got.detach().cpu().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    assert got.shape == want.shape, (key, got.shape, want.shape)
    if want.dtype == bool:
        assert (got == want).all(), key
    else:
        np.testing.assert_allclose(got, want, atol=atol, rtol=1e-5, err_msg=key)


def assert_config_keys(layer, case: str) -> None:
    want = set(INFO["configs"][case]) - _NOT_RNNKIT
    assert set(layer.get_config()) - {"batch_input_shape"} == want, case
