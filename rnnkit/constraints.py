"""Weight constraints, as ``keras.constraints``: a projection applied to a weight after each
optimizer step (``MaxNorm``, ``MinMaxNorm``, ``NonNeg``, ``UnitNorm``).

A constraint maps a weight tensor, in Keras's layout (a Dense kernel ``(input_dim, units)``,
a Conv1D kernel ``(kernel_size, channels, filters)``), to the projected tensor; ``axis``
counts in that layout, as in Keras. Layers attach theirs to their parameters with `attach`,
and a hook on every ``torch.optim`` optimizer's ``step`` applies them to each parameter that
step updated (had a gradient), as Keras's optimizer applies ``variable.constraint`` after
each update. So any training loop that steps a torch optimizer honours them: ``fit``, the
language-model trainers, a hand-written loop.
"""
from __future__ import annotations

import numbers
from typing import Callable

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

EPSILON = 1e-7  # Keras's backend.epsilon()


def _axis(axis):
    if isinstance(axis, numbers.Integral) and not isinstance(axis, bool):
        return int(axis)
    if isinstance(axis, (list, tuple)) and axis and all(isinstance(a, numbers.Integral) for a in axis):
        return [int(a) for a in axis]
    raise ValueError(f"constraint axis must be an integer or a list of integers, got {axis!r}")


def _norms(w: torch.Tensor, axis) -> torch.Tensor:
    return w.square().sum(dim=axis, keepdim=True).sqrt()


class Constraint:
    """Maps a weight tensor (Keras layout) to its projection."""

    def __call__(self, w: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}


class MaxNorm(Constraint):
    """Rescales each weight vector along ``axis`` whose norm exceeds ``max_value`` to that norm."""

    def __init__(self, max_value=2, axis=0):
        self.max_value = float(max_value)
        self.axis = _axis(axis)

    def __call__(self, w):
        norms = _norms(w, self.axis)
        return w * (norms.clamp(0, self.max_value) / (EPSILON + norms))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class MinMaxNorm(Constraint):
    """Moves each weight vector's norm along ``axis`` towards ``[min_value, max_value]``:
    the new norm is ``rate * clip(norm, min_value, max_value) + (1 - rate) * norm``."""

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value, self.max_value, self.rate = float(min_value), float(max_value), float(rate)
        self.axis = _axis(axis)

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = self.rate * norms.clamp(self.min_value, self.max_value) + (1 - self.rate) * norms
        return w * (desired / (EPSILON + norms))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate, "axis": self.axis}


class NonNeg(Constraint):
    """Sets negative weights to zero."""

    def __call__(self, w):
        return w.clamp(min=0)


class UnitNorm(Constraint):
    """Scales each weight vector along ``axis`` to norm 1."""

    def __init__(self, axis=0):
        self.axis = _axis(axis)

    def __call__(self, w):
        return w / (EPSILON + _norms(w, self.axis))

    def get_config(self):
        return {"axis": self.axis}


max_norm, min_max_norm, non_neg, unit_norm = MaxNorm, MinMaxNorm, NonNeg, UnitNorm
_CLASSES = {cls.__name__: cls for cls in (MaxNorm, MinMaxNorm, NonNeg, UnitNorm)}
_NAMES = {"max_norm": MaxNorm, "min_max_norm": MinMaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm, **_CLASSES}


def get(identifier) -> Callable | None:
    """A constraint from None, an instance or callable, a name (``"non_neg"``, ``"MaxNorm"``)
    or a Keras config dict (``{"class_name": "MaxNorm", "config": {...}}``)."""
    if identifier is None:
        return None
    if isinstance(identifier, str):
        if identifier not in _NAMES:
            raise ValueError(f"unknown constraint {identifier!r}; expected one of {', '.join(sorted(_NAMES))}")
        return _NAMES[identifier]()
    if isinstance(identifier, dict):
        cls = _CLASSES.get(identifier.get("class_name"))
        if cls is None:
            raise ValueError(f"unknown constraint class {identifier.get('class_name')!r}; expected one of "
                             f"{', '.join(sorted(_CLASSES))}")
        return cls(**identifier.get("config", {}))
    if isinstance(identifier, type) and issubclass(identifier, Constraint):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(f"cannot interpret {identifier!r} as a constraint")


def serialize(constraint) -> dict | None:
    if constraint is None:
        return None
    if not isinstance(constraint, Constraint) or type(constraint).__name__ not in _CLASSES:
        raise ValueError(f"constraint {constraint!r} has no Keras name, so it cannot be saved")
    return {"class_name": type(constraint).__name__, "config": constraint.get_config()}


# ------------------------------------------------------------------ application
_ATTR = "_rnnkit_constraint"


def attach(param: torch.nn.Parameter, constraint, permute: tuple[int, ...] | None = None) -> None:
    """Make the optimizer hook project ``param`` with ``constraint`` after each step;
    ``param.permute(*permute)`` is its Keras layout (as stored when None)."""
    if constraint is None:
        if hasattr(param, _ATTR):
            delattr(param, _ATTR)
        return
    setattr(param, _ATTR, (constraint, permute))


def apply(param: torch.Tensor) -> None:
    """Project ``param`` in place with its attached constraint (if any)."""
    attached = getattr(param, _ATTR, None)
    if attached is None:
        return
    constraint, permute = attached
    with torch.no_grad():
        view = param.permute(*permute) if permute is not None else param
        view.copy_(constraint(view))


def _after_step(optimizer, args, kwargs) -> None:
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is not None and hasattr(p, _ATTR):  # Keras skips variables without a gradient
                apply(p)


_HOOK = register_optimizer_step_post_hook(_after_step)
