"""Saving and loading models: rnnkit's safetensors format and Keras's files."""
from .loading import load_model
from .native import ModelFileError, load_weights, save_model, save_weights

__all__ = ["ModelFileError", "load_model", "save_model", "save_weights", "load_weights"]
