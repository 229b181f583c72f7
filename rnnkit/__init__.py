"""rnnkit: Keras-style recurrent sequence models on PyTorch's fused kernels.

>>> import rnnkit
>>> from rnnkit.layers import Embedding, Bidirectional, LSTM, Dense
>>> model = rnnkit.Sequential([Embedding(120, 42, input_shape=(33,)),
...                            Bidirectional(LSTM(56, return_sequences=True)),
...                            Bidirectional(LSTM(12)), Dense(8)])

Top-level names are imported on first use, so ``import rnnkit.text`` or
``rnnkit.data`` (pure NumPy) and the CLI's start-up do not pay for torch.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "Input": "rnnkit.layers",
    "clear_session": "rnnkit.layers",
    "Model": "rnnkit.models",
    "Sequential": "rnnkit.models",
    "load_model": "rnnkit.saving",
    "ModelFileError": "rnnkit.saving",
    "TrainingError": "rnnkit.training",
    "callbacks": "rnnkit.training",
    "losses": "rnnkit.training",
    "metrics": "rnnkit.training",
    "optimizers": "rnnkit.training",
    "to_categorical": "rnnkit.utils",
}
_SUBMODULES = {"activations", "constraints", "initializers", "layers", "regularizers", "keras", "text", "data", "lm",
               "seq2seq", "bench", "training", "saving", "models", "utils", "cli"}

__all__ = sorted(set(_LAZY) | _SUBMODULES | {"__version__"})


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"rnnkit.{name}")
    else:
        raise AttributeError(f"module 'rnnkit' has no attribute {name!r}")
    globals()[name] = value
    return value
