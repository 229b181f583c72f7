"""Activation layers with arguments of their own: Softmax (``Activation`` is in core.py)."""
from __future__ import annotations

import torch

from .base import Layer
from .registry import register


@register
class Softmax(Layer):
    """Softmax over ``axis``: ``exp(x) / sum(exp(x))``, the same shape out as in.

    Args:
        axis: the axis (default -1) or a tuple of axes normalized together.

    Call arguments:
        mask: a boolean tensor that broadcasts to the inputs (axes aligned from the right,
            each of size 1 or the input's). As Keras 3, masked positions get -1e9 before
            the softmax and exactly 0 after it, so a fully masked row is all zeros. The
            mask passes through to the next layer.
    """

    supports_masking = True

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            if not axis or not all(isinstance(a, int) and not isinstance(a, bool) for a in axis):
                raise TypeError(f"Softmax: axis must be an integer or a tuple of integers, got {axis!r}")
            axis = tuple(axis)
        elif isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"Softmax: axis must be an integer or a tuple of integers, got {axis!r}")
        self.axis = axis

    def _check_mask(self, inputs, mask):
        fits = mask.dim() <= inputs.dim() and all(
            m == 1 or m == i for m, i in zip(reversed(mask.shape), reversed(inputs.shape))
        )
        if not fits:
            raise ValueError(
                f"layer {self.name!r} (Softmax): the mask must broadcast to the inputs (axes aligned from the "
                f"right, each 1 or the input's size), got mask shape {tuple(mask.shape)} for inputs "
                f"{tuple(inputs.shape)}"
            )

    def forward(self, inputs, mask=None, training=None):
        if mask is not None:
            self._check_mask(inputs, mask)
            inputs = torch.where(mask, inputs, torch.tensor(-1e9, dtype=inputs.dtype, device=inputs.device))
        if isinstance(self.axis, tuple) and len(self.axis) > 1:
            out = torch.exp(inputs - torch.logsumexp(inputs, dim=self.axis, keepdim=True))
        else:
            out = torch.softmax(inputs, dim=self.axis[0] if isinstance(self.axis, tuple) else self.axis)
        if mask is not None:
            out = torch.where(mask, out, torch.zeros((), dtype=out.dtype, device=out.device))
        return out

    def get_config(self):
        cfg = super().get_config()
        cfg["axis"] = list(self.axis) if isinstance(self.axis, tuple) else self.axis
        return cfg
