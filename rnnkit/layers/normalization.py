"""Normalization layers: LayerNormalization (per sample) and BatchNormalization (per batch,
with moving statistics for inference)."""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from .. import initializers, limits, regularizers
from .base import Layer, is_probing
from .registry import register

_KERAS_EPSILON = 1e-7  # keras.backend.epsilon(), which BatchNormalization's masked moments add


def _refuse_constraints(cls: str, **constraints) -> None:
    for name, value in constraints.items():
        if value is not None:
            raise ValueError(f"{cls}: {name}= is not supported (weight constraints are not implemented)")


def _axis_size(layer, input_shape, axis):
    if not -len(input_shape) <= axis < len(input_shape):
        raise ValueError(
            f"layer {layer.name!r} ({type(layer).__name__}): axis {axis} is out of bounds for input shape "
            f"{tuple(input_shape)}"
        )
    size = input_shape[axis]
    if size is None:
        raise ValueError(
            f"layer {layer.name!r} ({type(layer).__name__}) needs a known size on axis {axis}, got input shape "
            f"{tuple(input_shape)}"
        )
    return size


class _Normalization(Layer):
    """What LayerNormalization and BatchNormalization share: the learned offset ``beta`` and
    scale ``gamma``, their initializers and regularizers, and their config entries."""

    supports_masking = True

    def _init_affine(self, epsilon, center, scale, beta_initializer, gamma_initializer, beta_regularizer,
                     gamma_regularizer, beta_constraint, gamma_constraint):
        _refuse_constraints(type(self).__name__, beta_constraint=beta_constraint, gamma_constraint=gamma_constraint)
        self.epsilon = float(limits.positive(f"{type(self).__name__}: epsilon", epsilon))
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self._regularizers = [
            ("gamma", regularizers.get(gamma_regularizer)),
            ("beta", regularizers.get(beta_regularizer)),
        ]

    def _affine_config(self) -> dict:
        return dict(
            epsilon=self.epsilon,
            center=self.center,
            scale=self.scale,
            beta_initializer=initializers.serialize(self.beta_initializer),
            gamma_initializer=initializers.serialize(self.gamma_initializer),
            beta_regularizer=regularizers.serialize(self._regularizers[1][1]),
            gamma_regularizer=regularizers.serialize(self._regularizers[0][1]),
            beta_constraint=None,
            gamma_constraint=None,
        )


