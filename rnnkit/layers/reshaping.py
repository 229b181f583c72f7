"""Reshaping layers: Reshape and Permute (the batch axis stays first and untouched)."""
from __future__ import annotations

import math

from .base import Layer, format_shape
from .registry import register


def _name(layer) -> str:
    return f"layer {layer.name!r} ({type(layer).__name__})"


@register
class Reshape(Layer):
    """Reshapes each sample to ``target_shape``: ``(batch, *in)`` -> ``(batch, *target_shape)``.

    Args:
        target_shape: the sample shape (no batch axis), e.g. ``(4, 3)``; one entry may be
            ``-1``, inferred from the number of values per sample.

    The number of values per sample must not change: ``(batch, 3, 4)`` can become
    ``(batch, 12)``, ``(batch, 4, 3)`` or ``(batch, -1, 2)`` = ``(batch, 6, 2)``.
    """

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        try:
            target = tuple(target_shape)
        except TypeError:
            raise TypeError(f"Reshape: target_shape must be a tuple of integers, got {target_shape!r}") from None
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in target):
            raise TypeError(f"Reshape: target_shape must hold integers (-1 for one unknown axis), got {target!r}")
        if any(d < -1 for d in target):
            raise ValueError(
                f"Reshape: each entry of target_shape must be a non-negative integer, or -1 for a single "
                f"unknown axis, got {target!r}"
            )
        if target.count(-1) > 1:
            raise ValueError(f"Reshape: target_shape may have at most one unknown axis (-1), got {target!r}")
        self.target_shape = target

    def _sample_shape(self, sample):
        # Keras's compute_reshape_output_shape: -1 is resolved when the sample shape is known.
        if None in sample:
            return tuple(None if d == -1 else d for d in self.target_shape)
        size = math.prod(sample)
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 not in self.target_shape:
            if size != known:
                raise ValueError(
                    f"{_name(self)} cannot reshape samples of shape {tuple(sample)} ({size} values) to "
                    f"target_shape {self.target_shape} ({known} values)"
                )
            return self.target_shape
        if known == 0 or size % known:
            raise ValueError(
                f"{_name(self)} cannot reshape samples of shape {tuple(sample)} ({size} values) to "
                f"target_shape {self.target_shape}: {size} is not a multiple of {known}"
            )
        return tuple(size // known if d == -1 else d for d in self.target_shape)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self._sample_shape(tuple(input_shape[1:]))

    def _check_shape(self, got):
        pass  # any sample shape of the right size will do (forward checks it)

    def forward(self, inputs, mask=None, training=None):
        target = self._sample_shape(tuple(inputs.shape[1:]))
        return inputs.reshape((inputs.shape[0],) + target)

    def get_config(self):
        cfg = super().get_config()
        cfg["target_shape"] = list(self.target_shape)
        return cfg


@register
class Permute(Layer):
    """Permutes the non-batch axes: ``Permute((2, 1))`` turns ``(batch, time, features)``
    into ``(batch, features, time)``.

    Args:
        dims: the new order of the axes, numbered from 1 (the batch axis 0 stays first);
            a permutation of ``1 .. rank - 1``.
    """

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        dims = tuple(dims)
        if sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(
                f"Permute: dims must be a permutation of 1..{len(dims)} (the batch axis 0 is not permuted), "
                f"got {dims!r}"
            )
        self.dims = dims

    def _check_rank(self, shape):
        if len(shape) != len(self.dims) + 1:
            raise ValueError(
                f"{_name(self)} with dims={self.dims} expects inputs of rank {len(self.dims) + 1}, "
                f"got shape {format_shape(shape)}"
            )

    def compute_output_shape(self, input_shape):
        self._check_rank(input_shape)
        return (input_shape[0],) + tuple(input_shape[d] for d in self.dims)

    def _check_shape(self, got):
        self._check_rank(got)

    def forward(self, inputs, mask=None, training=None):
        self._check_rank(tuple(inputs.shape))
        return inputs.permute((0,) + self.dims)

    def get_config(self):
        cfg = super().get_config()
        cfg["dims"] = list(self.dims)
        return cfg
