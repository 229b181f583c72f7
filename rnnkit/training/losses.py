"""Loss functions with Keras's names and semantics.

Each loss maps ``(y_true, y_pred)`` to *per-sample* losses (``y_pred.shape[:-1]``
for class outputs); the training loop averages them (over unmasked steps when
the output carries a mask). Probability-output losses (``from_logits=False``)
clip as Keras does; when the model's last activation is the matching softmax or
sigmoid, the loop hands the loss logits instead, which is exact and stable.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

EPSILON = 1e-7  # keras.backend.epsilon()


def targets_like(y_true: torch.Tensor, y_pred: torch.Tensor, loss: str) -> torch.Tensor:
    """``y_true`` in ``y_pred``'s dtype, aligned as Keras aligns targets: a missing trailing axis
    of 1 added (or a surplus one dropped), then broadcast to the output's shape, so ``(batch,)``
    or ``(batch, 1)`` targets serve a ``(batch, k)`` output. Anything else is refused: a reshape
    of targets in another layout would silently pair the wrong numbers."""
    y_true = y_true.to(y_pred.dtype)
    if y_true.dim() == y_pred.dim() - 1:
        y_true = y_true.unsqueeze(-1)
    elif y_true.dim() == y_pred.dim() + 1 and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    try:
        fits = torch.broadcast_shapes(y_true.shape, y_pred.shape) == y_pred.shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(
            f"{loss}: targets of shape {tuple(y_true.shape)} do not fit the model's output of shape "
            f"{tuple(y_pred.shape)}; expected the output's shape (or one that broadcasts to it)"
        )
    return y_true


class Loss:
    name = "loss"
    #: final activation whose logits this loss can use directly (see module doc)
    logit_activation: str | None = None

    def __init__(self, from_logits: bool = False):
        self.from_logits = bool(from_logits)

    def per_sample(self, y_true: torch.Tensor, y_pred: torch.Tensor, logits: bool) -> torch.Tensor:
        raise NotImplementedError

    def mean(self, y_true: torch.Tensor, y_pred: torch.Tensor, logits: bool) -> torch.Tensor:
        """The mean of `per_sample` (a loss may compute it in one fused op)."""
        return self.per_sample(y_true, y_pred, logits).mean()

    def __call__(self, y_true, y_pred) -> torch.Tensor:
        y_true, y_pred = torch.as_tensor(y_true), torch.as_tensor(y_pred)
        return self.mean(y_true, y_pred, self.from_logits)

    def get_config(self) -> dict:
        return {"name": self.name, "from_logits": self.from_logits}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(from_logits={self.from_logits})"


class CategoricalCrossentropy(Loss):
    """``-sum(y_true * log(y_pred))`` over the last axis; ``y_true`` one-hot ``(..., classes)``."""

    name = "categorical_crossentropy"
    logit_activation = "softmax"

    def per_sample(self, y_true, y_pred, logits):
        y_true = y_true.to(y_pred.dtype)
        if y_true.shape != y_pred.shape:
            raise ValueError(
                f"categorical_crossentropy needs one-hot targets shaped like the output {tuple(y_pred.shape)}, "
                f"got {tuple(y_true.shape)} (use sparse_categorical_crossentropy for integer labels)"
            )
        if logits:
            logp = torch.log_softmax(y_pred, dim=-1)
        else:
            p = y_pred / y_pred.sum(-1, keepdim=True)
            logp = torch.log(p.clamp(EPSILON, 1 - EPSILON))
        return -(y_true * logp).sum(-1)


_NO_LABEL = torch.iinfo(torch.int64).min  # an ignore_index no real label takes


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy with integer labels ``(...)`` against outputs ``(..., classes)``."""

    name = "sparse_categorical_crossentropy"
    logit_activation = "softmax"

    @staticmethod
    def _labels(y_true, y_pred) -> torch.Tensor:
        """``y_true`` checked against the output's shape, as int64 of shape ``y_pred.shape[:-1]``."""
        if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1:
            y_true = y_true.squeeze(-1)
        if tuple(y_true.shape) != tuple(y_pred.shape[:-1]):
            raise ValueError(
                f"sparse_categorical_crossentropy needs integer labels of shape {tuple(y_pred.shape[:-1])}, "
                f"got {tuple(y_true.shape)}"
            )
        return y_true.long()

    @staticmethod
    def _check_range(y_true, classes) -> None:
        if y_true.numel():
            lo, hi = (int(v) for v in torch.aminmax(y_true))
            if lo < 0 or hi >= classes:
                raise ValueError(f"label {lo if lo < 0 else hi} is out of range for an output of {classes} classes")

    def _losses(self, y_true, y_pred, logits, reduction):
        y_true = self._labels(y_true, y_pred)
        classes = y_pred.shape[-1]
        flat_pred, flat_true = y_pred.reshape(-1, classes), y_true.reshape(-1)
        on_cpu = flat_true.device.type == "cpu"
        if not on_cpu:  # out-of-range labels would be a device assert there, not an error
            self._check_range(flat_true, classes)
        try:
            # No label is ignored (torch skips -100 by default; Keras does not).
            if logits:
                losses = F.cross_entropy(flat_pred, flat_true, reduction=reduction, ignore_index=_NO_LABEL)
            else:
                p = flat_pred / flat_pred.sum(-1, keepdim=True)
                losses = F.nll_loss(torch.log(p.clamp(EPSILON, 1 - EPSILON)), flat_true, reduction=reduction,
                                    ignore_index=_NO_LABEL)
        except IndexError:  # the CPU kernels check every label themselves
            self._check_range(flat_true, classes)
            raise
        return losses if reduction == "mean" else losses.reshape(y_true.shape)

    def per_sample(self, y_true, y_pred, logits):
        return self._losses(y_true, y_pred, logits, "none")

    def mean(self, y_true, y_pred, logits):
        # One fused op: per-sample losses then a separate mean cost ~0.5 ms more per step
        # (forward and backward) on the seed models with two threads.
        if y_true.numel() == 0:
            return self.per_sample(y_true, y_pred, logits).mean()  # nan, as the mean of nothing
        return self._losses(y_true, y_pred, logits, "mean")


