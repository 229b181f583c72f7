"""Layer classes by name, for building layers from configs (saved models, Keras files).

rnnkit's own layers first; then classes registered in this process with
``keras.saving.register_keras_serializable`` (by ``"Package>Name"``) or given through
``custom_objects`` / ``custom_object_scope`` (by their plain name). Nothing else is found.
"""
from __future__ import annotations

from .base import Layer

_REGISTRY: dict[str, type[Layer]] = {}


def register(cls: type[Layer]) -> type[Layer]:
    _REGISTRY[cls.__name__] = cls
    return cls


def get_class(name: str, custom_objects: dict | None = None) -> type[Layer]:
    if name in _REGISTRY:
        return _REGISTRY[name]
    from ..saving.objects import get_registered_object

    cls = get_registered_object(name, custom_objects)
    if isinstance(cls, type) and issubclass(cls, Layer):
        return cls
    raise ValueError(
        f"unknown layer class {name!r}; rnnkit knows {', '.join(sorted(_REGISTRY))}, and classes registered with "
        "keras.saving.register_keras_serializable or passed in custom_objects"
    )


def serialize_layer(layer: Layer) -> dict:
    from ..saving.objects import registered_name

    spec = {"class_name": type(layer).__name__, "config": layer.get_config()}
    registered = registered_name(type(layer))
    if registered is not None:
        spec["registered_name"] = registered
    return spec


def layer_class(spec: dict, custom_objects: dict | None = None) -> type[Layer]:
    """The class a layer spec names: its ``registered_name`` when registered, else its ``class_name``."""
    if spec.get("registered_name"):
        from ..saving.objects import get_registered_object

        cls = get_registered_object(spec["registered_name"], custom_objects)
        if isinstance(cls, type) and issubclass(cls, Layer):
            return cls
    return get_class(spec["class_name"], custom_objects)


def deserialize_layer(spec: dict, custom_objects: dict | None = None) -> Layer:
    """A layer from ``{"class_name", "config"}``; ``custom_objects`` maps names to classes (and to
    the functions ``Lambda`` layers wrap) that this process defines."""
    cls = layer_class(spec, custom_objects)
    config = dict(spec["config"])
    if "custom_objects" in cls.from_config.__code__.co_varnames:
        return cls.from_config(config, custom_objects=custom_objects)
    return cls.from_config(config)
