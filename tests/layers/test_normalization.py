import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import regularizers
from rnnkit.layers import (
    BatchNormalization, Dense, Embedding, GaussianNoise, LayerNormalization, Masking, Permute, Reshape, Softmax,
    SpatialDropout1D, deserialize_layer, serialize_layer,
)
from rnnkit.layers.base import shape_probe
from tests.layers._layers2 import INFO, arr, assert_config_keys, close, has

LN = {"ln": {}, "ln_axes": dict(axis=[1, 2]), "ln_nocenter": dict(center=False, epsilon=1e-5),
      "ln_noscale": dict(scale=False), "ln_rms": dict(rms_scaling=True), "ln_axis1": dict(axis=1)}
BN = {"bn": {}, "bn_m9": dict(momentum=0.9, epsilon=1e-2), "bn_axis1": dict(axis=1),
      "bn_nocenter": dict(center=False), "bn_noscale": dict(scale=False)}


def _weights(case):
    return [arr(f"{case}/w{i}") for i in range(4) if has(f"{case}/w{i}")]


def _x():
    return torch.from_numpy(arr("norm_in/x"))


@pytest.mark.filterwarnings("ignore:LayerNormalization. rms_scaling")
@pytest.mark.parametrize("case", sorted(LN))
def test_layer_normalization_matches_keras(case):
    layer = LayerNormalization(**LN[case])  # (rms_scaling warns as Keras does)
    assert_config_keys(layer, case + "_unbuilt")
    assert layer.get_config()["axis"] == INFO["configs"][case + "_unbuilt"]["axis"]
    layer.build_for((None, 5, 3))
    count, shapes = INFO["params"][case]
    assert layer.count_params() == count and [list(w.shape) for w in layer.get_weights()] == shapes
    layer.set_weights(_weights(case))
    close(layer(_x()), f"{case}/y")
    cfg = layer.get_config()
    want = INFO["configs"][case]
    for key in ("axis", "epsilon", "center", "scale", "rms_scaling", "beta_regularizer", "gamma_constraint"):
        assert cfg[key] == want[key], key  # built: axis becomes a list, as in Keras
    assert serialize_layer(deserialize_layer(serialize_layer(layer)))["config"] == cfg


def test_layer_normalization_arguments():
    with pytest.warns(UserWarning, match="rms_scaling=True is deprecated"):
        LayerNormalization(rms_scaling=True)
    with pytest.raises(ValueError, match="LayerNormalization: gamma_constraint= is not supported"):
        LayerNormalization(gamma_constraint="non_neg")
    with pytest.raises(TypeError, match="LayerNormalization: axis"):
        LayerNormalization(axis="last")
    with pytest.raises(ValueError, match=r"layer 'layer_normalization.*' \(LayerNormalization\): axis 3 is out of "
                                         r"bounds for input shape \(None, 5, 3\)"):
        LayerNormalization(axis=3).build_for((None, 5, 3))
    layer = LayerNormalization(gamma_regularizer=regularizers.l2(0.5))
    layer.build_for((None, 3))
    assert float(layer.regularization_loss().detach()) == pytest.approx(0.5 * 3)
    mask = torch.ones(4, 5, dtype=torch.bool)
    assert LayerNormalization().compute_mask(_x(), mask) is mask


@pytest.mark.parametrize("case", sorted(BN))
def test_batch_normalization_matches_keras(case):
    layer = BatchNormalization(**BN[case])
    layer.build_for((None, 5, 3))
    count, shapes, names, trainable = INFO["params"][case]
    assert layer.count_params() == count
    assert [list(w.shape) for w in layer.get_weights()] == shapes
    assert [n for n, _ in layer.named_parameters()] == names  # Keras's order: gamma, beta, moving_mean, moving_variance
    assert [p.requires_grad for p in layer.parameters()] == trainable
    layer.set_weights(_weights(case))
    close(layer(_x()), f"{case}/y_infer")  # a direct call is inference: the moving statistics
    close(layer(_x(), training=True), f"{case}/y_train")  # the batch's statistics ...
    close(layer.moving_mean, f"{case}/moving_mean")  # ... and one momentum step of the moving ones
    close(layer.moving_variance, f"{case}/moving_variance")
    assert_config_keys(layer, case)
    cfg, want = layer.get_config(), INFO["configs"][case]
    for key in ("axis", "momentum", "epsilon", "center", "scale", "synchronized", "renorm", "renorm_clipping",
                "renorm_momentum", "beta_regularizer", "gamma_constraint"):
        assert cfg[key] == want[key], key
    assert serialize_layer(deserialize_layer(serialize_layer(layer)))["config"] == cfg


def test_batch_normalization_masked_statistics_match_keras():
    # Keras 3 takes the batch statistics over the unmasked steps only
    layer = BatchNormalization()
    layer.build_for((None, 5, 3))
    layer.set_weights(_weights("bn"))
    close(layer(_x(), training=True, mask=torch.from_numpy(arr("norm_in/mask"))), "bn_masked/y_train")
    close(layer.moving_mean, "bn_masked/moving_mean")
    close(layer.moving_variance, "bn_masked/moving_variance")
    assert "one dimension less than the inputs" in INFO["errors"]["bn_mask_rank"]
    with pytest.raises(ValueError, match=r"layer 'batch_normalization' \(BatchNormalization\): the mask must have one "
                                         r"axis fewer than the inputs, got mask shape \(4, 5, 1\)"):
        layer(_x(), training=True, mask=torch.ones(4, 5, 1, dtype=torch.bool))


