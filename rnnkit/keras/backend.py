"""``keras.backend`` (the part that matters here: resetting automatic names)."""
from ..layers.base import clear_session

__all__ = ["clear_session"]
