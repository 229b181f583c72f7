"""``keras.utils``."""
from ..utils import to_categorical

__all__ = ["to_categorical"]

try:  # text utilities live in rnnkit.text
    from ..text import pad_sequences  # noqa: F401

    __all__.append("pad_sequences")
except ImportError:  # pragma: no cover - rnnkit.text always ships with rnnkit
    pass