@register
class LayerNormalization(_Normalization):
    """Normalizes each sample over ``axis``: ``gamma * (x - mean) / sqrt(var + epsilon) + beta``,
    with the mean and (biased) variance taken over ``axis`` of that sample alone.

    Args:
        axis: the axis (default -1, the features) or a list of axes to normalize over.
        epsilon: added to the variance (default 1e-3).
        center: learn the offset ``beta`` (default True); scale: learn ``gamma`` (default True).
        beta_initializer / gamma_initializer: defaults ``"zeros"`` / ``"ones"``.
        beta_regularizer / gamma_regularizer: e.g. ``regularizers.l2(0.01)``.
        rms_scaling: Keras 3's deprecated option: ``gamma * x / sqrt(var + epsilon)``, with no
            centering and no ``beta`` (Keras warns that it scales by the variance, not the
            root mean square; so does rnnkit).

    Input: any shape; output: the same. Weights: ``gamma``, ``beta``, each of the input's
    shape on ``axis`` (e.g. ``(features,)``). The mask passes through.
    """

    def __init__(
        self,
        axis=-1,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        rms_scaling: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._init_affine(epsilon, center, scale, beta_initializer, gamma_initializer, beta_regularizer,
                          gamma_regularizer, beta_constraint, gamma_constraint)
        if rms_scaling:
            warnings.warn(
                "LayerNormalization: rms_scaling=True is deprecated in Keras 3: it scales the input by the "
                "variance, not the root mean square",
                stacklevel=2,
            )
        if isinstance(axis, (list, tuple)):
            if not all(isinstance(a, int) and not isinstance(a, bool) for a in axis):
                raise TypeError(f"LayerNormalization: axis must be an integer or a list of integers, got {axis!r}")
            axis = list(axis)
        elif isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"LayerNormalization: axis must be an integer or a list of integers, got {axis!r}")
        self.axis = axis
        self.rms_scaling = bool(rms_scaling)

    def build(self, input_shape):
        # As Keras: the axes are sorted as given (negative ones first) and become a list,
        # and gamma/beta have the input's sizes on them in that order.
        axes = sorted(self.axis) if isinstance(self.axis, list) else [self.axis]
        shape = tuple(_axis_size(self, input_shape, a) for a in axes)
        self.axis = axes
        self.gamma = nn.Parameter(self.gamma_initializer(shape)) if self.scale or self.rms_scaling else None
        self.beta = nn.Parameter(self.beta_initializer(shape)) if self.center and not self.rms_scaling else None

    def compute_output_shape(self, input_shape):
        for a in self.axis if isinstance(self.axis, list) else [self.axis]:
            if not -len(input_shape) <= a < len(input_shape):
                raise ValueError(
                    f"layer {self.name!r} (LayerNormalization): axis {a} is out of bounds for input shape "
                    f"{tuple(input_shape)}"
                )
        return tuple(input_shape)

    def forward(self, inputs, mask=None, training=None):
        rank = inputs.dim()
        axes = sorted(a % rank for a in self.axis)
        broadcast = [1] * rank
        for a in self.axis:
            broadcast[a] = inputs.shape[a]
        # gamma/beta are laid out in self.axis's order and reshaped (not transposed) onto
        # the input's axes, as Keras does.
        gamma = None if self.gamma is None else self.gamma.reshape(broadcast)
        beta = None if self.beta is None else self.beta.reshape(broadcast)
        if self.rms_scaling:
            var = inputs.var(dim=axes, unbiased=False, keepdim=True)
            out = inputs * torch.rsqrt(var + self.epsilon)
            return out if gamma is None else out * gamma
        if axes == list(range(rank - len(axes), rank)):  # trailing axes: PyTorch's fused kernel
            trailing = tuple(inputs.shape[rank - len(axes):])
            return F.layer_norm(
                inputs, trailing,
                None if gamma is None else gamma.reshape(trailing),
                None if beta is None else beta.reshape(trailing),
                self.epsilon,
            )
        var, mean = torch.var_mean(inputs, dim=axes, unbiased=False, keepdim=True)
        inv = torch.rsqrt(var + self.epsilon)
        if gamma is not None:
            inv = inv * gamma
        out = inputs * inv - mean * inv
        return out if beta is None else out + beta

    def get_config(self):
        cfg = super().get_config()
        cfg.update(
            axis=list(self.axis) if isinstance(self.axis, list) else self.axis,
            rms_scaling=self.rms_scaling,
            **self._affine_config(),
        )
        return cfg


