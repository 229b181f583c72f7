"""``keras.callbacks``."""
from ..training.callbacks import (
    Callback, CSVLogger, EarlyStopping, History, LambdaCallback, ModelCheckpoint, ReduceLROnPlateau,
    TerminateOnNaN,
)

__all__ = [
    "Callback", "CSVLogger", "EarlyStopping", "History", "LambdaCallback", "ModelCheckpoint",
    "ReduceLROnPlateau", "TerminateOnNaN",
]
