"""Masking: mark the time steps whose features all equal ``mask_value`` as padding."""
from __future__ import annotations

import torch

from .base import Layer
from .registry import register


@register
class Masking(Layer):
    """Masks the steps of a sequence whose every feature equals ``mask_value``.

    ``(batch, time, features)`` -> the same shape, with the masked steps set to 0, and the
    mask ``any(inputs != mask_value, axis=-1)`` of shape ``(batch, time)`` for the layers
    downstream (recurrent layers then skip those steps, as after ``Embedding(mask_zero=True)``).

    Args:
        mask_value: the padding value (default 0.0).
    """

    supports_masking = True

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(mask_value, bool) or not isinstance(mask_value, (int, float)):
            raise TypeError(f"Masking: mask_value must be a number, got {mask_value!r}")
        self.mask_value = mask_value

    def compute_mask(self, inputs, mask=None):
        return torch.as_tensor(inputs).ne(self.mask_value).any(dim=-1)

    def forward(self, inputs, mask=None, training=None):
        keep = inputs.ne(self.mask_value).any(dim=-1, keepdim=True)
        return torch.where(keep, inputs, torch.zeros((), dtype=inputs.dtype, device=inputs.device))

    def get_config(self):
        cfg = super().get_config()
        cfg["mask_value"] = self.mask_value
        return cfg
