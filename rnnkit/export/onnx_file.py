"""Trace a module to ONNX and write the file atomically, with rnnkit's metadata inside.

The exporter is PyTorch's TorchScript-based one (``torch.onnx.export(..., dynamo=False)``): it
maps ``torch.lstm``/``gru``/``rnn_tanh`` (both directions at once, too) to ONNX's LSTM/GRU/RNN
operators, and it gives dynamic batch and time axes. The dynamo exporter (torch 2.13 with
onnxscript) fails on dynamic axes through these ops. Tracing runs without gradients, so the
layers take their inference path (`rnnkit.layers._fused`), which computes what they compute
in ``predict``.

`OPSET` is 17: onnxruntime from 1.14 on runs it, and it has every operator these graphs need.
"""
from __future__ import annotations

import io
import json
import os
import warnings

import torch

from ..utils import atomic_write_bytes

OPSET = 17
#: The key of rnnkit's JSON in the ONNX file's ``metadata_props``.
METADATA_KEY = "rnnkit"
#: ``format`` of that JSON.
FORMAT = "rnnkit-onnx/1"


class ExportError(ValueError):
    """A model or run that cannot be exported, or a missing exporter package."""


def require_onnx():
    """The ``onnx`` module, or an `ExportError` saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install 'rnnkit[onnx]'") from None
    return onnx


def check_opset(opset_version) -> int:
    """``opset_version`` (None: `OPSET`) checked: an integer the exporter writes (14..20)."""
    if opset_version is None:
        return OPSET
    if isinstance(opset_version, bool) or not isinstance(opset_version, int) or not 14 <= opset_version <= 20:
        raise ExportError(f"opset_version must be an integer from 14 to 20, got {opset_version!r}")
    return opset_version


def write_onnx(module: torch.nn.Module, args: tuple, path: str | os.PathLike, input_names: list[str],
               output_names: list[str], dynamic_axes: dict, metadata: dict, opset_version: int | None = None) -> None:
    """Trace ``module(*args)`` to ONNX and write it to ``path`` atomically, with ``metadata``
    (JSON-able) under `METADATA_KEY`. ``dynamic_axes``: input/output name -> {axis: name}."""
    onnx = require_onnx()
    opset = check_opset(opset_version)
    buffer = io.BytesIO()
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The tracer warns about every Python number it freezes; the checks in the tests
            # (other batch sizes and lengths than the traced ones) are what tell a wrong graph.
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, buffer, input_names=input_names, output_names=output_names,
                              dynamic_axes=dynamic_axes, opset_version=opset, dynamo=False,
                              do_constant_folding=True)
    except Exception as exc:
        raise ExportError(f"ONNX export failed: {str(exc).strip().splitlines()[0]}") from None
    finally:
        module.train(was_training)
    proto = onnx.load_from_string(buffer.getvalue())
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps({"format": FORMAT, **metadata})
    proto.producer_name = "rnnkit"
    onnx.checker.check_model(proto)
    atomic_write_bytes(path, proto.SerializeToString())


def read_metadata(path: str | os.PathLike) -> dict:
    """rnnkit's metadata of an exported file (`write_onnx`'s ``metadata`` and ``format``)."""
    onnx = require_onnx()
    proto = onnx.load(os.fspath(path), load_external_data=False)
    for entry in proto.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    raise ExportError(f"{path}: no rnnkit metadata (not a file rnnkit exported)")
