"""``keras.layers``."""
from ..layers import *  # noqa: F401,F403
from ..layers import __all__ as _all
from ..layers import AvgPool1D, Conv1d, GlobalAvgPool1D, GlobalMaxPool1D, MaxPool1D  # noqa: F401

__all__ = list(_all) + ["AvgPool1D", "GlobalAvgPool1D", "GlobalMaxPool1D", "MaxPool1D"]
