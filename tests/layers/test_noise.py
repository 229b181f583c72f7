import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.layers import (
    LSTM, Embedding, GaussianDropout, GaussianNoise, SpatialDropout1D, deserialize_layer, serialize_layer,
)
from rnnkit.layers.base import shape_probe
from tests.layers._layers2 import INFO, assert_config_keys

LAYERS = {"spatial_dropout1d": lambda: SpatialDropout1D(0.3, seed=3), "gaussian_noise": lambda: GaussianNoise(0.2, seed=4),
          "gaussian_dropout": lambda: GaussianDropout(0.4)}


@pytest.mark.parametrize("case", sorted(LAYERS))
def test_noise_layers_are_the_identity_at_inference_and_under_shape_probe(case):
    layer = LAYERS[case]()
    x = torch.randn(4, 6, 5)
    assert layer(x) is x
    assert layer(x, training=False) is x
    with shape_probe():
        assert layer(x, training=True) is x
    assert not torch.equal(layer(x, training=True), x)


@pytest.mark.parametrize("case", sorted(LAYERS))
def test_noise_configs_have_keras_keys(case):
    layer = LAYERS[case]()
    assert_config_keys(layer, case)
    want = INFO["configs"][case]
    assert {k: layer.get_config()[k] for k in want if k not in ("dtype", "name")} == {
        k: v for k, v in want.items() if k not in ("dtype", "name")}
    assert serialize_layer(deserialize_layer(serialize_layer(layer)))["config"] == layer.get_config()


def test_spatial_dropout_drops_whole_channels_per_sample():
    layer = SpatialDropout1D(0.5, seed=7)
    x = torch.ones(64, 10, 8)
    y = layer(x, training=True)
    per_channel = y[:, :1, :]
    assert torch.equal(y, per_channel.expand_as(y))  # one draw per (sample, channel), for every step
    assert set(torch.unique(y).tolist()) == {0.0, 2.0}  # kept channels scaled by 1 / (1 - rate)
    dropped = (per_channel == 0).float().mean().item()
    assert 0.4 < dropped < 0.6
    assert not torch.equal(y[0], y[1]) or not torch.equal(y[1], y[2])  # samples differ
    with pytest.raises(ValueError, match=r"layer 'spatial_dropout1d.*' \(SpatialDropout1D\) expects inputs "
                                         r"\(batch, time, channels\), got shape \((None|4), 5\)"):
        SpatialDropout1D(0.5)(torch.ones(4, 5), training=True)


def test_seeds_repeat_their_draws_and_none_follows_the_global_generator():
    x = torch.ones(8, 5, 6)
    for make in (lambda s: SpatialDropout1D(0.5, seed=s), lambda s: GaussianNoise(0.5, seed=s),
                 lambda s: GaussianDropout(0.5, seed=s)):
        a, b = make(11), make(11)
        torch.manual_seed(0)
        ya = a(x, training=True)
        torch.manual_seed(1)  # a seeded layer ignores the global generator
        assert torch.equal(ya, b(x, training=True))
        assert not torch.equal(ya, a(x, training=True))  # the layer's generator moves on
        assert not torch.equal(make(12)(x, training=True), ya)
        torch.manual_seed(5)
        yc = make(None)(x, training=True)
        torch.manual_seed(5)
        assert torch.equal(make(None)(x, training=True), yc)


def test_gaussian_noise_and_dropout_statistics():
    x = torch.full((200, 50, 10), 2.0)
    noisy = GaussianNoise(0.3, seed=1)(x, training=True) - x
    assert abs(noisy.mean().item()) < 0.01 and abs(noisy.std().item() - 0.3) < 0.01
    scaled = GaussianDropout(0.2, seed=1)(x, training=True) / x
    assert abs(scaled.mean().item() - 1.0) < 0.01 and abs(scaled.std().item() - 0.5) < 0.01  # sqrt(0.2 / 0.8)


def test_noise_arguments_are_checked():
    with pytest.raises(ValueError, match=r"SpatialDropout1D: rate must be a number in \[0, 1\)"):
        SpatialDropout1D(1.0)
    with pytest.raises(ValueError, match=r"GaussianNoise: stddev must be a number in \[0, 1\]"):
        GaussianNoise(1.5)
    with pytest.raises(ValueError, match="GaussianDropout: rate"):
        GaussianDropout(-0.1)
    with pytest.raises(TypeError, match="GaussianNoise: seed must be an integer or None"):
        GaussianNoise(0.1, seed="x")


def test_noise_layers_pass_masks_and_train_in_a_sequential(tmp_path):
    ids = np.array([[1, 2, 3, 0], [4, 5, 0, 0]] * 4)
    model = rnnkit.Sequential([Embedding(8, 6, mask_zero=True, input_shape=(4,)), SpatialDropout1D(0.2, seed=1),
                               GaussianNoise(0.1, seed=2), GaussianDropout(0.1, seed=3), LSTM(3)])
    lstm = model.layers[-1]
    # the mask reaches the LSTM: its output is the output at the last real step
    direct = lstm(model.layers[0](torch.from_numpy(ids[:1, :3]))).detach().numpy()
    np.testing.assert_allclose(model.predict(ids)[:1], direct, atol=1e-6)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(ids, np.zeros((8, 3), "float32"), epochs=1, verbose=0)
    assert "spatial_dropout1d (Spatial" in model.summary_text() and "Total params: 168" in model.summary_text()
    model.save(tmp_path / "m.safetensors")
    again = rnnkit.load_model(tmp_path / "m.safetensors")
    assert again.layers[1].seed == 1 and again.layers[2].stddev == 0.1
    np.testing.assert_allclose(again.predict(ids), model.predict(ids), atol=1e-6)
