"""``keras.preprocessing`` (Keras 2's text and sequence utilities)."""
from . import sequence, text

__all__ = ["sequence", "text"]
