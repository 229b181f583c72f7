"""1-D pooling over time: MaxPooling1D, AveragePooling1D and their global forms."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _args
from ._args import OneInput
from .base import Layer, as_tensor
from .convolutional import as_image, check_channels, conv_output_length, from_image, pad_time, same_padding


class _Pooling1D(OneInput, Layer):
    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        cls = type(self).__name__
        self.pool_size = _args.positive_int_1d(cls, "pool_size", pool_size)
        self.strides = _args.positive_int_1d(cls, "strides", strides) if strides is not None else self.pool_size
        self.padding = _args.choice(cls, "padding", padding, ("valid", "same"))
        self.data_format = _args.data_format(cls, data_format)

    def _check_length(self, length) -> None:
        if self.padding == "valid" and length is not None and length < self.pool_size:
            raise ValueError(
                f"layer {self.name!r} ({type(self).__name__}): input of {length} steps is shorter than "
                f"pool_size={self.pool_size}; use padding='same' or longer inputs"
            )

    def _check_shape(self, got):
        check_channels(self, got)

    def compute_output_shape(self, input_shape):
        if self.data_format == "channels_first":
            self._check_length(input_shape[2])
            t = conv_output_length(input_shape[2], self.pool_size, self.padding, self.strides)
            return (input_shape[0], input_shape[1], t)
        self._check_length(input_shape[1])
        t = conv_output_length(input_shape[1], self.pool_size, self.padding, self.strides)
        return (input_shape[0], t, input_shape[2])

    def forward(self, inputs, mask=None, training=None):
        if inputs.dim() != 3:
            layout = "(batch, features, time)" if self.data_format == "channels_first" else "(batch, time, features)"
            raise ValueError(
                f"layer {self.name!r} ({type(self).__name__}) expects {layout}, got {tuple(inputs.shape)}"
            )
        x = inputs.transpose(1, 2) if self.data_format == "channels_first" else inputs
        length = x.shape[1]
        self._check_length(length)
        pad = same_padding(length, self.pool_size, self.strides) if self.padding == "same" else (0, 0)
        # Pooled as a channels-last image (see convolutional.as_image): no copies in or out.
        y = from_image(self._pool(x, pad))
        return y.transpose(1, 2) if self.data_format == "channels_first" else y

    def get_config(self):
        cfg = super().get_config()
        cfg.update(pool_size=self.pool_size, strides=self.strides, padding=self.padding, data_format=self.data_format)
        return cfg


_POOLING_ARGS = """
    Args:
        pool_size: window length (an int or a 1-tuple{default}).
        strides: step between windows (default None: ``pool_size``).
        padding: ``"valid"`` (default) or ``"same"``.
        data_format: ``"channels_last"`` (default, also for None): ``(batch, time, features)``;
            ``"channels_first"``: ``(batch, features, time)``, pooled along the last axis.
"""


class MaxPooling1D(_Pooling1D):
    """Maximum over windows of ``pool_size`` steps, moved by ``strides`` (default ``pool_size``).

    ``(batch, time, features)`` -> ``(batch, pooled_time, features)``; ``"valid"``
    gives ``floor((time - pool_size) / strides) + 1`` steps, ``"same"`` ``ceil(time / strides)``
    (padding never wins the max).
    """

    __doc__ += _POOLING_ARGS.format(default="; default 2")

    def _pool(self, x, pad):
        x = pad_time(x, *pad, value=float("-inf"))
        return F.max_pool2d(as_image(x), (1, self.pool_size), (1, self.strides))


class AveragePooling1D(_Pooling1D):
    """Mean over windows of ``pool_size`` steps; with ``"same"`` padding, the mean is over
    the real steps of each window only (as TensorFlow). Shapes as `MaxPooling1D`.
    """

    __doc__ += _POOLING_ARGS.format(default="")

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)

    def _pool(self, x, pad):
        window, strides = (1, self.pool_size), (1, self.strides)
        total = F.avg_pool2d(as_image(pad_time(x, *pad)), window, strides)
        if not any(pad):
            return total
        ones = pad_time(x.new_ones(1, x.shape[1], 1), *pad)
        return total / F.avg_pool2d(as_image(ones), window, strides)


class GlobalMaxPooling1D(OneInput, Layer):
    """Maximum over time: ``(batch, time, features)`` -> ``(batch, features)``.

    Args:
        data_format: ``"channels_last"`` (default, also for None), or ``"channels_first"``
            for ``(batch, features, time)`` inputs (the maximum over the last axis).
        keepdims: keep the time axis, of length 1: ``(batch, 1, features)``
            (``(batch, features, 1)`` channels-first).

    As in Keras, this layer does not take a mask: padded steps count in the
    maximum (``GlobalAveragePooling1D`` does honour masks)."""

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = _args.data_format(type(self).__name__, data_format)
        self.keepdims = _args.flag(type(self).__name__, "keepdims", keepdims)

    @property
    def _time_axis(self) -> int:
        return 2 if self.data_format == "channels_first" else 1

    def _check_shape(self, got):
        check_channels(self, got)

    def compute_output_shape(self, input_shape):
        features = input_shape[1] if self.data_format == "channels_first" else input_shape[2]
        if not self.keepdims:
            return (input_shape[0], features)
        return (input_shape[0], features, 1) if self.data_format == "channels_first" else (input_shape[0], 1, features)

    def compute_mask(self, inputs, mask):
        return None

    def _check_rank(self, inputs):
        if inputs.dim() != 3:
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) expects inputs of rank 3, "
                             f"got shape {tuple(inputs.shape)}")

    def forward(self, inputs, mask=None, training=None):
        self._check_rank(inputs)
        return inputs.amax(dim=self._time_axis, keepdim=self.keepdims)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(data_format=self.data_format, keepdims=self.keepdims)
        return cfg


class GlobalAveragePooling1D(GlobalMaxPooling1D):
    """Mean over time: ``(batch, time, features)`` -> ``(batch, features)``; with a mask
    ``(batch, time)``, the mean over unmasked steps only (NaN for a fully masked row, as Keras).

    Args: as `GlobalMaxPooling1D`. Call: ``layer(inputs, mask=None)`` (the mask may be
    given by position, as Keras's ``call(inputs, mask=None)`` takes it)."""

    supports_masking = True

    def forward(self, inputs, mask=None, training=None):
        self._check_rank(inputs)
        axis = self._time_axis
        if mask is None:
            return inputs.mean(dim=axis, keepdim=self.keepdims)
        if not isinstance(mask, torch.Tensor):  # given by position, past Layer.__call__'s conversion
            mask = as_tensor(mask, inputs.device)
        if tuple(mask.shape) != (inputs.shape[0], inputs.shape[axis]):
            raise ValueError(f"layer {self.name!r} (GlobalAveragePooling1D): mask of shape {tuple(mask.shape)} does "
                             f"not fit inputs {tuple(inputs.shape)}; expected (batch, time) = "
                             f"({inputs.shape[0]}, {inputs.shape[axis]})")
        m = mask.bool().unsqueeze(1 if axis == 2 else 2)
        # where, not a product: a masked step holding inf or NaN must not reach the sum (Keras's rule)
        total = torch.where(m, inputs, inputs.new_zeros(())).sum(axis, keepdim=self.keepdims)
        return total / m.to(inputs.dtype).sum(axis, keepdim=self.keepdims)
