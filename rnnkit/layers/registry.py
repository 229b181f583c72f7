"""Layer classes by name, for building layers from configs (saved models, Keras files)."""
from __future__ import annotations

from .base import Layer

_REGISTRY: dict[str, type[Layer]] = {}


def register(cls: type[Layer]) -> type[Layer]:
    _REGISTRY[cls.__name__] = cls
    return cls


def get_class(name: str) -> type[Layer]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown layer class {name!r}; rnnkit knows {', '.join(sorted(_REGISTRY))}"
        ) from None


def serialize_layer(layer: Layer) -> dict:
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize_layer(spec: dict) -> Layer:
    return get_class(spec["class_name"]).from_config(dict(spec["config"]))