class BinaryCrossentropy(Loss):
    """Mean over the last axis of ``-(y log p + (1 - y) log(1 - p))``."""

    name = "binary_crossentropy"
    logit_activation = "sigmoid"

    def per_sample(self, y_true, y_pred, logits):
        y_true = targets_like(y_true, y_pred, self.name)
        if logits:
            return F.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none").mean(-1)
        p = y_pred.clamp(EPSILON, 1 - EPSILON)
        return -(y_true * torch.log(p) + (1 - y_true) * torch.log(1 - p)).mean(-1)


class MeanSquaredError(Loss):
    name = "mean_squared_error"

    def per_sample(self, y_true, y_pred, logits):
        return (y_pred - targets_like(y_true, y_pred, self.name)).square().mean(-1)


class MeanAbsoluteError(Loss):
    name = "mean_absolute_error"

    def per_sample(self, y_true, y_pred, logits):
        return (y_pred - targets_like(y_true, y_pred, self.name)).abs().mean(-1)


_LOSSES = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
}


def _loss_function(cls: type[Loss], name: str, logits_arg: bool):
    """Keras's function form of ``cls`` (``keras.losses.mean_squared_error``, ...): per-sample losses."""
    if logits_arg:
        def fn(y_true, y_pred, from_logits: bool = False):
            return cls(from_logits=from_logits).per_sample(torch.as_tensor(y_true), torch.as_tensor(y_pred),
                                                           from_logits)
    else:  # no from_logits, as in Keras
        def fn(y_true, y_pred):
            return cls().per_sample(torch.as_tensor(y_true), torch.as_tensor(y_pred), False)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"Per-sample {name.replace('_', ' ')} (``keras.losses.{name}``); ``compile`` takes it as ``{cls.__name__}()``."
    fn.loss_class = cls
    return fn


categorical_crossentropy = _loss_function(CategoricalCrossentropy, "categorical_crossentropy", True)
sparse_categorical_crossentropy = _loss_function(SparseCategoricalCrossentropy, "sparse_categorical_crossentropy", True)
binary_crossentropy = _loss_function(BinaryCrossentropy, "binary_crossentropy", True)
mean_squared_error = mse = _loss_function(MeanSquaredError, "mean_squared_error", False)
mean_absolute_error = mae = _loss_function(MeanAbsoluteError, "mean_absolute_error", False)


class _CallableLoss(Loss):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.name = getattr(fn, "__name__", "custom_loss")

    def per_sample(self, y_true, y_pred, logits):
        out = self.fn(y_true, y_pred)
        return out if out.dim() else out.reshape(1)


def get(identifier) -> Loss:
    """A Loss from a name, a Loss instance or class, or a ``fn(y_true, y_pred)`` callable."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, str):
        cls = _LOSSES.get(identifier)
        if cls is None:
            raise ValueError(f"unknown loss {identifier!r}; expected one of {', '.join(sorted(_LOSSES))}")
        return cls()
    if isinstance(identifier, dict):
        cfg = dict(identifier)
        return _LOSSES[cfg.pop("name")](**cfg)
    if callable(identifier):
        cls = getattr(identifier, "loss_class", None)  # keras.losses.mean_squared_error and the like
        return cls() if cls is not None else _CallableLoss(identifier)
    raise ValueError(f"cannot interpret {identifier!r} as a loss")


def names() -> list[str]:
    return sorted(_LOSSES)
