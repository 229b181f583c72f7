"""Streaming metrics (accumulated over an epoch) with Keras 3's names, API and numbers.

Standalone, as ``keras.metrics``: ``m.update_state(y_true, y_pred, sample_weight=None)``,
``m.result()``, ``m.reset_state()``, ``m.name``, ``get_config()``/``from_config()``, and calling
``m(y_true, y_pred)`` updates and returns the result. The training loop uses ``update(y_true,
y_pred, mask)`` (the output mask weighs the steps, as Keras applies masks to metrics),
``result()``, ``reset()`` and ``sync()``.

Weighting follows Keras 3 (``reduce_to_samplewise_values``): the per-element values are averaged
down to the sample weight's rank, weighted, then averaged per sample; the result is
``sum(weighted values) / sum(weights)`` (the number of samples without weights), 0 before any update.
"""
from __future__ import annotations

import numpy as np
import torch

from . import losses as losses_mod


class MetricResult(float):
    """A metric's value: a Python float that also answers ``.numpy()`` and ``.item()``, as the
    scalar tensor Keras returns does."""

    def numpy(self) -> np.float32:
        return np.float32(self)

    def item(self) -> float:
        return float(self)


def _tensor(x) -> torch.Tensor:
    from ..ops import convert_to_tensor

    return convert_to_tensor(x)


