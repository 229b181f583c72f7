"""``keras.utils``."""
from ..training.data import PyDataset, Sequence, unpack as unpack_x_y_sample_weight
from ..utils import to_categorical

__all__ = ["to_categorical", "PyDataset", "Sequence", "unpack_x_y_sample_weight"]

try:  # text utilities live in rnnkit.text
    from ..text import pad_sequences  # noqa: F401

    __all__.append("pad_sequences")
except ImportError:  # pragma: no cover - rnnkit.text always ships with rnnkit
    pass
