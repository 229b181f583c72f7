"""``keras.saving``."""
from ..saving import load_model, save_model
from ..saving.objects import (
    CustomObjectScope, custom_object_scope, get_custom_objects, get_registered_name, get_registered_object,
    register_keras_serializable,
)

__all__ = [
    "CustomObjectScope", "custom_object_scope", "get_custom_objects", "get_registered_name",
    "get_registered_object", "load_model", "register_keras_serializable", "save_model",
]
