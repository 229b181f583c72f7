"""Merge layers: combine a list of tensors into one (Add, Subtract, Multiply, Average,
Maximum, Minimum, Concatenate, Dot), and their functional forms (``add(inputs)``, ...).

Each layer is called on a list of tensors ``[x1, x2, ...]`` with the batch axis first, and
an optional list of masks (one per input, ``None`` for an unmasked input; a mask has the
input's shape without its last axis, e.g. ``(batch, time)`` for ``(batch, time, features)``).

Masks follow Keras 3:

- the output mask of the element-wise merges is the OR of the input masks (``None`` as soon
  as one input has none);
- ``Multiply`` reads a masked step of an input as 1, and zeroes the output where every
  input is masked (when all inputs have masks); ``Maximum``/``Minimum`` fill a masked step of
  one input with the other's value, so a step masked in one input takes the other's;
  ``Add``, ``Subtract`` and ``Average`` use the values as they are;
- ``Concatenate`` concatenates the masks along its axis (an unmasked input counts as all
  ones) and reduces them over the last axis;
- ``Dot`` outputs no mask.
"""
from __future__ import annotations

import torch

from .base import Layer, format_shape
from .registry import register


def _name(layer) -> str:
    return f"layer {layer.name!r} ({type(layer).__name__})"


def _inputs_list(layer, inputs, what: str = "a list of tensors"):
    if not isinstance(inputs, (list, tuple)):
        got = format_shape(tuple(inputs.shape)) if hasattr(inputs, "shape") else type(inputs).__name__
        raise ValueError(f"{_name(layer)} should be called on {what}, got a single input of shape {got}")
    return list(inputs)


def _masks_list(layer, inputs, mask):
    if mask is None:
        return [None] * len(inputs)
    if not isinstance(mask, (list, tuple)) or len(mask) != len(inputs):
        raise ValueError(
            f"{_name(layer)} takes one mask per input (a list of {len(inputs)}, None for an unmasked input), "
            f"got {type(mask).__name__}{'' if not isinstance(mask, (list, tuple)) else ' of ' + str(len(mask))}"
        )
    return list(mask)


def _batch_shapes(inputs) -> list:
    return [tuple(t.shape) for t in inputs]


def _expand_mask(layer, mask, x):
    # Keras broadcasts a mask over the last axis: (batch, time) -> (batch, time, features).
    if mask.dim() != x.dim() - 1 or tuple(mask.shape) != tuple(x.shape[:-1]):
        raise ValueError(
            f"{_name(layer)}: a mask of shape {tuple(mask.shape)} does not fit an input of shape "
            f"{tuple(x.shape)}; expected the input's shape without its last axis, {tuple(x.shape[:-1])}"
        )
    return mask.unsqueeze(-1).expand(x.shape)


class _Merge(Layer):
    """Element-wise merge of a list of tensors of one shape (or shapes that broadcast)."""

    supports_masking = True
    _exact_inputs: int | None = None

    # ----------------------------------------------------------------- shapes
    def _elementwise_shape(self, shape1, shape2, full):
        # Keras's rule, on shapes without the batch axis: axes align from the right, a 1
        # broadcasts, None is unknown; the shorter shape's missing axes are taken as 1.
        if len(shape1) < len(shape2):
            shape1, shape2 = shape2, shape1
        if not shape2:
            return tuple(shape1)
        out = list(shape1[: len(shape1) - len(shape2)])
        for i, j in zip(shape1[len(shape1) - len(shape2):], shape2):
            if i is None or j is None:
                out.append(None)
            elif i == 1 or j == 1:
                out.append(j if i == 1 else i)
            elif i != j:
                raise ValueError(f"{_name(self)} got inputs of incompatible shapes {format_shape(full)}")
            else:
                out.append(i)
        return tuple(out)

    def _check_inputs(self, input_shape):
        if not isinstance(input_shape, list):
            raise ValueError(
                f"{_name(self)} should be called on a list of tensors, got a single input of shape "
                f"{format_shape(input_shape)}"
            )
        if not input_shape:
            raise ValueError(f"{_name(self)} should be called on a list of at least 1 input, got an empty list")
        if self._exact_inputs is not None and len(input_shape) != self._exact_inputs:
            raise ValueError(
                f"{_name(self)} should be called on exactly {self._exact_inputs} inputs, got {len(input_shape)}: "
                f"{format_shape(input_shape)}"
            )
        batch = {s[0] for s in input_shape} - {None}
        if len(batch) > 1:
            raise ValueError(f"{_name(self)} cannot merge tensors of different batch sizes: {format_shape(input_shape)}")

    def build(self, input_shape):
        self._check_inputs(input_shape)
        self.compute_output_shape(input_shape)

    def compute_output_shape(self, input_shape):
        self._check_inputs(input_shape)
        out = tuple(input_shape[0][1:])
        for shape in input_shape[1:]:
            out = self._elementwise_shape(out, tuple(shape[1:]), input_shape)
        batch = {s[0] for s in input_shape} - {None}
        return (batch.pop() if len(batch) == 1 else None,) + out

    # ------------------------------------------------------------------- call
    def forward(self, inputs, mask=None, training=None):
        inputs = _inputs_list(self, inputs)
        masks = _masks_list(self, inputs, mask)
        self.compute_output_shape(_batch_shapes(inputs))
        if len({t.dim() for t in inputs}) > 1:
            # Lower-rank inputs gain axes after the batch axis, so they broadcast along the
            # others' middle axes. As in Keras, the masks do not reach the merge then.
            rank = max(t.dim() for t in inputs)
            inputs = [t.reshape(t.shape[:1] + (1,) * (rank - t.dim()) + t.shape[1:]) for t in inputs]
            masks = [None] * len(inputs)
        return self._merge(inputs, masks)

    def _merge(self, inputs, masks):
        raise NotImplementedError

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        if not isinstance(mask, (list, tuple)):
            raise ValueError(f"{_name(self)}: mask should be a list (one per input), got {type(mask).__name__}")
        if any(m is None for m in mask):
            return None
        out = mask[0]
        for m in mask[1:]:
            out = out | m
        return out


