"""Symbolic tensors and nodes: the graph a functional model is made of.

As in Keras (``keras/src/backend/common/keras_tensor.py``, ``keras/src/ops/node.py``):
``Input(shape)`` returns a `KerasTensor`, a placeholder that knows its shape and dtype
and which layer call produced it. Calling a layer on symbolic tensors records a `Node`
(the layer, the call's arguments with their symbolic tensors, the output tensors) instead
of computing anything; a functional ``Model(inputs, outputs)`` is the graph walked back
from its outputs. A layer called several times (a shared layer) has several nodes and one
set of weights.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

Shape = tuple


class KerasTensor:
    """A symbolic tensor: ``shape`` (batch axis first, None where unknown), ``dtype``, and the
    node that produced it (``node.layer`` made it as its output number ``index``)."""

    __slots__ = ("shape", "dtype", "node", "index", "name", "__weakref__")

    def __init__(self, shape, dtype: str = "float32", node: "Node | None" = None, index: int = 0,
                 name: str | None = None):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = str(dtype)
        self.node = node
        self.index = index
        self.name = name

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def layer(self):
        """The layer whose call produced this tensor (an `InputLayer` for model inputs)."""
        return self.node.layer if self.node is not None else None

    def __repr__(self) -> str:
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"

    def __array__(self, *args, **kwargs):
        raise TypeError(
            f"{self!r} is a symbolic tensor of the functional API: it has no values. Build a model "
            f"with keras.Model(inputs, outputs) and call model.predict(data) (or model(data))"
        )

    def __bool__(self):
        raise TypeError(f"{self!r} is symbolic: it has no truth value (use it as a layer's input)")

    def __len__(self):
        raise TypeError(f"{self!r} is symbolic: it has no length; its shape is {self.shape}")

    def __iter__(self):
        raise TypeError(f"{self!r} is symbolic and cannot be iterated; its shape is {self.shape}")

    # Arithmetic and indexing on symbolic tensors record small operation layers, as Keras
    # does (``x + y``, ``2 * x``, ``x[:, -1]`` in a functional model).
    def __add__(self, other):
        return _op("add", self, other)

    def __radd__(self, other):
        return _op("add", self, other, reverse=True)

    def __sub__(self, other):
        return _op("subtract", self, other)

    def __rsub__(self, other):
        return _op("subtract", self, other, reverse=True)

    def __mul__(self, other):
        return _op("multiply", self, other)

    def __rmul__(self, other):
        return _op("multiply", self, other, reverse=True)

    def __truediv__(self, other):
        return _op("divide", self, other)

    def __rtruediv__(self, other):
        return _op("divide", self, other, reverse=True)

    def __matmul__(self, other):
        return _op("matmul", self, other)

    def __neg__(self):
        return _op("negative", self)

    def __getitem__(self, key):
        return _op("get_item", self, key=key)


# The layer that records an operator lives in lambda_layer, which imports this module and
# fills the slot (the layers package imports lambda_layer, so it is filled before any use).
_TENSOR_OP: list[Callable | None] = [None]


def set_tensor_op(fn: Callable) -> None:
    """Register ``fn(name, a, b, reverse=, key=)``, which records an operator on symbolic tensors."""
    _TENSOR_OP[0] = fn


def _op(name: str, a, b=None, reverse: bool = False, key=None):
    if _TENSOR_OP[0] is None:
        raise RuntimeError("operators on symbolic tensors need rnnkit.layers.lambda_layer; import rnnkit.layers")
    return _TENSOR_OP[0](name, a, b, reverse=reverse, key=key)


class Node:
    """One call of ``layer``: its arguments (with `KerasTensor` leaves), keyword arguments and
    outputs. ``inbound`` lists the symbolic tensors it reads, in argument order."""

    __slots__ = ("layer", "args", "kwargs", "outputs", "inbound")

    def __init__(self, layer, args: tuple, kwargs: dict, outputs):
        self.layer = layer
        self.args = args
        self.kwargs = kwargs
        self.outputs = outputs
        self.inbound = [t for t in flatten((args, kwargs)) if isinstance(t, KerasTensor)]

    @property
    def is_input(self) -> bool:
        return not self.inbound

    @property
    def flat_outputs(self) -> list[KerasTensor]:
        return [t for t in flatten(self.outputs) if isinstance(t, KerasTensor)]


# ----------------------------------------------------------------- structures
def flatten(structure) -> list:
    """Leaves of nested lists, tuples and dicts; a dict's values in the order of its sorted keys,
    as Keras's ``tree.flatten`` (so a model's dict outputs come in key order)."""
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in flatten(item)]
    if isinstance(structure, dict):
        return [leaf for key in sorted(structure) for leaf in flatten(structure[key])]
    return [structure]


def map_structure(fn: Callable[[Any], Any], structure):
    """``structure`` with every leaf replaced by ``fn(leaf)`` (lists stay lists, tuples tuples;
    leaves visited in `flatten`'s order)."""
    if isinstance(structure, list):
        return [map_structure(fn, s) for s in structure]
    if isinstance(structure, tuple):
        return tuple(map_structure(fn, s) for s in structure)
    if isinstance(structure, dict):
        return {k: map_structure(fn, structure[k]) for k in sorted(structure)}
    return fn(structure)


def pack_like(structure, flat: list):
    """Inverse of `flatten`: ``flat``'s leaves put back into ``structure``'s shape."""
    it = iter(flat)
    return map_structure(lambda _: next(it), structure)


def any_symbolic(*structures) -> bool:
    return any(isinstance(t, KerasTensor) for t in flatten(list(structures)))


def shape_structure(structure):
    """The shapes of a structure of KerasTensors: a tuple for one, a list of tuples for several."""
    if isinstance(structure, KerasTensor):
        return structure.shape
    if isinstance(structure, dict):
        return {k: shape_structure(v) for k, v in structure.items()}
    return [shape_structure(s) for s in structure]


# --------------------------------------------------------------- shape probes
# A layer whose output shape cannot be read from compute_output_shape (a user's layer, or
# a call with extra arguments such as return_attention_scores) is run twice on stand-in
# tensors whose unknown axes have different sizes; an output axis whose size changes
# between the two runs depends on an unknown input axis and is unknown (None) itself.
_PROBE_SIZES = ({0: 2, "other": 17}, {0: 3, "other": 19})

_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
           "bfloat16": torch.bfloat16, "int32": torch.int32, "int64": torch.int64, "int16": torch.int16,
           "int8": torch.int8, "uint8": torch.uint8, "bool": torch.bool}


