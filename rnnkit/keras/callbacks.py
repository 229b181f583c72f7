"""``keras.callbacks``."""
from ..training.callbacks import (
    Callback, CSVLogger, EarlyStopping, History, LambdaCallback, ModelCheckpoint, ReduceLROnPlateau,
    TerminateOnNaN,
)
from ..training.tensorboard import TensorBoard

__all__ = [
    "Callback", "CSVLogger", "EarlyStopping", "History", "LambdaCallback", "ModelCheckpoint",
    "ReduceLROnPlateau", "TensorBoard", "TerminateOnNaN",
]
