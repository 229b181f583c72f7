"""What happens around every layer call, once for all layers (Keras's ``Layer.__call__``):

* **training** given to an outer call reaches the layers called inside it (a subclassed
  model's ``call`` calling ``self.dropout(x)``), as Keras's call context does;
* **masks** travel with tensors: a layer's output carries ``_keras_mask`` (as Keras's PyTorch
  backend stores it), and a layer whose ``call`` takes ``mask`` (or ``<argument>_mask`` when
  it takes several tensors, e.g. ``query_mask``) gets the masks of its inputs;
* **symbolic calls** (on `symbolic.KerasTensor`s) record a `symbolic.Node` and return
  symbolic outputs, their shapes from ``compute_output_shape`` or, where that cannot
  know them, from running the layer on stand-in tensors (`symbolic.stand_in`).
"""
from __future__ import annotations

import functools
import inspect

import torch
from torch import nn

from .symbolic import (
    KerasTensor, Node, dtype_name, flatten, map_structure, merge_probe_shapes, pack_like, shape_structure, stand_in,
)

_TRAINING = [None]  # the training flag of the outermost call that gave one
_DEPTH = [0]  # how many layer calls are running (0: this call is the user's own)


_PROBING = [0]


class shape_probe:
    """Context in which layers are run on stand-in tensors only to learn their output shapes
    (a functional model built from symbolic tensors): stateful layers keep their state and
    nothing that a real call would update (moving statistics, carried states) changes."""

    def __enter__(self):
        _PROBING[0] += 1
        return self

    def __exit__(self, *exc):
        _PROBING[0] -= 1
        return False


def is_probing() -> bool:
    """Whether the current call is a `shape_probe` run."""
    return _PROBING[0] > 0


@functools.lru_cache(maxsize=None)
def trusts_output_shape(cls) -> bool:
    """Whether ``cls.compute_output_shape`` describes its outputs: a class (other than Layer)
    defines it, or it is one of rnnkit's own layers, whose shape-keeping default is right.
    A user's layer without one has its output shape read from a run instead (as Keras traces)."""
    for klass in cls.__mro__:
        fn = klass.__dict__.get("compute_output_shape")
        if fn is not None:
            if not getattr(fn, "is_layer_default", False):
                return True
            break
    return cls.__module__.startswith("rnnkit.") and not cls.__module__.startswith("rnnkit.models")


class Output(torch.Tensor):
    """What a direct inference call (``model(x)``, ``layer(x)``) returns: a tensor that NumPy can
    read as it is (``np.asarray(model(x))``, as Keras's tensors allow), gradients still flowing."""

    def __array__(self, dtype=None, copy=None):
        a = torch.Tensor.numpy(self.detach().cpu())
        return a if dtype is None else a.astype(dtype, copy=False)

    def numpy(self, *, force: bool = False):
        return torch.Tensor.numpy(self.detach().cpu(), force=force)


def _numpy_friendly(t):
    return t.as_subclass(Output) if isinstance(t, torch.Tensor) and t.requires_grad and type(t) is torch.Tensor else t


class CallInfo:
    """A layer class's call signature, read once: which arguments it names and takes."""

    __slots__ = ("names", "takes_mask", "takes_training", "var_kw", "mask_args")

    def __init__(self, cls):
        fn = cls.forward
        if getattr(fn, "runs_call", False):  # Layer's forward, which runs a Keras-style call()
            fn = cls.call
        params = list(inspect.signature(fn).parameters.values())[1:]
        self.names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        kinds = {p.kind for p in params}
        self.var_kw = inspect.Parameter.VAR_KEYWORD in kinds
        named = {p.name for p in params}
        self.takes_mask = "mask" in named
        self.takes_training = "training" in named or self.var_kw
        self.mask_args = {n for n in named if n.endswith("_mask")}


def call_info(layer) -> CallInfo:
    cls = type(layer)
    info = cls.__dict__.get("_call_info")
    if info is None:
        info = CallInfo(cls)
        cls._call_info = info
    return info


def get_mask(structure):
    """The masks carried by a structure of tensors (None where none, or when there are none)."""
    masks = map_structure(lambda t: getattr(t, "_keras_mask", None) if isinstance(t, torch.Tensor) else None,
                          structure)
    return masks if any(m is not None for m in flatten(masks)) else None


def fill_masks(layer, info: CallInfo, inputs, rest: tuple, kwargs: dict):
    """Keras's rule: one tensor argument -> ``mask``; several -> ``<name>_mask`` for each that the
    call names. Returns the mask the output's mask is computed from."""
    if info.takes_mask and kwargs.get("mask") is None and not rest:
        m = get_mask(inputs)
        if m is not None:
            kwargs["mask"] = m
    elif rest and info.mask_args:
        for name, value in zip(info.names, (inputs,) + rest):
            key = f"{name}_mask"
            if key in info.mask_args and kwargs.get(key) is None:
                m = get_mask(value)
                if m is not None:
                    kwargs[key] = m
    previous = kwargs.get("mask")
    return previous if previous is not None else get_mask(inputs)


