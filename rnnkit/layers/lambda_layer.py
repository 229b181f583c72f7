"""``Lambda`` (a Python function as a layer) and the operation layers that arithmetic and
indexing on symbolic tensors record (``x + y``, ``2 * x``, ``x[:, -1]`` in a functional model).

A ``Lambda``'s function lives only in the process that made it: a saved config names the
function, and loading it needs that function given again (``custom_objects={"name": fn}``)
— nothing is ever executed or unpickled from a file.
"""
from __future__ import annotations

import inspect
from typing import Callable

import torch

from .base import Layer
from .registry import register
from .symbolic import KerasTensor, set_tensor_op


@register
class Lambda(Layer):
    """Wraps ``function(inputs, **arguments)`` as a layer, as ``keras.layers.Lambda``.

    Args:
        function: called on the input tensor (or list of tensors); may take ``mask`` and
            ``training`` keywords.
        output_shape: the output shape without the batch axis, or a function of the input
            shape (with batch axis); by default found by running the function.
        mask: a mask tensor, or a function ``mask(inputs, previous_mask)``, for the output.
        arguments: keyword arguments for ``function``.
    """

    supports_masking = True

    def __init__(self, function: Callable, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"Lambda: function must be callable, got {type(function).__name__}")
        if output_shape is not None and not callable(output_shape) and not isinstance(output_shape, (tuple, list)):
            raise TypeError(f"Lambda: output_shape must be a tuple or a function, got {output_shape!r}")
        self.function = function
        self._output_shape_arg = output_shape
        self._mask_arg = mask
        self.arguments = dict(arguments or {})
        params = inspect.signature(function).parameters
        self._fn_takes = {k for k in ("mask", "training") if k in params}

    def forward(self, inputs, mask=None, training=None):
        kwargs = dict(self.arguments)
        if "mask" in self._fn_takes:
            kwargs["mask"] = mask
        if "training" in self._fn_takes:
            kwargs["training"] = self.training if training is None else training
        return self.function(inputs, **kwargs)

    def compute_output_shape(self, input_shape):
        spec = self._output_shape_arg
        if spec is None:
            raise NotImplementedError  # the symbolic call then runs the function on stand-ins
        if callable(spec):
            return spec(input_shape)
        first = input_shape[0] if isinstance(input_shape, list) else input_shape
        return (first[0],) + tuple(spec)

    def compute_mask(self, inputs, mask=None):
        if callable(self._mask_arg):
            return self._mask_arg(inputs, mask)
        if self._mask_arg is not None:
            return self._mask_arg
        return None

    def get_config(self):
        cfg = super().get_config()
        fn = self.function
        name = getattr(fn, "__name__", "<lambda>")
        cfg.update(function=name, arguments=self.arguments)
        if isinstance(self._output_shape_arg, (tuple, list)):
            cfg["output_shape"] = list(self._output_shape_arg)
        return cfg

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        name = config.pop("function")
        from ..saving.objects import get_registered_object

        fn = get_registered_object(name, custom_objects)
        if fn is None:
            raise ValueError(
                f"Lambda layer {config.get('name')!r} wraps the Python function {name!r}, which a file "
                f"cannot carry (rnnkit never executes code from files): pass it as "
                f"custom_objects={{{name!r}: function}}"
            )
        return cls(fn, **config)


def _encode_key(key):
    key = key if isinstance(key, tuple) else (key,)
    out = []
    for k in key:
        if isinstance(k, slice):
            out.append({"slice": [k.start, k.stop, k.step]})
        elif k is None:
            out.append({"newaxis": True})
        elif k is Ellipsis:
            out.append({"ellipsis": True})
        elif isinstance(k, int):
            out.append({"index": int(k)})
        else:
            raise TypeError(f"symbolic tensors take integer, slice, None and ... indices, got {k!r}")
    return out


