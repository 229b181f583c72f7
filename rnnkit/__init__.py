"""rnnkit: Keras-style recurrent sequence models on PyTorch's fused kernels.

>>> import rnnkit
>>> from rnnkit.layers import Embedding, Bidirectional, LSTM, Dense
>>> model = rnnkit.Sequential([Embedding(120, 42, input_shape=(33,)),
...                            Bidirectional(LSTM(56, return_sequences=True)),
...                            Bidirectional(LSTM(12)), Dense(8)])
"""
from . import activations, initializers, layers, regularizers
from .layers import Input, clear_session
from .models import Model, Sequential
from .saving import ModelFileError, load_model
from .training import TrainingError, callbacks, losses, metrics, optimizers
from .utils import to_categorical

__version__ = "0.1.0"

__all__ = [
    "Input", "Model", "Sequential", "load_model", "ModelFileError", "TrainingError", "activations",
    "callbacks", "clear_session", "initializers", "layers", "losses", "metrics", "optimizers",
    "regularizers", "to_categorical", "__version__",
]
