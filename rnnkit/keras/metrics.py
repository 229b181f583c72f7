"""``keras.metrics``."""
from ..training.metrics import (
    Accuracy, BinaryAccuracy, CategoricalAccuracy, CategoricalCrossentropy, Mean, MeanAbsoluteError,
    MeanSquaredError, Metric, SparseCategoricalAccuracy, SparseCategoricalCrossentropy, SparseTopKCategoricalAccuracy,
    Sum, TopKCategoricalAccuracy, deserialize, get, serialize,
)

__all__ = [
    "Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "CategoricalCrossentropy", "Mean", "MeanAbsoluteError",
    "MeanSquaredError", "Metric", "SparseCategoricalAccuracy", "SparseCategoricalCrossentropy",
    "SparseTopKCategoricalAccuracy", "Sum", "TopKCategoricalAccuracy", "deserialize", "get", "serialize",
]
