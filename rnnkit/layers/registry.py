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


def deserialize_layer(spec: dict, custom_objects: dict | None = None) -> Layer:
    """A layer from ``{"class_name", "config"}``; ``custom_objects`` maps names to classes (and to
    the functions ``Lambda`` layers wrap) that this process defines."""
    name = spec["class_name"]
    cls = (custom_objects or {}).get(name) or get_class(name)
    config = dict(spec["config"])
    if custom_objects and "custom_objects" in getattr(cls.from_config, "__code__", type("", (), {"co_varnames": ()})).co_varnames:
        return cls.from_config(config, custom_objects=custom_objects)
    return cls.from_config(config)