@register
class Add(_Merge):
    """Element-wise sum of a list of tensors of the same shape: ``x1 + x2 + ...``.

    Input: a list of tensors ``(batch, ...)`` whose shapes match or broadcast (size-1
    axes; a lower-rank input broadcasts along the middle axes). Output: their common shape.
    """

    def _merge(self, inputs, masks):
        out = inputs[0]
        for x in inputs[1:]:
            out = out + x
        return out


@register
class Subtract(_Merge):
    """``x1 - x2`` for a list of exactly two tensors of the same shape."""

    _exact_inputs = 2

    def _merge(self, inputs, masks):
        return inputs[0] - inputs[1]


@register
class Average(_Merge):
    """Element-wise mean of a list of tensors of the same shape."""

    def _merge(self, inputs, masks):
        out = inputs[0]
        for x in inputs[1:]:
            out = out + x
        return out / len(inputs)


@register
class Multiply(_Merge):
    """Element-wise product of a list of tensors of the same shape.

    A masked step of an input counts as 1; when every input has a mask, the output is 0
    where all of them are masked (as Keras 3)."""

    def _merge(self, inputs, masks):
        every = all(m is not None for m in masks)
        out = out_mask = None
        for x, m in zip(inputs, masks):
            if m is not None:
                m = _expand_mask(self, m, x)
                x = torch.where(m, x, torch.ones((), dtype=x.dtype, device=x.device))
                if every:
                    out_mask = m if out_mask is None else out_mask | m
            out = x if out is None else out * x
        if every:
            out = torch.where(out_mask, out, torch.zeros((), dtype=out.dtype, device=out.device))
        return out


class _Extremum(_Merge):
    _op = None

    def _merge(self, inputs, masks):
        # Keras's _apply_merge_op_and_or_mask: a masked step takes the value of the other
        # operand, so it never wins unless both are masked there.
        out = out_mask = None
        for x, m in zip(inputs, masks):
            if m is not None:
                m = _expand_mask(self, m, x)
            if out is None:
                out, out_mask = x, m
                continue
            if m is not None:
                x = torch.where(m, x, out)
            if out_mask is not None:
                out = torch.where(out_mask, out, x)
            out_mask = out_mask | m if (m is not None and out_mask is not None) else None
            out = type(self)._op(out, x)
        return out


@register
class Maximum(_Extremum):
    """Element-wise maximum of a list of tensors of the same shape (masked steps of one input
    take the other inputs' values)."""

    _op = torch.maximum


@register
class Minimum(_Extremum):
    """Element-wise minimum of a list of tensors of the same shape (masked steps of one input
    take the other inputs' values)."""

    _op = torch.minimum


