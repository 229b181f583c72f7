"""Pooling layers against Keras 3: data_format, keepdims, masks (also given by position)."""
import numpy as np
import pytest
import torch

from rnnkit.layers import AveragePooling1D, GlobalAveragePooling1D, GlobalMaxPooling1D, MaxPooling1D

from ._keras_cases import ARRAYS, assert_matches, cases


@pytest.mark.parametrize("case", cases("MaxPooling1D") + cases("AveragePooling1D"), ids=lambda c: c["case"])
def test_windowed_pooling_channels_first_matches_keras(case):
    layer = assert_matches(case)
    assert layer.get_config()["data_format"] == "channels_first"


@pytest.mark.parametrize("case", cases("GlobalMaxPooling1D") + cases("GlobalAveragePooling1D"), ids=lambda c: c["case"])
def test_global_pooling_data_format_keepdims_and_masks_match_keras(case):
    layer = assert_matches(case)
    cfg = layer.get_config()
    assert (cfg["data_format"], cfg["keepdims"]) == (case["config"]["data_format"], case["config"]["keepdims"])


@pytest.mark.parametrize("case", [c for c in cases("GlobalAveragePooling1D") if c["mask"]], ids=lambda c: c["case"])
def test_global_average_pooling_takes_its_mask_by_position(case):
    layer = GlobalAveragePooling1D(**case["config"])
    x, mask = ARRAYS[case["x"]], ARRAYS[case["mask"]]
    np.testing.assert_allclose(layer(x, mask).numpy(), ARRAYS[case["y"]], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer(torch.as_tensor(x), torch.as_tensor(mask)).numpy(), ARRAYS[case["y"]],
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"GlobalAveragePooling1D\): mask of shape \(2, 3\) does not fit"):
        layer(x, mask[:, :3])


def test_channels_first_layers_check_the_channel_axis_and_take_any_length():
    pool = MaxPooling1D(2, data_format="channels_first")
    assert pool(np.zeros((1, 3, 8), "float32")).shape == (1, 3, 4)
    assert pool(np.zeros((1, 3, 10), "float32")).shape == (1, 3, 5)  # another length is fine
    with pytest.raises(ValueError, match=r"expected input shape \(None, 3, 8\), got \(1, 4, 8\)"):
        pool(np.zeros((1, 4, 8), "float32"))
    glob = GlobalMaxPooling1D(data_format="channels_first", keepdims=True)
    assert glob(np.zeros((2, 3, 5), "float32")).shape == (2, 3, 1) and glob.output_shape == (None, 3, 1)


@pytest.mark.parametrize("make,message", [
    (lambda: MaxPooling1D(2.5), "MaxPooling1D: pool_size must be a positive integer, got 2.5"),
    (lambda: MaxPooling1D(0), "pool_size must be a positive integer, got 0"),
    (lambda: MaxPooling1D((2, 2)), r"pool_size must be an integer or a tuple of 1 integer, got \(2, 2\)"),
    (lambda: AveragePooling1D(2, strides=0), "AveragePooling1D: strides must be a positive integer, got 0"),
    (lambda: MaxPooling1D(2, padding="causal"), "MaxPooling1D: padding must be one of 'valid', 'same', got 'causal'"),
    (lambda: MaxPooling1D(2, data_format="nhwc"), "data_format must be one of 'channels_last', 'channels_first'"),
    (lambda: GlobalMaxPooling1D(keepdims="yes"), "GlobalMaxPooling1D: keepdims must be True or False"),
    (lambda: GlobalAveragePooling1D(data_format="channels_middle"), "GlobalAveragePooling1D: data_format must be"),
])
def test_bad_pooling_arguments_are_refused_with_their_name(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_pooling_reads_keras_spellings():
    assert MaxPooling1D((3,), strides=(1,), padding="SAME").get_config()["padding"] == "same"
    assert MaxPooling1D(data_format=None).data_format == "channels_last"
    with pytest.raises(TypeError):
        AveragePooling1D()  # pool_size has no default in Keras's AveragePooling1D
