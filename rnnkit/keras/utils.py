"""``keras.utils``."""
from ..data.fetch import get_file
from ..training.data import PyDataset, Sequence, unpack as unpack_x_y_sample_weight
from ..utils import set_random_seed, to_categorical

__all__ = ["get_file", "set_random_seed", "to_categorical", "PyDataset", "Sequence", "unpack_x_y_sample_weight"]

try:  # text utilities live in rnnkit.text
    from ..text import pad_sequences  # noqa: F401

    __all__.append("pad_sequences")
except ImportError:  # pragma: no cover - rnnkit.text always ships with rnnkit
    pass

from ..saving.objects import (  # noqa: E402 - Keras exports these from keras.utils too
    CustomObjectScope, custom_object_scope, get_custom_objects, get_registered_name, get_registered_object,
    register_keras_serializable,
)

__all__ += [
    "CustomObjectScope", "custom_object_scope", "get_custom_objects", "get_registered_name",
    "get_registered_object", "register_keras_serializable",
]