def _decode_key(spec):
    out = []
    for k in spec:
        if "slice" in k:
            out.append(slice(*k["slice"]))
        elif "newaxis" in k:
            out.append(None)
        elif "ellipsis" in k:
            out.append(Ellipsis)
        else:
            out.append(int(k["index"]))
    return tuple(out)


_BINARY = {
    "add": lambda a, b: a + b, "subtract": lambda a, b: a - b, "multiply": lambda a, b: a * b,
    "divide": lambda a, b: a / b, "matmul": lambda a, b: a @ b,
}


@register
class TensorOp(Layer):
    """An operator on symbolic tensors as a layer (Keras records ``ops.add`` etc. the same way).

    ``op``: ``add``, ``subtract``, ``multiply``, ``divide``, ``matmul`` (of two tensors, or of a
    tensor and the number ``constant``; ``reverse`` puts the constant first), ``negative``, or
    ``get_item`` with ``key`` (integers, slices, None, ...).
    """

    def __init__(self, op: str, fn=None, constant=None, reverse: bool = False, key=None, **kwargs):
        super().__init__(**kwargs)
        if op not in _BINARY and op not in ("negative", "get_item"):
            raise ValueError(f"TensorOp: unknown op {op!r}")
        self.op, self.constant, self.reverse, self.key = op, constant, bool(reverse), key

    def __call__(self, a, b=None, **kwargs):
        if b is not None:  # two tensors
            return super().__call__([a, b], **kwargs)
        return super().__call__(a, **kwargs)

    def forward(self, inputs, mask=None, training=None):
        if self.op == "negative":
            return -inputs
        if self.op == "get_item":
            return inputs[_decode_key(self.key)]
        fn = _BINARY[self.op]
        if isinstance(inputs, list):
            return fn(inputs[0], inputs[1])
        c = torch.tensor(self.constant, dtype=inputs.dtype, device=inputs.device)
        return fn(c, inputs) if self.reverse else fn(inputs, c)

    def compute_output_shape(self, input_shape):
        raise NotImplementedError  # shapes come from running the operator on stand-ins

    def get_config(self):
        cfg = super().get_config()
        cfg.update(op=self.op, constant=self.constant, reverse=self.reverse, key=self.key)
        return cfg


@register
class OpCall(Layer):
    """A ``keras.ops`` function called in a functional graph, as Keras 3's files record them
    (an Embedding's ``mask_zero`` mask passed on explicitly is ``NotEqual``, ``keras.ops.sum(x,
    axis=1)`` is ``Sum``): ``op`` names the function of `rnnkit.ops`, ``arguments`` the keyword
    arguments Keras stored with the operation. The call's own arguments (tensors and numbers)
    follow Keras's order, ``op(inputs, *args, **arguments)``."""

    def __init__(self, op: str, arguments: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        from .. import ops

        fn = getattr(ops, op, None)
        if op.startswith("_") or not callable(fn):
            raise ValueError(f"OpCall: rnnkit.ops has no operation {op!r}")
        self.op, self.arguments, self._fn = op, dict(arguments or {}), fn

    def forward(self, inputs, *args):
        return self._fn(inputs, *args, **self.arguments)

    def compute_output_shape(self, input_shape):
        raise NotImplementedError  # shapes come from running the operation on stand-ins

    def get_config(self):
        cfg = super().get_config()
        cfg.update(op=self.op, arguments=self.arguments)
        return cfg


def tensor_op(name: str, a, b=None, reverse: bool = False, key=None):
    """Record operator ``name`` on symbolic ``a`` (and ``b``: a symbolic tensor or a number)."""
    constant = None
    if name in _BINARY and not isinstance(b, KerasTensor):
        if isinstance(b, bool) or not isinstance(b, (int, float)):
            raise TypeError(f"symbolic tensors combine with other symbolic tensors or numbers, got {type(b).__name__}")
        constant, b = float(b), None
    layer = TensorOp(name, constant=constant, reverse=reverse, key=None if key is None else _encode_key(key))
    return layer(a, b)


set_tensor_op(tensor_op)