def _same_rank(x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Keras's ``squeeze_or_expand_to_same_rank``: ranks that differ by one trailing axis of 1."""
    if x1.dim() == x2.dim() + 1 and x1.shape[-1] == 1:
        x2, x1 = (x2.unsqueeze(-1), x1) if x2.dim() == 1 else (x2, x1.squeeze(-1))
    elif x2.dim() == x1.dim() + 1 and x2.shape[-1] == 1:
        x1, x2 = (x1.unsqueeze(-1), x2) if x1.dim() == 1 else (x1, x2.squeeze(-1))
    return x1, x2


class Metric:
    """Base class: subclasses define ``values(y_true, y_pred)`` (per-element values) and, with
    arguments, ``get_config``. Totals stay on the device as tensors, so training never waits on a
    metric."""

    name = "metric"
    _reduce = staticmethod(torch.mean)  # how values are averaged to the weights' rank

    def __init__(self, name: str | None = None, dtype=None):
        if dtype not in (None, "float32", torch.float32):
            raise ValueError(f"{type(self).__name__}: only float32 metrics are supported, got dtype={dtype!r}")
        if name:
            self.name = name
        self.reset()

    # --- Keras 3's API
    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        y_true, y_pred = _tensor(y_true), _tensor(y_pred)
        self._accumulate(self.values(y_true, y_pred), sample_weight)

    def result(self) -> MetricResult:
        if self.total is None:
            return MetricResult(0.0)
        count = float(self.count)
        return MetricResult(float(self.total) / count if count else 0.0)

    def reset_state(self) -> None:
        self.reset()

    def __call__(self, *args, **kwargs) -> MetricResult:
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": "float32"}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name} result={self.result():.4f}>"

    # --- what the training loop calls
    def reset(self) -> None:
        self.total = None
        self.count = None

    def values(self, y_true, y_pred) -> torch.Tensor:
        raise NotImplementedError

    def update(self, y_true, y_pred, mask=None) -> None:
        v = self.values(y_true, y_pred)
        # The output's mask weighs its steps; a mask of another shape is not this output's.
        weight = mask if mask is not None and tuple(mask.shape) == tuple(v.shape[: mask.dim()]) else None
        self._accumulate(v, weight)

    def sync(self) -> None:
        """Sum the totals over all data-parallel processes (no-op when not distributed)."""
        from .. import distributed

        if self.total is not None and distributed.is_active():
            both = distributed.all_reduce_sum(torch.stack([self.total.float(), self.count.float()]))
            self.total, self.count = both[0], both[1]

    def _accumulate(self, values: torch.Tensor, sample_weight=None) -> None:
        values = values.detach().float()
        reduce = self._reduce
        if sample_weight is not None:
            weight = _tensor(sample_weight).to(device=values.device, dtype=torch.float32)
            values, weight = _same_rank(values, weight)
            if values.dim() > weight.dim():
                values = reduce(values, dim=tuple(range(weight.dim(), values.dim())))
            try:
                weight = torch.broadcast_to(weight, values.shape)
            except RuntimeError:
                raise ValueError(f"{self.name}: sample_weight of shape {tuple(weight.shape)} does not fit values "
                                 f"of shape {tuple(values.shape)}") from None
            values = values * weight
            if weight.dim() > 1:
                weight = reduce(weight, dim=tuple(range(1, weight.dim())))
            count = weight.sum()
        else:
            count = torch.tensor(float(values.shape[0]) if values.dim() else 1.0, device=values.device)
        if values.dim() > 1:
            values = reduce(values, dim=tuple(range(1, values.dim())))
        total = values.sum()
        self.total = total if self.total is None else self.total + total
        self.count = count if self.count is None else self.count + count


class Mean(Metric):
    """The (weighted) mean of the values given: ``update_state(values, sample_weight=None)``."""

    name = "mean"

    def update_state(self, values, sample_weight=None) -> None:
        self._accumulate(_tensor(values), sample_weight)


class Sum(Mean):
    """The (weighted) sum of the values given: ``update_state(values, sample_weight=None)``."""

    name = "sum"
    _reduce = staticmethod(torch.sum)

    def result(self) -> MetricResult:
        return MetricResult(0.0 if self.total is None else float(self.total))


class Accuracy(Metric):
    """How often ``y_pred`` equals ``y_true`` exactly."""

    name = "accuracy"

    def values(self, y_true, y_pred):
        y_true, y_pred = _same_rank(y_true.to(y_pred.dtype), y_pred)
        return (y_true == y_pred).float()


def _labels(y_true, y_pred):
    if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    return y_true.long()


class SparseCategoricalAccuracy(Metric):
    """How often the integer label is the arg-max of the prediction."""

    name = "sparse_categorical_accuracy"

    def values(self, y_true, y_pred):
        return (y_pred.argmax(-1) == _labels(y_true, y_pred)).float()


class CategoricalAccuracy(Metric):
    """How often the one-hot label's class is the arg-max of the prediction."""

    name = "categorical_accuracy"

    def values(self, y_true, y_pred):
        return (y_pred.argmax(-1) == y_true.argmax(-1)).float()


class BinaryAccuracy(Metric):
    """How often ``y_pred > threshold`` matches the 0/1 label (element-wise)."""

    name = "binary_accuracy"

    def __init__(self, name=None, dtype=None, threshold: float = 0.5):
        super().__init__(name, dtype)
        self.threshold = threshold

    def values(self, y_true, y_pred):
        y_true, y_pred = _same_rank(y_true, y_pred)
        return ((y_pred > self.threshold).to(y_true.dtype) == y_true).float()

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


def _in_top_k(target_scores: torch.Tensor, scores: torch.Tensor, k: int) -> torch.Tensor:
    # As tf.math.in_top_k: ties at the k-th place count as in the top k.
    return ((scores > target_scores.unsqueeze(-1)).sum(-1) < k).float()


class TopKCategoricalAccuracy(Metric):
    """How often the one-hot label's class is among the ``k`` highest predictions."""

    name = "top_k_categorical_accuracy"

    def __init__(self, k: int = 5, name=None, dtype=None):
        super().__init__(name, dtype)
        self.k = int(k)

    def values(self, y_true, y_pred):
        target = y_true.argmax(-1, keepdim=True)
        return _in_top_k(torch.gather(y_pred, -1, target).squeeze(-1), y_pred, self.k)

    def get_config(self):
        return {**super().get_config(), "k": self.k}


class SparseTopKCategoricalAccuracy(Metric):
    """How often the integer label is among the ``k`` highest predictions; with
    ``from_sorted_ids=True``, ``y_pred`` holds class ids, best first, and the label is looked for
    among the first ``k``."""

    name = "sparse_top_k_categorical_accuracy"

    def __init__(self, k: int = 5, name=None, dtype=None, from_sorted_ids: bool = False):
        super().__init__(name, dtype)
        self.k, self.from_sorted_ids = int(k), bool(from_sorted_ids)

    def values(self, y_true, y_pred):
        labels = _labels(y_true, y_pred)
        if self.from_sorted_ids:
            return (y_pred[..., : self.k].long() == labels.unsqueeze(-1)).any(-1).float()
        return _in_top_k(torch.gather(y_pred, -1, labels.unsqueeze(-1)).squeeze(-1), y_pred, self.k)

    def get_config(self):
        cfg = {**super().get_config(), "k": self.k}
        if self.from_sorted_ids:  # Keras writes the key only when set
            cfg["from_sorted_ids"] = True
        return cfg


class MeanSquaredError(Metric):
    name = "mean_squared_error"

    def values(self, y_true, y_pred):
        y_true, y_pred = _same_rank(y_true.to(y_pred.dtype), y_pred)
        return (y_pred - y_true).square().mean(-1)


class MeanAbsoluteError(Metric):
    name = "mean_absolute_error"

    def values(self, y_true, y_pred):
        y_true, y_pred = _same_rank(y_true.to(y_pred.dtype), y_pred)
        return (y_pred - y_true).abs().mean(-1)


def _check_axis(metric, axis) -> None:
    if axis != -1:
        raise ValueError(f"{type(metric).__name__}: axis={axis!r} is not supported; rnnkit's classes are on axis -1")


class CategoricalCrossentropy(Metric):
    """The cross-entropy of one-hot labels (smoothed by ``label_smoothing``) and the prediction
    (probabilities, or logits with ``from_logits=True``)."""

    name = "categorical_crossentropy"

    def __init__(self, name=None, dtype=None, from_logits: bool = False, label_smoothing=0, axis: int = -1):
        super().__init__(name, dtype)
        _check_axis(self, axis)
        self.from_logits, self.label_smoothing, self.axis = bool(from_logits), label_smoothing, axis

    def values(self, y_true, y_pred):
        y_true = y_true.to(y_pred.dtype)
        if self.label_smoothing:
            y_true = y_true * (1.0 - self.label_smoothing) + self.label_smoothing / y_pred.shape[-1]
        return losses_mod.CategoricalCrossentropy().per_sample(y_true, y_pred, self.from_logits)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits, "label_smoothing": self.label_smoothing,
                "axis": self.axis}


