"""``Model.export(filepath, format="onnx")`` for Keras-API models (Sequential, functional,
subclassed), with Keras 3's arguments.

Keras 3: ``export(filepath, format="tf_saved_model", verbose=None, input_signature=None,
**kwargs)`` with ``opset_version`` the one keyword of ``format="onnx"``. Here ``format`` must
be ``"onnx"`` (the others need TensorFlow, OpenVINO, LiteRT or a ``torch.export`` archive, and
are refused by name); ``input_signature`` is a list of specs, one per model input (a
``keras.Input``, a tensor or array, or anything with ``shape`` and ``dtype``; ``None`` axes are
dynamic in the graph, as Keras's torch backend makes them); without it, the model's own inputs
(``keras.Input`` shapes and dtypes, or the shape it was built for). Inputs are named after the
specs (``input_<i>`` where a spec has no name); outputs ``output_<i>`` (a dict's keys for a
dict of outputs).
"""
from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from .onnx_file import ExportError, write_onnx

#: Keras 3's export formats; only "onnx" is rnnkit's.
KERAS_FORMATS = ("tf_saved_model", "onnx", "openvino", "litert", "torch")
_INT_DTYPES = {"int32": torch.int32, "int64": torch.int64, torch.int32: torch.int32, torch.int64: torch.int64}


class Spec:
    """One input of the graph: ``shape`` (None = dynamic), torch ``dtype`` and ``name``."""

    def __init__(self, shape, dtype, name):
        self.shape, self.dtype, self.name = tuple(shape), dtype, name

    def example(self) -> torch.Tensor:
        # 2 for an unknown axis: a size-1 axis could be traced as a broadcast
        shape = [2 if d is None else d for d in self.shape]
        if self.dtype.is_floating_point:
            return torch.zeros(shape, dtype=self.dtype)
        return torch.ones(shape, dtype=self.dtype)


def _dtype(value) -> torch.dtype:
    if isinstance(value, torch.dtype):
        return value
    name = str(getattr(value, "name", value)).replace("torch.", "")
    if name in ("float32", "int32", "int64", "float64", "bool"):
        return getattr(torch, name)
    raise ExportError(f"input_signature: unsupported dtype {value!r}; expected float32, int32 or int64")


def _spec(value, i: int) -> Spec:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return Spec(value.shape, _dtype(torch.as_tensor(value).dtype), f"input_{i}")
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is None or dtype is None:
        raise ExportError(f"input_signature[{i}]: expected a keras.Input, a tensor or a spec with shape and dtype, "
                          f"got {type(value).__name__}")
    shape = [None if d is None else int(d) for d in (shape.as_list() if hasattr(shape, "as_list") else shape)]
    return Spec(shape, _dtype(dtype), getattr(value, "name", None) or f"input_{i}")


def _model_specs(model) -> list[Spec]:
    """The specs of a model's own inputs."""
    from ..layers.core import Embedding

    inputs = getattr(model, "inputs", None)
    if isinstance(inputs, list) and inputs:  # functional
        return [_spec(t, i) for i, t in enumerate(inputs)]
    entry = getattr(model, "_input_layer", None)
    if entry is not None:
        return [Spec(entry.shape, _dtype(entry.input_dtype), entry.name)]
    shape = getattr(model, "_build_input_shape", None)
    if shape is None or not getattr(model, "built", False):
        raise ExportError(f"model {model.name!r} has not been built: call it once, build it, or pass input_signature")
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple)):
        raise ExportError(f"model {model.name!r} takes several inputs: pass input_signature, one spec each")
    layers = getattr(model, "layers", [])
    # Token ids for a stack that starts by looking them up; otherwise Keras's float32.
    dtype = torch.int64 if layers and isinstance(layers[0], Embedding) else torch.float32
    return [Spec(shape, dtype, "input_0")]


class _Flat(nn.Module):
    """The model on flat positional inputs, returning a flat tuple of outputs."""

    def __init__(self, model, n_inputs: int):
        super().__init__()
        self.model, self.n_inputs, self.keys = model, n_inputs, None

    def forward(self, *inputs):
        out = self.model(inputs[0] if self.n_inputs == 1 else list(inputs))
        if isinstance(out, dict):
            self.keys = sorted(out)
            return tuple(out[k] for k in self.keys)
        return tuple(out) if isinstance(out, (list, tuple)) else (out,)


def export_keras_model(model, filepath, format: str = "tf_saved_model", verbose: bool | None = None,
                       input_signature=None, **kwargs) -> None:
    """Keras 3's ``Model.export`` (see the module docstring). Writes ``filepath`` atomically;
    prints ``Saved artifact at '<filepath>'.`` unless ``verbose=False``, as Keras does."""
    if format not in KERAS_FORMATS:
        raise ValueError(f"Unrecognized format={format!r}; Keras's formats are {list(KERAS_FORMATS)}, "
                         f"and rnnkit exports format='onnx'")
    if format != "onnx":
        raise ValueError(f"format={format!r} is not available in rnnkit (it needs another framework); "
                         f"use format='onnx'")
    opset_version = kwargs.pop("opset_version", None)
    if kwargs:
        raise TypeError(f"export(format='onnx') takes opset_version as its only keyword; got {', '.join(sorted(kwargs))}")
    if verbose is not None and not isinstance(verbose, bool):
        raise TypeError(f"verbose must be True, False or None, got {verbose!r}")
    if input_signature is None:
        specs = _model_specs(model)
    else:
        sig = list(input_signature) if isinstance(input_signature, (list, tuple)) else [input_signature]
        if len(sig) == 1 and isinstance(sig[0], (list, tuple)):  # Keras's [[spec, spec]] for several inputs
            sig = list(sig[0])
        specs = [_spec(s, i) for i, s in enumerate(sig)]
    write_model_onnx(model, filepath, specs, opset_version)
    if verbose is not False:
        print(f"Saved artifact at '{os.fspath(filepath)}'.")


def write_model_onnx(model, filepath, specs: list[Spec], opset_version: int | None = None,
                     extra: dict | None = None) -> None:
    """Trace ``model`` on inputs ``specs`` to ONNX at ``filepath`` (``extra``: more metadata)."""
    stateful = [layer.name for layer in _all_layers(model) if getattr(layer, "stateful", False)]
    if stateful:
        raise ExportError(f"layer(s) {', '.join(stateful)} are stateful (they carry state between calls); "
                          f"an ONNX graph computes each call alone: export a copy built with stateful=False")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ExportError(f"input_signature: input names must be distinct, got {names}")
    flat = _Flat(model, len(specs))
    examples = tuple(s.example() for s in specs)
    with torch.no_grad():
        was_training = model.training
        model.eval()
        try:
            n_out = len(flat(*examples))
        finally:
            model.train(was_training)
    out_names = list(flat.keys) if flat.keys else [f"output_{i}" for i in range(n_out)]
    dynamic = {s.name: {a: ("batch" if a == 0 else f"{s.name}_dim{a}") for a, d in enumerate(s.shape) if d is None}
               for s in specs}
    dynamic = {k: v for k, v in dynamic.items() if v}
    if any(0 in axes for axes in dynamic.values()):
        dynamic.update({name: {0: "batch"} for name in out_names})
    metadata = {"kind": "keras", "model": model.name,
                "inputs": {s.name: {"shape": list(s.shape), "dtype": str(s.dtype).replace("torch.", "")} for s in specs},
                "outputs": out_names, **(extra or {})}
    write_onnx(flat, examples, filepath, names, out_names, dynamic, metadata, opset_version)


def _all_layers(model):
    return [m for m in model.modules() if m is not model]
