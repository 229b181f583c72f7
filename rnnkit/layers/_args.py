"""Checks for Keras constructor arguments, shared by the core, convolutional and pooling layers.

Each check either returns the argument in the form the layer uses or raises one line
naming the layer, the argument, what it got and what it expected: an argument is never
truncated (``Dense(2.5)``) or accepted and ignored.
"""
from __future__ import annotations

import numbers

import numpy as np
import torch
from torch import nn

from .. import activations, constraints, regularizers


def positive_int(layer: str, arg: str, value) -> int:
    """``value`` as an int > 0; floats (even whole ones) and booleans are refused, as sizes."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) <= 0:
        raise ValueError(f"{layer}: {arg} must be a positive integer, got {value!r}")
    return int(value)


def positive_int_1d(layer: str, arg: str, value) -> int:
    """A 1-D window argument (``kernel_size``, ``strides``, ``pool_size``): an int or a
    1-tuple of one, as Keras's ``standardize_tuple(value, 1, ...)`` takes."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ValueError(f"{layer}: {arg} must be an integer or a tuple of 1 integer, got {value!r}")
        value = value[0]
    return positive_int(layer, arg, value)


def choice(layer: str, arg: str, value, options: tuple[str, ...]) -> str:
    """``value`` lower-cased (Keras accepts ``"SAME"``), one of ``options``."""
    if isinstance(value, str) and value.lower() in options:
        return value.lower()
    raise ValueError(f"{layer}: {arg} must be one of {', '.join(map(repr, options))}, got {value!r}")


def data_format(layer: str, value) -> str:
    """Keras's ``data_format``; None means its default, ``"channels_last"``."""
    return "channels_last" if value is None else choice(layer, "data_format", value, ("channels_last", "channels_first"))


def flag(layer: str, arg: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_, numbers.Integral)) or value not in (0, 1):
        raise ValueError(f"{layer}: {arg} must be True or False, got {value!r}")
    return bool(value)


def refuse(layer: str, **args) -> None:
    """Refuse each argument that is not at its neutral value (None / False): rnnkit has no such feature."""
    for arg, value in args.items():
        if value is not None and value is not False:
            raise ValueError(f"{layer}: {arg}= is not supported by rnnkit (got {value!r})")


class ActivationAttributes:
    """Mixin: assigning a layer's activation attribute after construction (``layer.activation
    = None``, as Keras code does) resolves it as the constructor does — None is linear — and
    keeps ``<attr>_name``, which ``get_config`` and the loss's logit shortcut read, in step."""

    _activation_attrs: tuple[str, ...] = ("activation",)

    def __setattr__(self, name, value):
        if name in type(self)._activation_attrs:
            fn = activations.get(value)
            modules = self.__dict__.get("_modules")
            if modules is not None:
                modules.pop(name, None)
            if isinstance(fn, nn.Module):  # kept a sub-module, so .to(device) moves its weights
                nn.Module.__setattr__(self, name, fn)
            else:
                object.__setattr__(self, name, fn)
            object.__setattr__(self, f"{name}_name", activations.serialize(value))
            return
        super().__setattr__(name, value)


class ActivityRegularized:
    """Mixin for Keras's ``activity_regularizer``: a penalty on the layer's output, divided by
    the batch size (Keras 3), added to the training loss with the weight penalties.

    The layer's forward calls `_record_activity` on its output; `regularization_loss` adds the
    last recorded penalty. A layer called several times in one model call (a shared layer in a
    functional model) counts only its last call."""

    def _init_activity(self, activity_regularizer) -> None:
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self._activity_penalty = None

    def _record_activity(self, output: torch.Tensor) -> torch.Tensor:
        from .base import is_probing

        if self.activity_regularizer is not None and not is_probing():
            penalty = self.activity_regularizer(output)
            if output.dim() > 0 and output.shape[0]:
                penalty = penalty / output.shape[0]
            self._activity_penalty = penalty
        return output

    def regularization_loss(self):
        total = super().regularization_loss()
        penalty = self.__dict__.get("_activity_penalty")
        if penalty is None:
            return total
        return penalty if total is None else total + penalty

    def _activity_config(self, cfg: dict) -> dict:
        if self.activity_regularizer is not None:
            cfg["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return cfg


class OneInput:
    """Mixin for layers of one input: a list of inputs (``layer([a, b])``, or a nested Python
    list, which ``Layer.__call__`` reads as one) is refused by name before the layer builds on it."""

    def build_for(self, input_shape):
        if isinstance(input_shape, list):
            raise ValueError(
                f"layer {self.name!r} ({type(self).__name__}) takes one input tensor, got a list of "
                f"{len(input_shape)} inputs with shapes {[tuple(s) for s in input_shape]} (a nested Python list is "
                f"read as a list of inputs: pass one array, padded to one length if ragged)"
            )
        return super().build_for(input_shape)


class Constrained:
    """Mixin for Keras's weight constraints (``kernel_constraint=`` ...): the layer names
    its constrained parameters and their Keras layout; after `build` each is attached
    (`rnnkit.constraints.attach`) and projected after every optimizer step that updates it."""

    # parameter -> the permutation that gives its Keras layout (None: stored as Keras's)
    _keras_layouts: dict[str, tuple[int, ...] | None] = {}

    def _init_constraints(self, **by_param) -> None:
        self._constraints = {name: constraints.get(c) for name, c in by_param.items()}

    def build_for(self, input_shape):
        super().build_for(input_shape)
        self._attach_constraints()

    def _attach_constraints(self) -> None:
        for name, constraint in self.__dict__.get("_constraints", {}).items():
            param = self._parameters.get(name)
            if param is not None:
                constraints.attach(param, constraint, self._keras_layouts.get(name))

    def __setstate__(self, state):
        # copy.deepcopy and pickle make new parameters, without the attached constraints
        super().__setstate__(state)
        self._attach_constraints()

    def _constraint_config(self, cfg: dict, **keys) -> dict:
        for key, name in keys.items():
            cfg[key] = constraints.serialize(self._constraints[name])
        return cfg
