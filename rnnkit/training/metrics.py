"""Streaming metrics (accumulated over an epoch) with Keras's names."""
from __future__ import annotations

import torch


class Metric:
    """Accumulates ``update(y_true, y_pred, mask)`` calls; ``result()`` is the running mean.

    Totals stay on the device as tensors so training never waits on a metric."""

    name = "metric"

    def __init__(self, name: str | None = None):
        if name:
            self.name = name
        self.reset()

    def reset(self) -> None:
        self.total = None
        self.count = None

    def values(self, y_true, y_pred) -> torch.Tensor:  # per-sample values
        raise NotImplementedError

    def update(self, y_true, y_pred, mask=None) -> None:
        v = self.values(y_true, y_pred).float()
        if mask is not None and mask.shape == v.shape:
            m = mask.float()
            total, count = (v * m).sum(), m.sum()
        else:
            total, count = v.sum(), torch.tensor(float(v.numel()), device=v.device)
        self.total = total.detach() if self.total is None else self.total + total.detach()
        self.count = count if self.count is None else self.count + count

    def sync(self) -> None:
        """Sum the totals over all data-parallel processes (no-op when not distributed)."""
        from .. import distributed

        if self.total is not None and distributed.is_active():
            both = distributed.all_reduce_sum(torch.stack([self.total.float(), self.count.float()]))
            self.total, self.count = both[0], both[1]

    def result(self) -> float:
        if self.total is None:
            return 0.0
        return float(self.total / self.count.clamp(min=1))


def _labels(y_true, y_pred):
    if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    return y_true.long()


class SparseCategoricalAccuracy(Metric):
    name = "sparse_categorical_accuracy"

    def values(self, y_true, y_pred):
        return (y_pred.argmax(-1) == _labels(y_true, y_pred)).float()


class CategoricalAccuracy(Metric):
    name = "categorical_accuracy"

    def values(self, y_true, y_pred):
        return (y_pred.argmax(-1) == y_true.argmax(-1)).float()


class BinaryAccuracy(Metric):
    name = "binary_accuracy"

    def __init__(self, name=None, threshold: float = 0.5):
        super().__init__(name)
        self.threshold = threshold

    def values(self, y_true, y_pred):
        return ((y_pred > self.threshold).float() == y_true.reshape(y_pred.shape).float()).float().mean(-1)


class MeanSquaredError(Metric):
    name = "mean_squared_error"

    def values(self, y_true, y_pred):
        return (y_pred - y_true.reshape(y_pred.shape)).square().mean(-1)


class MeanAbsoluteError(Metric):
    name = "mean_absolute_error"

    def values(self, y_true, y_pred):
        return (y_pred - y_true.reshape(y_pred.shape)).abs().mean(-1)


_METRICS = {
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
}
_ACCURACY_BY_LOSS = {
    "sparse_categorical_crossentropy": SparseCategoricalAccuracy,
    "categorical_crossentropy": CategoricalAccuracy,
    "binary_crossentropy": BinaryAccuracy,
}


def get(identifier, loss_name: str | None = None, output_shape=None) -> Metric:
    """A Metric from a name or instance. ``"accuracy"``/``"acc"`` picks the variant that fits the
    loss (as Keras): sparse for sparse labels, categorical for one-hot, binary for sigmoid outputs."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if identifier in ("accuracy", "acc"):
        cls = _ACCURACY_BY_LOSS.get(loss_name)
        if cls is None:
            last = output_shape[-1] if output_shape else None
            cls = BinaryAccuracy if last == 1 else CategoricalAccuracy
        return cls(name=identifier)
    cls = _METRICS.get(identifier)
    if cls is None:
        raise ValueError(
            f"unknown metric {identifier!r}; expected accuracy or one of {', '.join(sorted(_METRICS))}"
        )
    return cls(name=identifier)
