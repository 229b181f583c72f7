"""``keras.models``."""
import json

from ..models import Functional, Model, Sequential
from ..saving import load_model


def model_from_json(json_string: str, custom_objects=None):
    """A model (without weights) from ``model.to_json()``'s text, as ``keras.models.model_from_json``."""
    from ..layers.registry import deserialize_layer

    try:
        spec = json.loads(json_string)
    except json.JSONDecodeError as exc:
        raise ValueError(f"model_from_json: not JSON ({exc})") from None
    if not isinstance(spec, dict) or "class_name" not in spec or "config" not in spec:
        raise ValueError("model_from_json: expected an object with class_name and config (from model.to_json())")
    return deserialize_layer(spec, custom_objects=custom_objects)


def clone_model(model, input_tensors=None, clone_function=None):
    """A new model of the same architecture with freshly initialised weights (``keras.models.clone_model``)."""
    if input_tensors is not None or clone_function is not None:
        raise ValueError("clone_model: input_tensors and clone_function are not supported by rnnkit")
    from ..layers.registry import deserialize_layer, serialize_layer

    return deserialize_layer(serialize_layer(model))


__all__ = ["Model", "Sequential", "Functional", "load_model", "model_from_json", "clone_model"]
