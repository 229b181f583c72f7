"""Weight initializers with Keras's names and defaults.

Each initializer fills a tensor given in *Keras layout* (for a Dense kernel
``(input_dim, units)``; for a recurrent kernel ``(units, gates * units)``), so
fan-in and fan-out are computed exactly as Keras computes them.
"""
from __future__ import annotations

import math

import torch


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    # Keras: the last two axes are (fan_in, fan_out); leading axes are receptive field.
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def glorot_uniform(shape, generator=None) -> torch.Tensor:
    fan_in, fan_out = _fans(tuple(shape))
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return torch.empty(shape).uniform_(-limit, limit, generator=generator)


def glorot_normal(shape, generator=None) -> torch.Tensor:
    fan_in, fan_out = _fans(tuple(shape))
    std = math.sqrt(2.0 / (fan_in + fan_out)) / 0.87962566103423978  # truncated-normal correction
    return torch.nn.init.trunc_normal_(torch.empty(shape), 0.0, std, -2 * std, 2 * std, generator=generator)


def he_uniform(shape, generator=None) -> torch.Tensor:
    fan_in, _ = _fans(tuple(shape))
    limit = math.sqrt(6.0 / fan_in)
    return torch.empty(shape).uniform_(-limit, limit, generator=generator)


def orthogonal(shape, generator=None) -> torch.Tensor:
    """Orthogonal matrix of ``shape`` (rows orthonormal when rows <= cols), gain 1."""
    rows = math.prod(shape[:-1])
    cols = shape[-1]
    a = torch.randn(max(rows, cols), min(rows, cols), generator=generator)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r))  # make the decomposition unique, as Keras does
    if rows < cols:
        q = q.T
    return q.reshape(shape).contiguous()


def uniform(shape, generator=None) -> torch.Tensor:
    # Keras's "uniform" / RandomUniform defaults: [-0.05, 0.05].
    return torch.empty(shape).uniform_(-0.05, 0.05, generator=generator)


def zeros(shape, generator=None) -> torch.Tensor:
    return torch.zeros(shape)


def ones(shape, generator=None) -> torch.Tensor:
    return torch.ones(shape)


_INITIALIZERS = {
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "he_uniform": he_uniform,
    "orthogonal": orthogonal,
    "uniform": uniform,
    "random_uniform": uniform,
    "zeros": zeros,
    "ones": ones,
}
_KERAS_CLASS_NAMES = {
    "GlorotUniform": "glorot_uniform",
    "GlorotNormal": "glorot_normal",
    "HeUniform": "he_uniform",
    "Orthogonal": "orthogonal",
    "RandomUniform": "uniform",
    "Zeros": "zeros",
    "Ones": "ones",
}


def get(identifier):
    if callable(identifier):
        return identifier
    if isinstance(identifier, dict):  # Keras serialised form
        identifier = _KERAS_CLASS_NAMES.get(identifier.get("class_name"), identifier.get("class_name"))
    fn = _INITIALIZERS.get(str(identifier))
    if fn is None:
        raise ValueError(
            f"unknown initializer {identifier!r}; expected one of {', '.join(sorted(_INITIALIZERS))}"
        )
    return fn


def serialize(identifier) -> str:
    if isinstance(identifier, str):
        get(identifier)
        return identifier
    for name, fn in _INITIALIZERS.items():
        if fn is identifier:
            return name
    raise ValueError(f"initializer {identifier!r} has no Keras name, so it cannot be saved")
