"""1-D convolution over time, as ``keras.layers.Conv1D``."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .. import activations, initializers, regularizers
from . import _args
from ._args import ActivationAttributes, ActivityRegularized, Constrained, OneInput
from .base import Layer, format_shape


def conv_output_length(length, kernel, padding, stride, dilation=1):
    """Output length of a 1-D convolution or pooling window (Keras's rule)."""
    if length is None:
        return None
    if padding in ("same", "causal"):
        return -(-length // stride)
    span = (kernel - 1) * dilation + 1
    return max((length - span) // stride + 1, 0)


def same_padding(length: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's "same" padding (extra on the right) for an input of ``length``."""
    span = (kernel - 1) * dilation + 1
    out = math.ceil(length / stride)
    total = max((out - 1) * stride + span - length, 0)
    return total // 2, total - total // 2


def as_image(x: torch.Tensor) -> torch.Tensor:
    """A ``(batch, time, channels)`` tensor as a ``(batch, channels, 1, time)`` view of the same memory.

    That view is an image in channels-last layout, which the 2-D convolution and pooling
    kernels (oneDNN on CPU, cuDNN) read and write as is. ``conv1d``/``max_pool1d`` on a
    transposed ``(batch, channels, time)`` view copy the input in (and its gradient out)
    instead: on the seed's Conv1D model those copies cost more than the pooling itself."""
    return x.unsqueeze(1).permute(0, 3, 1, 2)


def from_image(y: torch.Tensor) -> torch.Tensor:
    """Inverse of `as_image`: ``(batch, channels, 1, time)`` -> ``(batch, time, channels)``
    (contiguous when ``y`` is channels-last, as the kernels return it)."""
    return y.permute(0, 2, 3, 1).squeeze(1)


def pad_time(x: torch.Tensor, left: int, right: int, value: float = 0.0) -> torch.Tensor:
    """``(batch, time, channels)`` padded along time."""
    return F.pad(x, (0, 0, left, right), value=value) if left or right else x


def check_channels(layer, got) -> None:
    """A built temporal layer's input check: rank 3 and the same channels (axis 1 for
    ``channels_first``, else the last); the time axis may vary, as the base rule allows."""
    expected = layer._build_input_shape
    if expected is None or isinstance(got, list):
        return
    got = tuple(got)
    axis = 1 if layer.data_format == "channels_first" else -1
    if len(got) != len(expected) or (expected[axis] is not None and got[axis] is not None
                                     and expected[axis] != got[axis]):
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) expected input shape "
                         f"{format_shape(expected)}, got {format_shape(got)}")


class Conv1D(ActivationAttributes, ActivityRegularized, Constrained, OneInput, Layer):
    """Temporal convolution: ``(batch, time, channels)`` -> ``(batch, new_time, filters)``.

    Args:
        filters: output channels (a positive integer, divisible by ``groups``).
        kernel_size: window length (an int or a 1-tuple).
        strides: step between windows (default 1).
        padding: ``"valid"`` (no padding), ``"same"`` (output length ``ceil(time / strides)``)
            or ``"causal"`` (left padding, so output t sees inputs <= t).
        data_format: ``"channels_last"`` (default, also for None): ``(batch, time, channels)``;
            ``"channels_first"``: ``(batch, channels, time)`` in and ``(batch, filters, new_time)`` out.
        dilation_rate: spacing between kernel taps (default 1; not with strides > 1, as Keras).
        groups: split the channels into this many groups convolved separately (default 1);
            ``channels`` and ``filters`` must both be divisible by it.
        activation, use_bias, kernel_initializer, bias_initializer, regularizers,
            activity_regularizer: as Dense.
        kernel_constraint, bias_constraint: as Dense; ``axis`` counts in Keras's kernel layout.
        lora_rank, lora_alpha: Keras's; refused unless None.

    Weights: ``get_weights()`` gives Keras's ``kernel (kernel_size, channels / groups, filters)``
    and ``bias (filters,)``; the ``kernel`` parameter itself is stored as ``conv1d`` reads it,
    ``(filters, channels / groups, kernel_size)``, since a permuted view would cost a copy
    forward and backward on every step. Runs as a 2-D convolution on a channels-last view of
    the input (see `as_image`), so neither the input nor the output is copied to another layout.
    """

    _keras_layouts = {"kernel": (2, 1, 0)}  # the parameter is (filters, channels, kernel_size)

    def __init__(
        self,
        filters: int,
        kernel_size,
        strides=1,
        padding: str = "valid",
        data_format=None,
        dilation_rate=1,
        groups: int = 1,
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        lora_rank=None,
        lora_alpha=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _args.refuse("Conv1D", lora_rank=lora_rank, lora_alpha=lora_alpha)
        self.filters = _args.positive_int("Conv1D", "filters", filters)
        self.kernel_size = _args.positive_int_1d("Conv1D", "kernel_size", kernel_size)
        self.strides = _args.positive_int_1d("Conv1D", "strides", strides)
        self.dilation_rate = _args.positive_int_1d("Conv1D", "dilation_rate", dilation_rate)
        self.groups = _args.positive_int("Conv1D", "groups", groups)
        if self.filters % self.groups:
            raise ValueError(f"Conv1D: filters={self.filters} is not divisible by groups={self.groups}")
        self.padding = _args.choice("Conv1D", "padding", padding, ("valid", "same", "causal"))
        self.data_format = _args.data_format("Conv1D", data_format)
        if self.strides > 1 and self.dilation_rate > 1:
            raise ValueError("Conv1D: strides > 1 together with dilation_rate > 1 is not supported (as in Keras)")
        self.activation = activation
        self.use_bias = _args.flag("Conv1D", "use_bias", use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self._regularizers = [
            ("kernel", regularizers.get(kernel_regularizer)),
            ("bias", regularizers.get(bias_regularizer)),
        ]
        self._init_activity(activity_regularizer)
        self._init_constraints(kernel=kernel_constraint, bias=bias_constraint)

    @property
    def _channels_first(self) -> bool:
        return self.data_format == "channels_first"

    def build(self, input_shape):
        channels = input_shape[1 if self._channels_first else -1] if len(input_shape) == 3 else None
        if channels is None:
            layout = "(batch, channels, time)" if self._channels_first else "(batch, time, channels)"
            raise ValueError(
                f"layer {self.name!r} (Conv1D) expects inputs of shape {layout} with known channels, got {input_shape}"
            )
        if channels % self.groups:
            raise ValueError(f"layer {self.name!r} (Conv1D): the input's {channels} channels are not divisible "
                             f"by groups={self.groups}")
        # Drawn in Keras's shape, so the initializer sees Keras's fans and the same draws.
        keras_kernel = self.kernel_initializer((self.kernel_size, channels // self.groups, self.filters))
        self.kernel = nn.Parameter(keras_kernel.permute(2, 1, 0).contiguous())
        self.bias = nn.Parameter(self.bias_initializer((self.filters,))) if self.use_bias else None

    def _check_shape(self, got):
        check_channels(self, got)

    def compute_output_shape(self, input_shape):
        length = input_shape[2 if self._channels_first else 1]
        span = (self.kernel_size - 1) * self.dilation_rate + 1
        if self.padding == "valid" and length is not None and length < span:
            raise ValueError(self._too_short(length, span))
        t = conv_output_length(length, self.kernel_size, self.padding, self.strides, self.dilation_rate)
        return (input_shape[0], self.filters, t) if self._channels_first else (input_shape[0], t, self.filters)

    def _too_short(self, length, span) -> str:
        return (f"layer {self.name!r} (Conv1D): input of {length} steps is shorter than the kernel span {span} "
                f"(kernel_size={self.kernel_size}, dilation_rate={self.dilation_rate}); use padding='same' or "
                f"'causal', or longer inputs")

    def forward(self, inputs, mask=None, training=None):
        x = inputs.transpose(1, 2) if self._channels_first else inputs
        length = x.shape[1]
        if self.padding == "causal":
            x = pad_time(x, (self.kernel_size - 1) * self.dilation_rate, 0)
        elif self.padding == "same":
            x = pad_time(x, *same_padding(x.shape[1], self.kernel_size, self.strides, self.dilation_rate))
        span = (self.kernel_size - 1) * self.dilation_rate + 1
        if x.shape[1] < span:
            raise ValueError(self._too_short(length, span))
        y = F.conv2d(as_image(x), self.kernel.unsqueeze(2), self.bias, (1, self.strides), 0, (1, self.dilation_rate),
                     self.groups)
        y = self.activation(from_image(y))
        return self._record_activity(y.transpose(1, 2) if self._channels_first else y)

    def keras_weight_tensors(self):
        return [self.kernel.permute(2, 1, 0)] + ([self.bias] if self.bias is not None else [])

    def load_keras_weight_tensors(self, arrays):
        self.kernel.data.copy_(torch.as_tensor(arrays[0], dtype=self.kernel.dtype).permute(2, 1, 0))
        if self.bias is not None:
            self.bias.data.copy_(torch.as_tensor(arrays[1], dtype=self.bias.dtype))

    def get_config(self):
        cfg = super().get_config()
        cfg.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
            groups=self.groups,
            activation=activations.to_config(self, "activation"),
            use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
            kernel_regularizer=regularizers.serialize(self._regularizers[0][1]),
            bias_regularizer=regularizers.serialize(self._regularizers[1][1]),
        )
        self._constraint_config(cfg, kernel_constraint="kernel", bias_constraint="bias")
        return self._activity_config(cfg)