def test_frozen_batch_normalization_runs_in_inference_mode_and_keeps_its_statistics():
    layer = BatchNormalization()
    layer.build_for((None, 5, 3))
    layer.set_weights(_weights("bn"))
    layer.trainable = False
    close(layer(_x(), training=True), "bn_frozen/y_train")
    close(layer.moving_mean, "bn_frozen/moving_mean")
    layer.trainable = True  # unfreezing gives gamma and beta back their gradients, never the moving statistics
    assert [p.requires_grad for p in layer.parameters()] == [True, True, False, False]
    assert layer.count_params() == 12 and len(layer.trainable_weights) == 2 and len(layer.non_trainable_weights) == 2


def test_batch_normalization_does_not_update_under_shape_probe():
    layer = BatchNormalization()
    layer(_x())
    with shape_probe():
        layer(_x(), training=True)
    assert torch.equal(layer.moving_mean, torch.zeros(3)) and torch.equal(layer.moving_variance, torch.ones(3))


def test_batch_normalization_refuses_what_it_does_not_implement():
    for kw, what in ((dict(renorm=True), "renorm=True"), (dict(renorm_clipping={"rmax": 2}), "renorm_clipping="),
                     (dict(synchronized=True), "synchronized=True"), (dict(beta_constraint="non_neg"), "beta_constraint=")):
        with pytest.raises(ValueError, match=f"BatchNormalization: {what}"):
            BatchNormalization(**kw)
    with pytest.raises(TypeError, match="BatchNormalization: axis"):
        BatchNormalization(axis=[1, 2])
    with pytest.raises(ValueError, match="needs a known size on axis -1"):
        BatchNormalization().build_for((None, 5, None))


def _stack():
    return rnnkit.Sequential([
        rnnkit.Input((5, 3)), Masking(), LayerNormalization(), BatchNormalization(), SpatialDropout1D(0.2),
        GaussianNoise(0.1), Reshape((3, 5)), Permute((2, 1)), Dense(4), Softmax(),
    ])


def test_sequential_counts_like_keras():
    model = _stack()
    want = INFO["params"]["sequential"]
    assert model.count_params() == want["total"]
    assert model.output_shape == tuple(want["output_shape"])
    text = model.summary_text()
    assert f"Trainable params: {want['trainable']:,}" in text
    assert f"Non-trainable params: {want['non_trainable']:,}" in text


def test_training_updates_the_moving_statistics_and_the_model_saves_them(tmp_path):
    x = (np.random.default_rng(0).standard_normal((16, 5, 3)) * 2 + 3).astype("float32")
    y = np.random.default_rng(1).integers(0, 4, (16, 5))
    model = _stack()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    bn = model.layers[2]
    model.train_on_batch(x, y)
    # the moving mean moved by one momentum step, and only by it (the optimizer never sees it)
    seen = model.layers[1](torch.from_numpy(x))
    np.testing.assert_allclose(bn.moving_mean.detach().numpy(), 0.01 * seen.mean(dim=(0, 1)).detach().numpy(),
                               atol=1e-6)
    assert not torch.equal(bn.moving_variance, torch.ones(3))
    before = model.predict(x)
    assert np.allclose(model.predict(x), before)  # inference changes nothing
    model.save(tmp_path / "m.safetensors")
    again = rnnkit.load_model(tmp_path / "m.safetensors")
    loaded = again.layers[2]
    assert torch.equal(loaded.moving_mean, bn.moving_mean) and torch.equal(loaded.moving_variance, bn.moving_variance)
    assert [p.requires_grad for p in loaded.parameters()] == [True, True, False, False]
    np.testing.assert_allclose(again.predict(x), before, atol=1e-6)
    model.save_weights(tmp_path / "w.safetensors")
    rnnkit.layers.clear_session()  # the same layer names, which the weights file is keyed by
    fresh = _stack()
    fresh.load_weights(tmp_path / "w.safetensors")
    assert torch.equal(fresh.layers[2].moving_variance, bn.moving_variance)


def test_embedding_mask_reaches_batch_normalization_in_a_sequential():
    ids = np.array([[1, 2, 0, 0], [3, 4, 5, 0]])
    model = rnnkit.Sequential([Embedding(8, 3, mask_zero=True, input_shape=(4,)), BatchNormalization()])
    emb, bn = model.layers
    model(ids, training=True)
    vectors = emb(torch.from_numpy(ids))[torch.from_numpy(ids != 0)]
    np.testing.assert_allclose(bn.moving_mean.detach().numpy(), 0.01 * vectors.mean(0).detach().numpy(), atol=1e-6)


def test_keras_model_file_of_these_layers_loads_with_its_moving_statistics():
    # a Keras 3 Sequential (Masking, LayerNormalization, BatchNormalization trained two epochs, the noise
    # layers, Reshape, Permute, Dense, Softmax) saved as .keras by the fixture script
    from tests.conftest import FIXTURES

    folder = FIXTURES / "keras" / "layers2"
    model = rnnkit.load_model(folder / "layers2_model.keras")
    want = np.load(folder / "layers2_model.npz")
    np.testing.assert_allclose(model.layers[2].moving_mean.detach().numpy(), want["moving_mean"], atol=1e-7)
    np.testing.assert_allclose(model.predict(want["x"]), want["y"], atol=1e-5)
    assert model.count_params() == INFO["params"]["sequential"]["total"]


def test_freezing_and_unfreezing_a_model_keeps_the_moving_statistics_non_trainable():
    model = rnnkit.Sequential([rnnkit.Input((5, 3)), BatchNormalization(), Dense(2)])
    model.trainable = False
    model.trainable = True
    assert [p.requires_grad for p in model.layers[0].parameters()] == [True, True, False, False]
