"""Custom objects by name: ``keras.saving.register_keras_serializable`` and friends.

A registry of classes and functions *registered in this process*: configs name them
(``"Package>Name"`` for registered ones, a plain name for those given in ``custom_objects``) and
loading looks them up here. Nothing is ever imported or executed from a file: a name that was
not registered is not found.

Lookup order, as in Keras: the active ``custom_object_scope``(s), the global registry, then the
``custom_objects`` passed to the lookup.
"""
from __future__ import annotations

import contextlib
import inspect
import threading

_GLOBAL_OBJECTS: dict[str, object] = {}
_GLOBAL_NAMES: dict[object, str] = {}
_SCOPE = threading.local()


def register_keras_serializable(package: str = "Custom", name: str | None = None):
    """Decorator registering a class (with ``get_config``) or function as ``"package>name"``
    (``name`` defaults to its ``__name__``)."""
    if not isinstance(package, str) or ">" in package:
        raise ValueError(f"register_keras_serializable: package must be a string without '>', got {package!r}")

    def decorator(arg):
        key = f"{package}>{name if name is not None else arg.__name__}"
        if inspect.isclass(arg) and not hasattr(arg, "get_config"):
            raise ValueError("register_keras_serializable: cannot register a class that has no get_config() method")
        _GLOBAL_OBJECTS[key] = arg
        _GLOBAL_NAMES[arg] = key
        return arg

    return decorator


def _scope_objects() -> dict:
    return getattr(_SCOPE, "objects", {})


def get_registered_object(name, custom_objects=None, module_objects=None):
    """The object registered under ``name`` (see the module's lookup order), or None."""
    for table in (_scope_objects(), _GLOBAL_OBJECTS, custom_objects or {}, module_objects or {}):
        if name in table:
            return table[name]
    return None


def get_registered_name(obj) -> str:
    """``obj``'s registered ``"package>name"``, else its ``__name__``."""
    return _GLOBAL_NAMES.get(obj, getattr(obj, "__name__", None))


def registered_name(obj) -> str | None:
    """``obj``'s ``"package>name"`` if it was registered, else None (Keras's ``registered_name``)."""
    return _GLOBAL_NAMES.get(obj)


@contextlib.contextmanager
def custom_object_scope(custom_objects):
    """``with custom_object_scope({"MyLayer": MyLayer}):`` makes those names findable inside."""
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError(f"custom_object_scope: expected a dict of name -> object, got {type(custom_objects).__name__}")
    previous = _scope_objects()
    _SCOPE.objects = {**previous, **(custom_objects or {})}
    try:
        yield
    finally:
        _SCOPE.objects = previous


CustomObjectScope = custom_object_scope


def get_custom_objects() -> dict:
    """The global registry (``"package>name" -> object``); Keras lets code add to it directly."""
    return _GLOBAL_OBJECTS
