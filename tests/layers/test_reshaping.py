import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.layers import Dense, Permute, Reshape, deserialize_layer, serialize_layer
from tests.layers._layers2 import INFO, arr, assert_config_keys, close

RESHAPES = {"reshape_43": (4, 3), "reshape_m1": (-1, 2), "reshape_flat": (12,), "reshape_3d": (2, 3, 2)}


@pytest.mark.parametrize("case", sorted(RESHAPES))
def test_reshape_matches_keras(case):
    layer = Reshape(RESHAPES[case])
    close(layer(arr("reshape_in/x")), f"{case}/y")
    assert layer.compute_output_shape((None, 3, 4)) == tuple(INFO["shapes"][case])
    assert_config_keys(layer, case)
    assert layer.get_config()["target_shape"] == INFO["configs"][case]["target_shape"]
    assert serialize_layer(deserialize_layer(serialize_layer(layer)))["config"] == layer.get_config()


def test_reshape_unknown_axes_and_any_batch():
    assert Reshape((-1, 2)).compute_output_shape((None, None, 4)) == tuple(INFO["shapes"]["reshape_none"])
    layer = Reshape((-1, 2))
    assert tuple(layer(torch.zeros(5, 3, 4)).shape) == (5, 6, 2)
    assert tuple(layer(torch.zeros(1, 7, 4)).shape) == (1, 14, 2)  # a built Reshape takes other lengths


def test_reshape_errors():
    assert "total size of the tensor must be unchanged" in INFO["errors"]["reshape_size"]
    with pytest.raises(ValueError, match=r"layer 'reshape' \(Reshape\) cannot reshape samples of shape \(3, 4\) "
                                         r"\(12 values\) to target_shape \(5, 2\) \(10 values\)"):
        Reshape((5, 2))(arr("reshape_in/x"))
    with pytest.raises(ValueError, match="not a multiple of 5"):
        Reshape((-1, 5))(arr("reshape_in/x"))
    assert "at most one unknown dimension" in INFO["errors"]["reshape_two_unknown"]
    with pytest.raises(ValueError, match=r"Reshape: target_shape may have at most one unknown axis \(-1\)"):
        Reshape((-1, -1))
    with pytest.raises(ValueError, match="non-negative"):
        Reshape((-2, 6))
    with pytest.raises(TypeError, match="integers"):
        Reshape((None, 6))


PERMUTES = {"permute_21": ((2, 1), "x"), "permute_312": ((3, 1, 2), "x4")}


@pytest.mark.parametrize("case", sorted(PERMUTES))
def test_permute_matches_keras(case):
    dims, key = PERMUTES[case]
    x = arr(f"reshape_in/{key}")
    layer = Permute(dims)
    close(layer(x), f"{case}/y")
    assert layer.compute_output_shape((None,) + x.shape[1:]) == tuple(INFO["shapes"][case])
    assert_config_keys(layer, case)
    assert layer.get_config()["dims"] == INFO["configs"][case]["dims"]


def test_permute_errors():
    assert "consecutive and start from 1" in INFO["errors"]["permute_bad"]
    with pytest.raises(ValueError, match=r"Permute: dims must be a permutation of 1..2"):
        Permute((0, 1))
    with pytest.raises(ValueError, match=r"layer 'permute.*' \(Permute\) with dims=\(2, 1\) expects inputs of rank 3, "
                                         r"got shape \((None|2), 3\)"):
        Permute((2, 1))(torch.zeros(2, 3))


def test_sequential_with_reshape_and_permute_summarizes_saves_and_loads(tmp_path):
    model = rnnkit.Sequential([rnnkit.Input((3, 4)), Reshape((-1, 2)), Permute((2, 1)), Dense(5)])
    assert model.output_shape == (None, 2, 5)
    text = model.summary_text()
    assert "(None, 6, 2)" in text and "(None, 2, 6)" in text and "Total params: 35" in text
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype("float32")
    model.save(tmp_path / "m.safetensors")
    again = rnnkit.load_model(tmp_path / "m.safetensors")
    np.testing.assert_allclose(again.predict(x), model.predict(x), atol=1e-6)
    np.testing.assert_allclose(model.predict(x), np.transpose(x.reshape(2, 6, 2), (0, 2, 1)) @ model.layers[-1].get_weights()[0]
                               + model.layers[-1].get_weights()[1], atol=1e-5)