@register
class BatchNormalization(_Normalization):
    """Normalizes each feature over the batch (and every other axis but ``axis``):
    ``gamma * (x - mean) / sqrt(var + epsilon) + beta``.

    In training mode (``training=True``, or inside ``fit``) ``mean``/``var`` are the batch's
    (biased) statistics, and the moving statistics move towards them:
    ``moving = moving * momentum + batch * (1 - momentum)``. In inference mode (the default
    of a direct call, ``predict``, ``evaluate``) the moving statistics are used. A layer
    with ``trainable=False`` always runs in inference mode and never updates them, as in
    Keras 3. Nothing is updated under ``shape_probe()``.

    With a mask (``(batch, time)`` for ``(batch, time, features)`` inputs, one axis fewer
    than the inputs), the batch statistics are taken over the unmasked steps only (Keras 3:
    sums over kept positions divided by their count + 1e-7); the mask passes through.

    Args:
        axis: the feature axis (default -1).
        momentum: of the moving statistics (default 0.99).
        epsilon: added to the variance (default 1e-3).
        center: learn ``beta`` (default True); scale: learn ``gamma`` (default True).
        beta_initializer / gamma_initializer: defaults ``"zeros"`` / ``"ones"``.
        moving_mean_initializer / moving_variance_initializer: defaults ``"zeros"`` / ``"ones"``.
        beta_regularizer / gamma_regularizer: e.g. ``regularizers.l2(0.01)``.
        renorm_momentum: kept for Keras's config; it matters only with ``renorm``, which is
            not supported (nor are ``renorm_clipping``, ``synchronized=True`` and the constraints).

    Input: any shape; output: the same. Weights (Keras's order): ``gamma``, ``beta``,
    ``moving_mean``, ``moving_variance``, each ``(input_shape[axis],)``; the moving ones are
    non-trainable (``requires_grad=False`` parameters: counted, saved and loaded with the
    model, never given to the optimizer).
    """

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        renorm: bool = False,
        renorm_clipping=None,
        renorm_momentum: float = 0.99,
        synchronized: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._init_affine(epsilon, center, scale, beta_initializer, gamma_initializer, beta_regularizer,
                          gamma_regularizer, beta_constraint, gamma_constraint)
        if renorm:
            raise ValueError("BatchNormalization: renorm=True (batch renormalization) is not supported")
        if renorm_clipping is not None:
            raise ValueError("BatchNormalization: renorm_clipping= is not supported (renorm is not supported)")
        if synchronized:
            raise ValueError("BatchNormalization: synchronized=True (statistics across devices) is not supported")
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"BatchNormalization: axis must be an integer, got {axis!r}")
        self.axis = axis
        self.momentum = float(limits.in_range("BatchNormalization: momentum", momentum, 0, 1))
        self.renorm_momentum = float(renorm_momentum)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)

    def build(self, input_shape):
        shape = (_axis_size(self, input_shape, self.axis),)
        self.gamma = nn.Parameter(self.gamma_initializer(shape)) if self.scale else None
        self.beta = nn.Parameter(self.beta_initializer(shape)) if self.center else None
        self.moving_mean = nn.Parameter(self.moving_mean_initializer(shape), requires_grad=False)
        self.moving_variance = nn.Parameter(self.moving_variance_initializer(shape), requires_grad=False)
        # Layer.trainable's setter (of any model above) never unfreezes weights so flagged
        self.moving_mean.untrainable = self.moving_variance.untrainable = True

    @Layer.trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        # The moving statistics stay non-trainable: only gamma and beta follow the flag.
        for p in (self.__dict__.get("_parameters", {}).get(n) for n in ("gamma", "beta")):
            if p is not None:
                p.requires_grad_(self._trainable)

    def compute_output_shape(self, input_shape):
        if not -len(input_shape) <= self.axis < len(input_shape):
            raise ValueError(
                f"layer {self.name!r} (BatchNormalization): axis {self.axis} is out of bounds for input shape "
                f"{tuple(input_shape)}"
            )
        return tuple(input_shape)

    def _moments(self, inputs, mask, dims):
        if mask is None:
            var, mean = torch.var_mean(inputs, dim=dims, unbiased=False)
            return mean, var
        keep = mask.unsqueeze(-1).expand(inputs.shape)
        zero = torch.zeros((), dtype=inputs.dtype, device=inputs.device)
        count = keep.to(inputs.dtype).sum(dim=dims, keepdim=True) + _KERAS_EPSILON
        mean = torch.where(keep, inputs, zero).sum(dim=dims, keepdim=True) / count
        var = torch.where(keep, inputs - mean, zero).square().sum(dim=dims, keepdim=True) / count
        return mean.reshape(-1), var.reshape(-1)

    def forward(self, inputs, mask=None, training=None):
        if mask is not None and mask.dim() != inputs.dim() - 1:
            raise ValueError(
                f"layer {self.name!r} (BatchNormalization): the mask must have one axis fewer than the inputs, "
                f"got mask shape {tuple(mask.shape)} for inputs {tuple(inputs.shape)}"
            )
        training = self.training if training is None else training
        rank = inputs.dim()
        axis = self.axis % rank
        broadcast = [1] * rank
        broadcast[axis] = inputs.shape[axis]
        if training and self.trainable:
            mean, var = self._moments(inputs, mask, [d for d in range(rank) if d != axis])
            if not is_probing():
                with torch.no_grad():
                    m = self.momentum
                    self.moving_mean.copy_(self.moving_mean * m + mean.detach() * (1.0 - m))
                    self.moving_variance.copy_(self.moving_variance * m + var.detach() * (1.0 - m))
        else:
            mean, var = self.moving_mean, self.moving_variance
        inv = torch.rsqrt(var + self.epsilon)
        if self.gamma is not None:
            inv = inv * self.gamma
        shift = -mean * inv
        if self.beta is not None:
            shift = shift + self.beta
        return inputs * inv.reshape(broadcast) + shift.reshape(broadcast)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(
            axis=self.axis,
            momentum=self.momentum,
            **self._affine_config(),
            moving_mean_initializer=initializers.serialize(self.moving_mean_initializer),
            moving_variance_initializer=initializers.serialize(self.moving_variance_initializer),
            synchronized=False,
            renorm=False,
            renorm_clipping=None,
            renorm_momentum=self.renorm_momentum,
        )
        return cfg
