"""``keras.models``."""
from ..models import Model, Sequential
from ..saving import load_model

__all__ = ["Model", "Sequential", "load_model"]
