import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.layers import Dense, Embedding, Softmax, deserialize_layer, serialize_layer
from tests.layers._layers2 import INFO, arr, assert_config_keys, close


def _x():
    return torch.from_numpy(arr("softmax_in/x"))


def test_softmax_matches_keras():
    close(Softmax()(_x()), "softmax/y")
    close(Softmax(axis=1)(_x()), "softmax_axis1/y")
    close(Softmax(axis=(1, 2))(_x()), "softmax_axes/y")
    assert_config_keys(Softmax(), "softmax")
    assert Softmax(axis=(1, 2)).get_config()["axis"] == INFO["configs"]["softmax_axes"]["axis"]
    layer = Softmax(axis=(1, 2))
    assert serialize_layer(deserialize_layer(serialize_layer(layer)))["config"] == layer.get_config()


def test_softmax_masks_as_keras():
    # masked positions get -1e9 before and 0 after: a fully masked row is all zeros
    mask = torch.from_numpy(arr("softmax_in/mask"))
    close(Softmax()(_x(), mask=mask), "softmax_masked/y")
    close(Softmax()(_x(), mask=torch.from_numpy(arr("softmax_in/mask_b"))), "softmax_masked_b/y")  # broadcast
    close(Softmax(axis=1)(_x(), mask=mask), "softmax_masked_axis1/y")
    assert torch.equal(Softmax().compute_mask(_x(), mask), mask)  # the mask passes through


def test_softmax_mask_must_broadcast_from_the_right():
    # As Keras: a (batch, time) mask does not broadcast to (batch, time, features).
    assert "must be broadcastable" in INFO["errors"]["softmax_mask_shape"]
    with pytest.raises(ValueError, match=r"layer 'softmax' \(Softmax\): the mask must broadcast to the inputs .* "
                                         r"got mask shape \(2, 3\) for inputs \(2, 3, 4\)"):
        Softmax()(_x(), mask=torch.from_numpy(arr("softmax_in/mask"))[:, :, 0])
    with pytest.raises(TypeError, match="Softmax: axis"):
        Softmax(axis="last")


def test_sequential_with_softmax_summarizes_saves_and_loads(tmp_path):
    model = rnnkit.Sequential([Embedding(10, 4, input_shape=(3,)), Dense(5), Softmax()])
    x = np.array([[1, 2, 3], [4, 5, 6]])
    y = model.predict(x)
    np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-6)
    assert "softmax (Softmax)" in model.summary_text()
    model.save(tmp_path / "m.safetensors")
    np.testing.assert_allclose(rnnkit.load_model(tmp_path / "m.safetensors").predict(x), y, atol=1e-6)


def test_a_time_mask_reaching_softmax_is_refused_as_in_keras():
    # Keras 3 too: Embedding(mask_zero=True) -> Dense -> Softmax fails, the (batch, time) mask
    # does not broadcast to (batch, time, features) from the right
    model = rnnkit.Sequential([Embedding(10, 4, mask_zero=True, input_shape=(3,)), Dense(5), Softmax()])
    with pytest.raises(ValueError, match=r"got mask shape \(1, 3\) for inputs \(1, 3, 5\)"):
        model.predict(np.array([[1, 2, 0]]))