def set_output_masks(layer, inputs, outputs, previous_mask) -> None:
    flat = [t for t in flatten(outputs) if isinstance(t, torch.Tensor)]
    if not flat or all(getattr(t, "_keras_mask", None) is not None for t in flat):
        return
    masks = layer.compute_mask(inputs, previous_mask)
    if masks is None:
        return
    for t, m in zip(flat, flatten(masks) if isinstance(masks, (list, tuple, dict)) else [masks]):
        if m is not None and isinstance(t, torch.Tensor):
            t._keras_mask = m


def eager_call(layer, inputs, rest: tuple, kwargs: dict):
    """Run ``layer`` on concrete tensors (after `Layer.__call__` converted and built)."""
    info = call_info(layer)
    given = kwargs.get("training")
    if given is None and _TRAINING[0] is not None and info.takes_training:
        kwargs["training"] = _TRAINING[0]
    previous_mask = fill_masks(layer, info, inputs, rest, kwargs)
    if not info.takes_mask and "mask" in kwargs and kwargs["mask"] is None:
        del kwargs["mask"]
    outer = _TRAINING[0]
    if given is not None:
        _TRAINING[0] = bool(given)
    _DEPTH[0] += 1
    try:
        outputs = nn.Module.__call__(layer, inputs, *rest, **kwargs)
    finally:
        _TRAINING[0] = outer
        _DEPTH[0] -= 1
    if _DEPTH[0] == 0 and not layer.training and not kwargs.get("training"):
        outputs = map_structure(_numpy_friendly, outputs)
    set_output_masks(layer, inputs, outputs, previous_mask)
    if not layer.built:  # a subclassed model: its first call built its layers
        layer.built = True
        layer.__dict__["_built_by_call"] = True
    if layer._output_shape is None and isinstance(outputs, torch.Tensor):
        layer._output_shape = (None,) + tuple(outputs.shape[1:])
    return outputs


# -------------------------------------------------------------------- symbolic
def symbolic_call(layer, inputs, rest: tuple, kwargs: dict):
    """Record ``layer(inputs, *rest, **kwargs)`` on symbolic tensors; returns symbolic outputs."""
    for t in flatten((inputs, rest, kwargs)):
        if not isinstance(t, KerasTensor) and isinstance(t, torch.Tensor):
            raise TypeError(f"layer {layer.name!r} was called on a mix of symbolic tensors (keras.Input) and "
                            f"concrete tensors; a functional model's inputs must all be keras.Input")
    shapes = shape_structure(inputs) if any(isinstance(t, KerasTensor) for t in flatten(inputs)) else None
    if not layer.built:
        if shapes is None:
            raise TypeError(f"layer {layer.name!r}: its first argument must be a symbolic tensor")
        layer.build_for(shapes)
    elif isinstance(shapes, tuple):
        layer._check_shape(shapes)
    outputs = None
    extra = set(kwargs) - {"mask", "training"}
    if not rest and not extra and trusts_output_shape(type(layer)) and shapes is not None:
        try:
            outputs = _from_shapes(layer.compute_output_shape(shapes), inputs)
        except NotImplementedError:
            outputs = None
    if outputs is None:
        outputs = _probe(layer, inputs, rest, kwargs)
    node = Node(layer, (inputs,) + tuple(rest), dict(kwargs), outputs)
    for i, t in enumerate(node.flat_outputs):
        t.node, t.index = node, i
        t.name = layer.name if len(node.flat_outputs) == 1 else f"{layer.name}_{i}"
    layer._inbound_nodes.append(node)
    if layer._output_shape is None and isinstance(outputs, KerasTensor):
        layer._output_shape = outputs.shape
    return outputs


def _is_shape(s) -> bool:
    return isinstance(s, tuple) and all(d is None or isinstance(d, int) for d in s)


def _from_shapes(shapes, inputs):
    dtype = "float32"
    if isinstance(inputs, KerasTensor) and getattr(inputs.layer, "preserves_dtype", False):
        dtype = inputs.dtype
    if _is_shape(shapes):
        return KerasTensor(shapes, dtype)
    if isinstance(shapes, (list, tuple)):
        return [_from_shapes(s, inputs) for s in shapes]
    raise NotImplementedError


def _probe(layer, inputs, rest, kwargs):
    device = layer._param_device()
    runs = []
    for run in (0, 1):
        made: dict[int, torch.Tensor] = {}

        def concrete(t):
            if isinstance(t, KerasTensor):
                if id(t) not in made:
                    made[id(t)] = stand_in(t, run, device)
                return made[id(t)]
            return t

        args = map_structure(concrete, (inputs,) + tuple(rest))
        kw = map_structure(concrete, kwargs)
        with torch.no_grad(), shape_probe(), torch.random.fork_rng(devices=[]):
            try:
                out = layer(*args, **kw)
            except Exception as exc:
                raise type(exc)(f"layer {layer.name!r} ({type(layer).__name__}) failed on inputs of shape "
                                f"{shape_structure(inputs) if isinstance(inputs, (KerasTensor, list, tuple)) else '?'}: "
                                f"{exc}") from exc
        runs.append(out)
    first, second = flatten(runs[0]), flatten(runs[1])
    leaves = []
    for a, b in zip(first, second):
        if isinstance(a, torch.Tensor):
            leaves.append(KerasTensor(merge_probe_shapes(a, b), dtype_name(a.dtype)))
        else:
            leaves.append(a)
    return pack_like(runs[0], leaves)
