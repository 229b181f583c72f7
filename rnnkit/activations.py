"""Activation functions by Keras name.

Each maps a tensor to a tensor of the same shape. ``softmax`` acts on the last
axis, as in Keras. ``hard_sigmoid`` follows Keras 3 (``relu6(x + 3) / 6``);
Keras 2 used ``clip(0.2 x + 0.5, 0, 1)``, available as ``hard_sigmoid_keras2``.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

Activation = Callable[[torch.Tensor], torch.Tensor]


def linear(x: torch.Tensor) -> torch.Tensor:
    return x


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return F.relu6(x + 3.0) / 6.0


def hard_sigmoid_keras2(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


_ACTIVATIONS: dict[str, Activation] = {
    "linear": linear,
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "softmax": lambda x: torch.softmax(x, dim=-1),
    "log_softmax": lambda x: torch.log_softmax(x, dim=-1),
    "elu": F.elu,
    "selu": F.selu,
    "gelu": F.gelu,
    "softplus": F.softplus,
    "softsign": F.softsign,
    "swish": F.silu,
    "silu": F.silu,
    "relu6": F.relu6,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.2),  # Keras 3's default slope
    "exponential": torch.exp,
    "hard_sigmoid": hard_sigmoid,
    "hard_sigmoid_keras2": hard_sigmoid_keras2,
}


def get(identifier) -> Activation:
    """Return the activation function named ``identifier`` (None means linear)."""
    if identifier is None:
        return linear
    if callable(identifier):
        return identifier
    if isinstance(identifier, dict):  # Keras serialised form
        identifier = identifier.get("config", {}).get("name", identifier.get("class_name"))
    fn = _ACTIVATIONS.get(str(identifier))
    if fn is None:
        raise ValueError(
            f"unknown activation {identifier!r}; expected one of {', '.join(sorted(_ACTIVATIONS))}"
        )
    return fn


# torch functions that compute exactly the Keras activation of the same name (F.leaky_relu's
# default slope is 0.01, Keras's 0.2; F.softmax without dim is not the last axis).
_SAME_AS_TORCH = {"relu", "tanh", "sigmoid", "elu", "selu", "gelu", "softplus", "softsign", "silu", "relu6"}


def serialize(identifier) -> str | None:
    """The Keras name of an activation (for configs); None for a callable that has none
    (a lambda, say): a layer can use it, but not save it (see `to_config`)."""
    if identifier is None:
        return "linear"
    if isinstance(identifier, str):
        get(identifier)
        return identifier
    if isinstance(identifier, dict):
        identifier = identifier.get("config", {}).get("name", identifier.get("class_name"))
        get(identifier)
        return identifier
    for name, fn in _ACTIVATIONS.items():
        if fn is identifier:
            return name
    name = getattr(identifier, "__name__", None)
    return name if name in _SAME_AS_TORCH else None


def to_config(layer, attr: str) -> str:
    """``layer.<attr>``'s Keras name for ``get_config``; an activation without one cannot be saved."""
    name = getattr(layer, f"{attr}_name")
    if name is None:
        raise ValueError(
            f"layer {layer.name!r}: its {attr} {getattr(layer, attr)!r} has no Keras name, so the layer "
            f"cannot be saved or configured; use a named one ({', '.join(sorted(_ACTIVATIONS)[:6])}, ...)"
        )
    return name


def names() -> list[str]:
    return sorted(_ACTIVATIONS)
