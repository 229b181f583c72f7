"""1-D pooling over time: MaxPooling1D, AveragePooling1D and their global forms."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Layer
from .convolutional import as_image, conv_output_length, from_image, pad_time, same_padding


class _Pooling1D(Layer):
    def __init__(self, pool_size=2, strides=None, padding="valid", data_format="channels_last", **kwargs):
        super().__init__(**kwargs)
        unpack = lambda v: int(v[0]) if isinstance(v, (tuple, list)) else int(v)  # noqa: E731
        self.pool_size = unpack(pool_size)
        self.strides = unpack(strides) if strides is not None else self.pool_size
        if padding not in ("valid", "same"):
            raise ValueError(f"{type(self).__name__}: padding must be 'valid' or 'same', got {padding!r}")
        if data_format != "channels_last":
            raise ValueError(f"{type(self).__name__}: only data_format='channels_last' is supported")
        self.padding = padding

    def _check_length(self, length) -> None:
        if self.padding == "valid" and length is not None and length < self.pool_size:
            raise ValueError(
                f"layer {self.name!r} ({type(self).__name__}): input of {length} steps is shorter than "
                f"pool_size={self.pool_size}; use padding='same' or longer inputs"
            )

    def compute_output_shape(self, input_shape):
        self._check_length(input_shape[1])
        t = conv_output_length(input_shape[1], self.pool_size, self.padding, self.strides)
        return (input_shape[0], t, input_shape[2])

    def forward(self, inputs, mask=None, training=None):
        if inputs.dim() != 3:
            raise ValueError(
                f"layer {self.name!r} ({type(self).__name__}) expects (batch, time, features), got {tuple(inputs.shape)}"
            )
        length = inputs.shape[1]
        self._check_length(length)
        pad = same_padding(length, self.pool_size, self.strides) if self.padding == "same" else (0, 0)
        # Pooled as a channels-last image (see convolutional.as_image): no copies in or out.
        return from_image(self._pool(inputs, pad))

    def get_config(self):
        cfg = super().get_config()
        cfg.update(pool_size=self.pool_size, strides=self.strides, padding=self.padding)
        return cfg


class MaxPooling1D(_Pooling1D):
    """Maximum over windows of ``pool_size`` steps, moved by ``strides`` (default ``pool_size``).

    ``(batch, time, features)`` -> ``(batch, pooled_time, features)``; ``"valid"``
    gives ``floor((time - pool_size) / strides) + 1`` steps, ``"same"`` ``ceil(time / strides)``
    (padding never wins the max).
    """

    def _pool(self, x, pad):
        x = pad_time(x, *pad, value=float("-inf"))
        return F.max_pool2d(as_image(x), (1, self.pool_size), (1, self.strides))


class AveragePooling1D(_Pooling1D):
    """Mean over windows of ``pool_size`` steps; with ``"same"`` padding, the mean is over
    the real steps of each window only (as TensorFlow)."""

    def _pool(self, x, pad):
        window, strides = (1, self.pool_size), (1, self.strides)
        total = F.avg_pool2d(as_image(pad_time(x, *pad)), window, strides)
        if not any(pad):
            return total
        ones = pad_time(x.new_ones(1, x.shape[1], 1), *pad)
        return total / F.avg_pool2d(as_image(ones), window, strides)


class GlobalMaxPooling1D(Layer):
    """Maximum over time: ``(batch, time, features)`` -> ``(batch, features)``
    (``keepdims=True`` keeps a time axis of 1).

    As in Keras, this layer does not take a mask: padded steps count in the
    maximum (``GlobalAveragePooling1D`` does honour masks)."""

    def __init__(self, data_format="channels_last", keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.keepdims = bool(keepdims)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1, input_shape[2]) if self.keepdims else (input_shape[0], input_shape[2])

    def compute_mask(self, inputs, mask):
        return None

    def forward(self, inputs, mask=None, training=None):
        return inputs.amax(dim=1, keepdim=self.keepdims)

    def get_config(self):
        cfg = super().get_config()
        cfg["keepdims"] = self.keepdims
        return cfg


class GlobalAveragePooling1D(GlobalMaxPooling1D):
    """Mean over time: ``(batch, time, features)`` -> ``(batch, features)``; with a mask,
    the mean over unmasked steps only (NaN for a fully masked row, as Keras)."""

    supports_masking = True

    def forward(self, inputs, mask=None, training=None):
        if mask is None:
            return inputs.mean(dim=1, keepdim=self.keepdims)
        m = mask.unsqueeze(-1).to(inputs.dtype)
        return (inputs * m).sum(1, keepdim=self.keepdims) / m.sum(1, keepdim=self.keepdims)