def torch_dtype(name: str) -> torch.dtype:
    try:
        return _DTYPES[str(name)]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; expected one of {', '.join(_DTYPES)}") from None


def dtype_name(dtype: torch.dtype) -> str:
    for k, v in _DTYPES.items():
        if v == dtype:
            return k
    return str(dtype).replace("torch.", "")


def stand_in(t: KerasTensor, run: int, device=None) -> torch.Tensor:
    """A concrete tensor for ``t`` in probe ``run`` (0 or 1): unknown axes get that run's sizes."""
    sizes = _PROBE_SIZES[run]
    shape = [d if d is not None else sizes.get(i, sizes["other"]) for i, d in enumerate(t.shape)]
    dtype = torch_dtype(t.dtype)
    if dtype.is_floating_point:
        gen = torch.Generator().manual_seed(1234 + run)
        return (torch.rand(shape, generator=gen) * 0.5 + 0.25).to(dtype=dtype, device=device)
    if dtype == torch.bool:
        return torch.ones(shape, dtype=torch.bool, device=device)
    return torch.ones(shape, dtype=dtype, device=device)  # token id 1: valid for any Embedding


def merge_probe_shapes(a: torch.Tensor, b: torch.Tensor) -> Shape:
    """The symbolic shape of an output seen as ``a`` and ``b`` in the two probe runs."""
    if a.dim() != b.dim():
        raise ValueError(f"the output rank changes with the input's unknown axes ({tuple(a.shape)} vs "
                         f"{tuple(b.shape)}); give the layer compute_output_shape()")
    return tuple(x if x == y else None for x, y in zip(a.shape, b.shape))
