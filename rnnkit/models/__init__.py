"""Models: `Model` (the base, and the subclassing API), `Sequential` (a stack of layers) and
`Functional` (``Model(inputs, outputs)``, a graph of layer calls); `summary` prints their tables."""
from .model import Model
from .sequential import Sequential
from .functional import Functional

__all__ = ["Model", "Sequential", "Functional"]

from ..layers.registry import register as _register

for _cls in (Sequential, Functional):
    _register(_cls)
