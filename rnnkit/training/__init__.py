"""Training: losses, metrics, optimizers, callbacks, progress and the fit loop."""
from . import callbacks, losses, metrics, optimizers
from .loop import TrainingError

__all__ = ["callbacks", "losses", "metrics", "optimizers", "TrainingError"]
