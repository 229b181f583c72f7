"""Regularizing noise, active only in training mode: SpatialDropout1D, GaussianNoise,
GaussianDropout. Each is the identity at inference (a direct call, ``predict``,
``evaluate``) and under ``shape_probe()``.

``seed=``: an integer seeds a ``torch.Generator`` of the layer's own (one per device), so
the layer's draws repeat from run to run whatever else uses PyTorch's global generator;
``None`` draws from the global generator (``torch.manual_seed`` fixes it). The numbers
differ from Keras's for the same seed (another generator), with the same distribution.
"""
from __future__ import annotations

import math

import torch

from .base import Layer, is_probing
from .registry import register


class _Noise(Layer):
    supports_masking = True

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"{type(self).__name__}: seed must be an integer or None, got {seed!r}")
        self.seed = seed

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        gens = self.__dict__.setdefault("_generators", {})
        g = gens.get(str(device))
        if g is None:
            g = gens[str(device)] = torch.Generator(device=device)
            g.manual_seed(self.seed)
        return g

    def _active(self, training) -> bool:
        training = self.training if training is None else training
        return bool(training) and not is_probing()


def _rate(cls: str, rate) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
        raise ValueError(f"{cls}: rate must be a number in [0, 1), got {rate!r}")
    return float(rate)


@register
class SpatialDropout1D(_Noise):
    """Dropout of whole channels: in training mode each sample's feature ``c`` is zeroed at
    every time step with probability ``rate`` (the kept ones scaled by ``1 / (1 - rate)``).

    Args:
        rate: fraction of channels to drop, in [0, 1).
        seed: integer seed of the layer's generator, or None (see the module docs).

    Input ``(batch, time, channels)``; output the same.
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = _rate("SpatialDropout1D", rate)

    def _check_rank(self, shape):
        if len(shape) != 3:
            raise ValueError(
                f"layer {self.name!r} (SpatialDropout1D) expects inputs (batch, time, channels), got shape "
                f"{tuple(shape)}"
            )

    def build(self, input_shape):
        self._check_rank(input_shape)

    def forward(self, inputs, mask=None, training=None):
        self._check_rank(inputs.shape)
        if not self._active(training) or self.rate == 0.0:
            return inputs
        keep = torch.full((inputs.shape[0], 1, inputs.shape[2]), 1.0 - self.rate, dtype=inputs.dtype,
                          device=inputs.device)
        keep = torch.bernoulli(keep, generator=self._generator(inputs.device))
        return inputs * keep / (1.0 - self.rate)

    def get_config(self):
        # Keras's SpatialDropout1D config has no "trainable" (nor has its constructor).
        cfg = super().get_config()
        cfg.pop("trainable", None)
        cfg.update(rate=self.rate, seed=self.seed)
        return cfg


@register
class GaussianNoise(_Noise):
    """Adds zero-mean Gaussian noise of standard deviation ``stddev`` in training mode.

    Args:
        stddev: in [0, 1] (Keras's bound).
        seed: integer seed of the layer's generator, or None (see the module docs).

    Input: any shape; output the same.
    """

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if isinstance(stddev, bool) or not isinstance(stddev, (int, float)) or not 0.0 <= stddev <= 1.0:
            raise ValueError(f"GaussianNoise: stddev must be a number in [0, 1], got {stddev!r}")
        self.stddev = float(stddev)

    def forward(self, inputs, mask=None, training=None):
        if not self._active(training) or self.stddev == 0.0:
            return inputs
        noise = torch.randn(inputs.shape, generator=self._generator(inputs.device), dtype=inputs.dtype,
                            device=inputs.device)
        return inputs + noise * self.stddev

    def get_config(self):
        cfg = super().get_config()
        cfg.update(stddev=self.stddev, seed=self.seed)
        return cfg


@register
class GaussianDropout(_Noise):
    """Multiplies the inputs by Gaussian noise of mean 1 and standard deviation
    ``sqrt(rate / (1 - rate))`` in training mode.

    Args:
        rate: in [0, 1) (Keras allows 1, which divides by zero).
        seed: integer seed of the layer's generator, or None (see the module docs).

    Input: any shape; output the same.
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = _rate("GaussianDropout", rate)

    def forward(self, inputs, mask=None, training=None):
        if not self._active(training) or self.rate == 0.0:
            return inputs
        stddev = math.sqrt(self.rate / (1.0 - self.rate))
        noise = torch.randn(inputs.shape, generator=self._generator(inputs.device), dtype=inputs.dtype,
                            device=inputs.device)
        return inputs * (noise * stddev + 1.0)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(rate=self.rate, seed=self.seed)
        return cfg
