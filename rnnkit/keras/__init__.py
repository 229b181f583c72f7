"""Keras-compatible namespace: ``import rnnkit.keras as keras`` runs Keras code on rnnkit.

Mirrors the parts of ``tensorflow.keras`` / ``keras`` that sequence models use:
``keras.layers``, ``keras.models``, ``keras.Sequential``, ``keras.Input``,
``keras.optimizers``, ``keras.losses``, ``keras.metrics``, ``keras.callbacks``,
``keras.initializers``, ``keras.regularizers``, ``keras.constraints``, ``keras.ops``, ``keras.saving``, ``keras.utils`` and ``keras.preprocessing``.
"""
from . import (
    activations, backend, callbacks, constraints, initializers, layers, losses, metrics, models, ops, optimizers, preprocessing, regularizers,
    saving, utils,
)
from .layers import Input
from .models import Model, Sequential, load_model

__all__ = [
    "activations", "backend", "callbacks", "constraints", "initializers", "layers", "losses", "metrics", "models", "ops", "optimizers",
    "preprocessing", "regularizers", "saving", "utils", "Input", "Model", "Sequential", "load_model",
]
