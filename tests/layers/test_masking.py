import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.layers import LSTM, Masking, deserialize_layer, serialize_layer
from tests.layers._layers2 import INFO, arr, assert_config_keys, close


@pytest.mark.parametrize("case,kw", [("masking", {}), ("masking_15", {"mask_value": 1.5})])
def test_masking_matches_keras(case, kw):
    layer = Masking(**kw)
    x = arr(f"{case}/x")
    close(layer(x), f"{case}/y")  # masked steps zeroed
    close(layer.compute_mask(torch.from_numpy(x), None), f"{case}/mask")  # any(x != mask_value, -1)
    assert_config_keys(layer, case)
    assert layer.get_config()["mask_value"] == INFO["configs"][case]["mask_value"]
    assert serialize_layer(deserialize_layer(serialize_layer(layer)))["config"] == layer.get_config()


def test_masking_refuses_a_non_number():
    with pytest.raises(TypeError, match="Masking: mask_value must be a number"):
        Masking(mask_value="pad")


def test_masking_then_lstm_skips_the_padded_steps(tmp_path):
    x = np.random.default_rng(0).standard_normal((3, 6, 2)).astype("float32")
    x[0, 4:] = 0.0
    model = rnnkit.Sequential([rnnkit.Input((6, 2)), Masking(), LSTM(4)])
    lstm = model.layers[-1]
    # the last real step's output: what the LSTM gives on the unpadded prefix
    np.testing.assert_allclose(model.predict(x)[0], lstm(torch.from_numpy(x[:1, :4])).detach().numpy()[0], atol=1e-6)
    assert "masking (Masking)" in model.summary_text()
    model.save(tmp_path / "m.safetensors")
    np.testing.assert_allclose(rnnkit.load_model(tmp_path / "m.safetensors").predict(x), model.predict(x), atol=1e-6)
