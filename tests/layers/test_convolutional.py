"""Conv1D and the pooling layers: output lengths, parameter counts, values."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnkit.layers import AveragePooling1D, Conv1D, GlobalAveragePooling1D, GlobalMaxPooling1D, MaxPooling1D

from ._keras_cases import ARRAYS, assert_matches, cases


def reference_conv(x, kernel, bias, stride, dilation, left, right):
    """Direct (slow) definition: y[t, f] = sum_k sum_c x[t*s + k*d - left, c] * kernel[k, c, f] + b."""
    b, t, c = x.shape
    k = kernel.shape[0]
    xp = np.concatenate([np.zeros((b, left, c)), x, np.zeros((b, right, c))], axis=1)
    span = (k - 1) * dilation + 1
    n = (xp.shape[1] - span) // stride + 1
    out = np.zeros((b, n, kernel.shape[2]))
    for i in range(n):
        for j in range(k):
            out[:, i] += xp[:, i * stride + j * dilation] @ kernel[j]
    return out + bias


@pytest.mark.parametrize(
    "padding,strides,dilation,expected_len",
    [("valid", 1, 1, 29), ("same", 1, 1, 33), ("causal", 1, 1, 33), ("valid", 2, 1, 15), ("same", 2, 1, 17),
     ("valid", 1, 2, 25), ("causal", 1, 3, 33)],
)
def test_conv1d_lengths_and_values(padding, strides, dilation, expected_len):
    conv = Conv1D(6, 5, strides=strides, padding=padding, dilation_rate=dilation)
    x = np.random.rand(2, 33, 4).astype("float32")
    y = conv(x).detach().numpy()
    assert y.shape == (2, expected_len, 6) and conv.output_shape == (None, expected_len, 6)
    kernel, bias = conv.get_weights()
    bias = np.random.rand(6).astype("float32")
    conv.set_weights([kernel, bias])
    y = conv(x).detach().numpy()
    span = 4 * dilation + 1
    if padding == "causal":
        left, right = span - 1, 0
    elif padding == "same":
        total = max((int(np.ceil(33 / strides)) - 1) * strides + span - 33, 0)
        left, right = total // 2, total - total // 2
    else:
        left = right = 0
    np.testing.assert_allclose(y, reference_conv(x, kernel, bias, strides, dilation, left, right), rtol=1e-4, atol=1e-5)


def test_conv1d_param_count_and_short_input_error():
    conv = Conv1D(56, 5, activation="relu", input_shape=(33, 42))
    conv(np.zeros((1, 33, 42), "float32"))
    assert conv.count_params() == 5 * 42 * 56 + 56 == 11816
    with pytest.raises(ValueError, match="shorter than the kernel span"):
        conv(np.zeros((1, 3, 42), "float32"))


@pytest.mark.parametrize("pool,strides,padding,expected", [(4, None, "valid", 7), (2, 1, "valid", 28), (3, 2, "same", 15), (2, None, "same", 15)])
def test_pooling_lengths(pool, strides, padding, expected):
    x = torch.randn(2, 29, 3)
    for cls in (MaxPooling1D, AveragePooling1D):
        layer = cls(pool_size=pool, strides=strides, padding=padding)
        assert layer(x).shape == (2, expected, 3) and layer.output_shape == (None, expected, 3)
        assert layer.count_params() == 0


def test_pooling_values_same_padding_ignores_padding():
    x = torch.tensor([[[1.0], [-2.0], [3.0], [-4.0], [-5.0]]])
    np.testing.assert_allclose(MaxPooling1D(2, padding="same")(x).numpy().ravel(), [1, 3, -5])
    np.testing.assert_allclose(AveragePooling1D(2, padding="same")(x).numpy().ravel(), [-0.5, -0.5, -5])
    np.testing.assert_allclose(AveragePooling1D(2)(x).numpy().ravel(), [-0.5, -0.5])


def test_global_pooling_with_and_without_mask():
    x = torch.tensor([[[1.0, 2.0], [3.0, -1.0], [100.0, 100.0]]])
    mask = torch.tensor([[True, True, False]])
    torch.testing.assert_close(GlobalAveragePooling1D()(x), x.mean(1))
    torch.testing.assert_close(GlobalAveragePooling1D()(x, mask=mask), torch.tensor([[2.0, 0.5]]))
    torch.testing.assert_close(GlobalMaxPooling1D()(x), torch.tensor([[100.0, 100.0]]))
    assert GlobalMaxPooling1D(keepdims=True)(x).shape == (1, 1, 2)


@pytest.mark.parametrize("padding,strides,dilation", [("valid", 1, 1), ("same", 2, 1), ("causal", 1, 2)])
def test_conv1d_and_pooling_gradients_match_torch_channels_first_ops(padding, strides, dilation):
    # The layers run as channels-last 2-D ops; values and gradients must be those of the
    # plain conv1d / max_pool1d / avg_pool1d on the transposed input.
    torch.manual_seed(0)
    conv = Conv1D(6, 3, strides=strides, padding=padding, dilation_rate=dilation, activation="relu")
    x = torch.randn(3, 17, 4, requires_grad=True)
    conv(x)
    x_ref = x.detach().clone().requires_grad_()
    kernel = torch.tensor(conv.get_weights()[0]).permute(2, 1, 0).requires_grad_()
    xt = x_ref.transpose(1, 2)
    span = 2 * dilation + 1
    if padding == "causal":
        xt = F.pad(xt, (span - 1, 0))
    elif padding == "same":
        total = max((-(-17 // strides) - 1) * strides + span - 17, 0)
        xt = F.pad(xt, (total // 2, total - total // 2))
    for pool in (MaxPooling1D(2), AveragePooling1D(2)):
        out = pool(conv(x))
        assert out.is_contiguous()  # what the next layer (an RNN) reads without a copy
        y_ref = F.relu(F.conv1d(xt, kernel, conv.bias, strides, 0, dilation))
        y_ref = (F.max_pool1d if isinstance(pool, MaxPooling1D) else F.avg_pool1d)(y_ref, 2).transpose(1, 2)
        torch.testing.assert_close(out, y_ref, rtol=1e-5, atol=1e-6)
        g = torch.randn_like(out)
        grads = torch.autograd.grad(out, [x, conv.kernel, conv.bias], g)
        ref = torch.autograd.grad(y_ref, [x_ref, kernel, conv.bias], g)
        for a, b in zip(grads, ref):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", [c for c in cases("Conv1D") if "activity_regularizer" not in c],
                         ids=lambda c: c["case"])
def test_conv1d_groups_dilation_causal_strides_and_channels_first_match_keras(case):
    layer = assert_matches(case)
    cfg = layer.get_config()
    for key in ("groups", "dilation_rate", "strides", "padding", "data_format"):
        if key in case["config"]:
            assert cfg[key] == case["config"][key]
    assert [w.shape for w in layer.get_weights()] == [ARRAYS[k].shape for k in case["weights"]]


def test_conv1d_groups_is_torch_grouped_convolution_with_keras_weight_layout():
    conv = Conv1D(6, 3, groups=3)
    x = torch.randn(2, 9, 6)
    y = conv(x)
    kernel, bias = conv.get_weights()
    assert kernel.shape == (3, 2, 6) and conv.count_params() == 3 * 2 * 6 + 6
    want = F.conv1d(x.transpose(1, 2), torch.tensor(kernel).permute(2, 1, 0), torch.tensor(bias), groups=3)
    torch.testing.assert_close(y, want.transpose(1, 2), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="the input's 5 channels are not divisible by groups=3"):
        Conv1D(6, 3, groups=3)(torch.randn(1, 9, 5))


@pytest.mark.parametrize("make,message", [
    (lambda: Conv1D(2.5, 3), "Conv1D: filters must be a positive integer, got 2.5"),
    (lambda: Conv1D(True, 3), "filters must be a positive integer, got True"),
    (lambda: Conv1D(4, 0), "kernel_size must be a positive integer, got 0"),
    (lambda: Conv1D(4, (3, 2)), r"kernel_size must be an integer or a tuple of 1 integer"),
    (lambda: Conv1D(4, 3, strides=0), "strides must be a positive integer, got 0"),
    (lambda: Conv1D(4, 3, groups=3), "filters=4 is not divisible by groups=3"),
    (lambda: Conv1D(4, 3, strides=2, dilation_rate=2), "strides > 1 together with dilation_rate > 1"),
    (lambda: Conv1D(4, 3, padding="full"), "padding must be one of 'valid', 'same', 'causal', got 'full'"),
    (lambda: Conv1D(4, 3, lora_alpha=2), "Conv1D: lora_alpha= is not supported"),
    (lambda: Conv1D(4, 3, lora_rank=2), "Conv1D: lora_rank= is not supported"),
])
def test_bad_conv1d_arguments_are_refused_with_their_name(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_conv1d_activation_can_be_reassigned_and_channels_first_checks_channels():
    conv = Conv1D(3, 2, activation="relu", data_format="channels_first")
    x = torch.randn(2, 4, 6)
    assert (conv(x) >= 0).all() and conv.output_shape == (None, 3, 5)
    conv.activation = None
    assert (conv(x) < 0).any() and conv.get_config()["activation"] == "linear"
    assert conv(torch.randn(2, 4, 9)).shape == (2, 3, 8)  # any length
    with pytest.raises(ValueError, match=r"expected input shape \(None, 4, 6\), got \(2, 6, 4\)"):
        conv(torch.randn(2, 6, 4))
