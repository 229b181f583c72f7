"""``keras.optimizers`` (and ``keras.optimizers.schedules``)."""
from ..training import schedules
from ..training.optimizers import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop, get

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "get", "schedules"]