@register
class Concatenate(_Merge):
    """Concatenates a list of tensors along ``axis``.

    Args:
        axis: the axis to join along (default -1, the features); the inputs' other axes
            must match.

    Input: ``[(batch, ..., d1, ...), (batch, ..., d2, ...)]``; output ``(batch, ..., d1 + d2, ...)``.
    The output mask is the inputs' masks concatenated along ``axis`` (all ones for an
    unmasked input), reduced with ``any`` over the last axis: joining features keeps the
    steps that any input keeps, joining along time joins the time masks.
    """

    def __init__(self, axis: int = -1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"Concatenate: axis must be an integer, got {axis!r}")
        self.axis = axis

    def _check_inputs(self, input_shape):
        if not isinstance(input_shape, list) or not input_shape:
            got = "an empty list" if isinstance(input_shape, list) else f"a single input of shape {format_shape(input_shape)}"
            raise ValueError(f"{_name(self)} should be called on a list of at least 1 input, got {got}")
        reduced = set()
        for shape in input_shape:
            if not -len(shape) <= self.axis < len(shape):
                raise ValueError(f"{_name(self)}: axis {self.axis} is out of range for input shape {tuple(shape)}")
            rest = [None if d is None else int(d) for d in shape]  # int: a traced size is a tensor
            del rest[self.axis]
            reduced.add(tuple(rest))
        ranks = {len(s) for s in reduced}
        mismatch = len(ranks) != 1 or any(
            len({s[i] for s in reduced} - {None}) > 1 for i in range(next(iter(ranks)))
        )
        if mismatch:
            raise ValueError(
                f"{_name(self)} requires inputs with matching shapes except for the concatenation axis "
                f"{self.axis}, got {format_shape(input_shape)}"
            )

    def compute_output_shape(self, input_shape):
        self._check_inputs(input_shape)
        out = list(input_shape[0])
        for shape in input_shape[1:]:
            if out[self.axis] is None or shape[self.axis] is None:
                out[self.axis] = None
                break
            out[self.axis] += shape[self.axis]
        return tuple(out)

    def forward(self, inputs, mask=None, training=None):
        inputs = _inputs_list(self, inputs)
        _masks_list(self, inputs, mask)
        self._check_inputs(_batch_shapes(inputs))
        return torch.cat(inputs, dim=self.axis)

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        inputs = _inputs_list(self, inputs)
        masks = _masks_list(self, inputs, mask)
        if all(m is None for m in masks):
            return None
        full = []
        for x, m in zip(inputs, masks):
            if m is None:
                full.append(torch.ones(x.shape, dtype=torch.bool, device=x.device))
            elif m.dim() < x.dim():
                full.append(m.unsqueeze(-1).expand(x.shape))
            else:
                full.append(m)
        return torch.cat(full, dim=self.axis).any(dim=-1)

    def get_config(self):
        cfg = super().get_config()
        cfg["axis"] = self.axis
        return cfg


def _batch_dot(x: torch.Tensor, y: torch.Tensor, a0: int, a1: int) -> torch.Tensor:
    """Keras's ``batch_dot``: per sample, sum ``x`` over axis ``a0`` against ``y`` over ``a1``.

    The output keeps ``x``'s other axes, then ``y``'s (less its batch axis); a rank-1
    result becomes ``(batch, 1)``."""
    x_rank, y_rank = x.dim(), y.dim()
    if x_rank == 2:
        x, a0 = x.unsqueeze(1), a0 + 1
    if y_rank == 2:
        y = y.unsqueeze(2)
    x = torch.movedim(x, a0, -1)  # (batch, *x_rest, k)
    y = torch.movedim(y, a1, 1)  # (batch, k, *y_rest)
    b, k = x.shape[0], x.shape[-1]
    out = torch.bmm(x.reshape(b, -1, k), y.reshape(b, k, -1))
    out = out.reshape(x.shape[:-1] + y.shape[2:])
    if x_rank == 2:
        out = out.squeeze(1)
    elif y_rank == 2:
        out = out.squeeze(-1)
    return out


def _l2_normalize(x: torch.Tensor, axis: int) -> torch.Tensor:
    # keras.ops.normalize: x * min(1 / ||x||, 1 / epsilon), epsilon = 1e-7.
    inv = torch.rsqrt(x.square().sum(dim=axis, keepdim=True))
    return x * torch.clamp(inv, max=1e7)