class SparseCategoricalCrossentropy(Metric):
    """The cross-entropy of integer labels and the prediction (probabilities, or logits with
    ``from_logits=True``); labels equal to ``ignore_class`` count neither in the sum nor in the count."""

    name = "sparse_categorical_crossentropy"

    def __init__(self, name=None, dtype=None, from_logits: bool = False, ignore_class=None, axis: int = -1):
        super().__init__(name, dtype)
        _check_axis(self, axis)
        self.from_logits, self.ignore_class, self.axis = bool(from_logits), ignore_class, axis

    def _split(self, y_true, y_pred):
        labels = _labels(y_true, y_pred)
        if self.ignore_class is None:
            return labels, None
        keep = labels != int(self.ignore_class)
        return torch.where(keep, labels, torch.zeros_like(labels)), keep.float()

    def values(self, y_true, y_pred):
        labels, keep = self._split(y_true, y_pred)
        v = losses_mod.SparseCategoricalCrossentropy().per_sample(labels, y_pred, self.from_logits)
        return v if keep is None else v * keep

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        y_true, y_pred = _tensor(y_true), _tensor(y_pred)
        _, keep = self._split(y_true, y_pred)
        if keep is not None:  # Keras masks the ignored labels out of the weights
            sample_weight = keep if sample_weight is None else _tensor(sample_weight).to(keep.device) * keep
        self._accumulate(self.values(y_true, y_pred), sample_weight)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits, "ignore_class": self.ignore_class,
                "axis": self.axis}


_METRICS = {
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
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
    if isinstance(identifier, dict):  # Keras's serialized form
        cls = _CLASSES.get(identifier.get("class_name"))
        if cls is None:
            raise ValueError(f"unknown metric class {identifier.get('class_name')!r}; expected one of "
                             f"{', '.join(sorted(_CLASSES))}")
        return cls.from_config(dict(identifier.get("config") or {}))
    cls = _METRICS.get(identifier)
    if cls is None:
        raise ValueError(
            f"unknown metric {identifier!r}; expected accuracy or one of {', '.join(sorted(_METRICS))}"
        )
    return cls(name=identifier)


_CLASSES = {cls.__name__: cls for cls in (
    Mean, Sum, Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy, TopKCategoricalAccuracy,
    SparseTopKCategoricalAccuracy, MeanSquaredError, MeanAbsoluteError, CategoricalCrossentropy,
    SparseCategoricalCrossentropy)}


def serialize(metric: Metric) -> dict:
    return {"module": "keras.metrics", "class_name": type(metric).__name__, "config": metric.get_config(),
            "registered_name": None}


deserialize = get