@register
class Dot(_Merge):
    """Per-sample dot product of two tensors along one axis of each.

    Args:
        axes: an integer (the same axis of both inputs) or a pair ``(axis_of_x1, axis_of_x2)``;
            the two axes must have the same size, and cannot be the batch axis 0.
        normalize: L2-normalize both inputs along their axes first, so the output is the
            cosine similarity (default False).

    Input: ``[x1, x2]`` of rank >= 2. Output: ``x1``'s shape without its dot axis, then
    ``x2``'s without its batch and dot axes, e.g. ``(batch, 5, 3)`` and ``(batch, 4, 3)``
    with ``axes=-1`` give ``(batch, 5, 4)``; ``(batch, 3)`` and ``(batch, 3)`` with ``axes=1``
    give ``(batch, 1)``. No mask is output.
    """

    _exact_inputs = 2

    def __init__(self, axes, normalize: bool = False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axes, (list, tuple)):
            if len(axes) != 2 or not all(isinstance(a, int) and not isinstance(a, bool) for a in axes):
                raise ValueError(f"Dot: axes must be an integer or a pair of integers, got {axes!r}")
        elif isinstance(axes, bool) or not isinstance(axes, int):
            raise TypeError(f"Dot: axes must be an integer or a pair of integers, got {axes!r}")
        self.axes = tuple(axes) if isinstance(axes, (list, tuple)) else axes
        self.normalize = bool(normalize)

    def _axes_for(self, rank1: int, rank2: int) -> tuple[int, int]:
        axes = (self.axes, self.axes) if isinstance(self.axes, int) else self.axes
        return axes[0] % rank1, axes[1] % rank2

    def _check_inputs(self, input_shape):
        super()._check_inputs(input_shape)
        shape1, shape2 = input_shape
        if len(shape1) < 2 or len(shape2) < 2:
            raise ValueError(f"{_name(self)} needs inputs of rank >= 2, got {format_shape(input_shape)}")
        axes = (self.axes, self.axes) if isinstance(self.axes, int) else self.axes
        for a, shape in zip(axes, input_shape):
            if not -len(shape) <= a < len(shape):
                raise ValueError(f"{_name(self)}: axis {a} is out of range for input shape {tuple(shape)}")
        a0, a1 = self._axes_for(len(shape1), len(shape2))
        if 0 in (a0, a1):
            raise ValueError(f"{_name(self)} cannot take the dot product over the batch axis 0 (axes={self.axes!r})")
        if shape1[a0] != shape2[a1]:
            raise ValueError(
                f"{_name(self)} got incompatible inputs: axis {a0} of {tuple(shape1)} has size {shape1[a0]}, "
                f"axis {a1} of {tuple(shape2)} has size {shape2[a1]}"
            )

    def compute_output_shape(self, input_shape):
        self._check_inputs(input_shape)
        a0, a1 = self._axes_for(len(input_shape[0]), len(input_shape[1]))
        shape1, shape2 = list(input_shape[0]), list(input_shape[1])
        shape1.pop(a0)
        shape2.pop(a1)
        out = shape1 + shape2[1:]
        return tuple(out + [1] if len(out) == 1 else out)

    def forward(self, inputs, mask=None, training=None):
        inputs = _inputs_list(self, inputs, "a list of 2 tensors")
        _masks_list(self, inputs, mask)
        self._check_inputs(_batch_shapes(inputs))
        x1, x2 = inputs
        a0, a1 = self._axes_for(x1.dim(), x2.dim())
        if self.normalize:
            x1, x2 = _l2_normalize(x1, a0), _l2_normalize(x2, a1)
        return _batch_dot(x1, x2, a0, a1)

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        cfg = super().get_config()
        cfg.update(axes=list(self.axes) if isinstance(self.axes, tuple) else self.axes, normalize=self.normalize)
        return cfg


# ----------------------------------------------------------- functional forms
def add(inputs, **kwargs):
    """``Add(**kwargs)(inputs)``: the element-wise sum of a list of tensors."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    """``Subtract(**kwargs)(inputs)``: ``inputs[0] - inputs[1]``."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    """``Multiply(**kwargs)(inputs)``: the element-wise product of a list of tensors."""
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    """``Average(**kwargs)(inputs)``: the element-wise mean of a list of tensors."""
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    """``Maximum(**kwargs)(inputs)``: the element-wise maximum of a list of tensors."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    """``Minimum(**kwargs)(inputs)``: the element-wise minimum of a list of tensors."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis: int = -1, **kwargs):
    """``Concatenate(axis, **kwargs)(inputs)``: the tensors joined along ``axis``."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs, axes=-1, **kwargs):
    """``Dot(axes, **kwargs)(inputs)``: the per-sample dot product of two tensors
    (``normalize=True`` for the cosine similarity)."""
    return Dot(axes=axes, **kwargs)(inputs)
