"""Read real Keras model files: Keras 3 ``.keras`` archives and legacy HDF5 ``.h5``.

Supported: Sequential models built from the layers rnnkit implements. The
config is translated to rnnkit's constructor arguments (unsupported options
are refused with the option named, never silently dropped), the weights are
read in Keras's order and layout and go through each layer's ``set_weights``
(which converts to PyTorch layout and gate order). The compile config (loss,
metrics, optimizer hyper-parameters) is restored when rnnkit knows it; the
optimizer's accumulated state is not imported.

Files:
- ``.keras``: a zip with ``config.json`` (Keras 3 serialisation) and
  ``model.weights.h5``, where each layer's variables sit under
  ``layers/<key>/vars/<i>``, recurrent cells under ``.../cell/vars``,
  wrappers under ``.../forward_layer``, ``.../backward_layer``, ``.../layer``;
  the group's ``vars`` attribute ``name`` holds the layer's name.
- ``.h5``: root attribute ``model_config`` (Keras 2 JSON) and
  ``model_weights/<layer name>`` groups whose ``weight_names`` attribute lists
  the datasets in order.
"""
from __future__ import annotations

import inspect
import json
import warnings
import zipfile
from pathlib import Path

import h5py
import numpy as np

from ..layers.base import Layer
from ..layers.registry import layer_class
from . import untrusted
from .native import ModelFileError

# Options that exist in Keras configs but change nothing rnnkit computes.
_IGNORED = {
    "dtype", "seed", "implementation", "time_major", "unroll", "sparse", "ragged", "optional",
    "quantization_config", "registered_name", "module", "data_format", "trainable_weights_count",
}
# Options accepted only at their neutral value.
_NEUTRAL = {
    "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None,
    "recurrent_constraint": None, "embeddings_constraint": None, "groups": 1,
    "lora_rank": None, "lora_alpha": None, "input_dim_for_embedding": None,
}
_KERAS2_ACTIVATIONS = {"hard_sigmoid": "hard_sigmoid_keras2"}


def _accepted_args(cls) -> set[str]:
    names = set()
    for klass in cls.__mro__:
        if klass is object:
            break
        names |= set(inspect.signature(klass.__init__).parameters)
    return names - {"self", "kwargs", "args"}


def translate_layer(spec: dict, legacy: bool, first: bool) -> dict:
    """A Keras layer spec -> an rnnkit spec ``{"class_name", "config"}`` (recursive for wrappers)."""
    class_name = spec["class_name"]
    try:
        cls = layer_class(spec)
    except ValueError as exc:
        raise ModelFileError(f"Keras layer class {class_name!r} is not supported by rnnkit ({exc})") from None
    config = dict(spec.get("config", {}))
    name = config.get("name", class_name)
    out: dict = {}
    accepted = _accepted_args(cls)
    for key, value in config.items():
        if key in _IGNORED:
            continue
        if key in _NEUTRAL:
            if value not in (_NEUTRAL[key], None, False) and not (key == "groups" and value == 1):
                raise ModelFileError(f"Keras layer {name!r} ({class_name}) uses {key}={value!r}, which rnnkit does not support")
            continue
        if key in ("layer", "backward_layer", "cell") and isinstance(value, dict):
            value = translate_layer(value, legacy, first=False)
        elif key == "cells" and isinstance(value, list):
            value = [translate_layer(v, legacy, first=False) for v in value]
        elif key in ("activation", "recurrent_activation") and legacy and value in _KERAS2_ACTIVATIONS:
            value = _KERAS2_ACTIVATIONS[value]
        elif key in ("kernel_size", "strides", "dilation_rate", "pool_size") and isinstance(value, list):
            value = value[0]
        if key in ("batch_input_shape", "batch_shape", "input_shape") and not first:
            continue
        if key == "batch_shape" and class_name != "InputLayer":
            key = "batch_input_shape"
        if key == "batch_input_shape" and class_name == "InputLayer":
            key = "batch_shape"
        if key not in accepted:
            if value in (None, False, 0, 0.0, "channels_last"):
                continue
            raise ModelFileError(f"Keras layer {name!r} ({class_name}) has option {key}={value!r}, which rnnkit does not support")
        out[key] = value
    translated = {"class_name": class_name, "config": out}
    if spec.get("registered_name"):  # a custom class: found only if registered in this process
        translated["registered_name"] = spec["registered_name"]
    return translated


def _build_sequential(model_config: dict, legacy: bool):
    from ..models import Sequential

    if model_config.get("class_name") != "Sequential":
        raise ModelFileError(
            f"only Sequential Keras models can be imported, this file holds a {model_config.get('class_name')!r} model"
        )
    cfg = model_config["config"]
    layer_specs = cfg["layers"] if isinstance(cfg, dict) else cfg  # very old Keras stored a bare list
    from ..layers.registry import deserialize_layer

    model = Sequential(name=cfg.get("name") if isinstance(cfg, dict) else None)
    for i, spec in enumerate(layer_specs):
        model.add(deserialize_layer(translate_layer(spec, legacy, first=(i == 0))))
    if not model.built:
        shape = (cfg.get("build_input_shape") if isinstance(cfg, dict) else None) or (
            model_config.get("build_config", {}).get("input_shape")
        )
        if shape is None:
            raise ModelFileError("the Keras model has no input shape recorded, so it cannot be built")
        model.build_for(tuple(shape))
    return model


# --------------------------------------------------------------- Keras 3 .keras
_CHILD_ORDER = ["cell", "layer", "forward_layer", "backward_layer"]


def _collect_vars(group) -> list[np.ndarray]:
    """A layer's variables in Keras's order: its own ``vars/0..n``, then its sub-layers'."""
    out = []
    if "vars" in group:
        v = group["vars"]
        out += [v[k][()] for k in sorted(v.keys(), key=int)]
    children = [k for k in group.keys() if k != "vars"]
    for key in sorted(children, key=lambda k: (_CHILD_ORDER.index(k) if k in _CHILD_ORDER else len(_CHILD_ORDER), k)):
        if isinstance(group[key], h5py.Group):
            out += _collect_vars(group[key])
    return out


def _keras3_layer_groups(h5: h5py.File) -> dict[str, h5py.Group]:
    """Map layer name -> weights group (the group key is a per-class counter, the name is an attribute)."""
    groups = {}
    for key, group in h5["layers"].items():
        name = group["vars"].attrs.get("name", key) if "vars" in group else key
        groups[str(name)] = group
    return groups


def _load_keras3(path: Path, compile: bool):
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if "config.json" not in names or "model.weights.h5" not in names:
                raise ModelFileError(f"{path}: not a Keras 3 archive (config.json / model.weights.h5 missing)")
            read = [0]  # bytes decompressed so far: what the archive limits bound
            config = untrusted.load_config(untrusted.read_member(zf, "config.json", path, read), path)
            weights_bytes = untrusted.read_member(zf, "model.weights.h5", path, read)
            untrusted.check_hdf5_bytes(weights_bytes, path)
    except (zipfile.BadZipFile, OSError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: corrupt or truncated .keras file ({exc})") from None
    model = _build_sequential(config, legacy=False)
    import io

    try:
        with h5py.File(io.BytesIO(weights_bytes), "r") as h5:
            groups = _keras3_layer_groups(h5)
            for layer in model.layers:
                expected = len(layer.get_weights())
                if expected == 0:
                    continue
                if layer.name not in groups:
                    raise ModelFileError(f"{path}: no weights stored for layer {layer.name!r}")
                _set(layer, _collect_vars(groups[layer.name]), path)
    except OSError as exc:
        raise ModelFileError(f"{path}: corrupt weights in .keras file ({exc})") from None
    if compile and config.get("compile_config"):
        _compile_from_keras(model, config["compile_config"], path)
    return model


# ---------------------------------------------------------------- legacy .h5
def _load_h5(path: Path, compile: bool):
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise ModelFileError(f"{path}: not a readable HDF5 file ({exc})") from None
    with h5:
        untrusted.check_hdf5(h5, path)
        raw = h5.attrs.get("model_config")
        if raw is None:
            raise ModelFileError(f"{path}: HDF5 file without a model_config attribute (a weights-only file?)")
        config = untrusted.load_config(raw, path)
        model = _build_sequential(config, legacy=True)
        weights = h5["model_weights"] if "model_weights" in h5 else h5
        for layer in model.layers:
            if not len(layer.get_weights()):
                continue
            if layer.name not in weights:
                raise ModelFileError(f"{path}: no weights stored for layer {layer.name!r}")
            g = weights[layer.name]
            names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs["weight_names"]]
            _set(layer, [g[n][()] for n in names], path)
        training = h5.attrs.get("training_config")
    if compile and training is not None:
        tc = json.loads(training if isinstance(training, str) else training.decode())
        _compile_from_keras(model, {"optimizer": tc.get("optimizer_config"), "loss": tc.get("loss"),
                                    "metrics": tc.get("metrics")}, path)
    return model


def _set(layer: Layer, arrays: list[np.ndarray], path) -> None:
    try:
        layer.set_weights(arrays)
    except ValueError as exc:
        raise ModelFileError(f"{path}: weights do not fit layer {layer.name!r}: {exc}") from None


def _compile_from_keras(model, cc: dict, path) -> None:
    from ..training import losses as losses_mod
    from ..training import optimizers as optimizers_mod

    try:
        opt_spec = cc.get("optimizer") or "rmsprop"
        if isinstance(opt_spec, dict):
            name = opt_spec["class_name"].split(">")[-1].lower()
            cls = optimizers_mod._OPTIMIZERS[name]
            accepted = _accepted_args(cls)
            kwargs = {k: v for k, v in opt_spec.get("config", {}).items() if k in accepted and v is not None}
            opt = cls(**kwargs)
        else:
            opt = opt_spec
        loss = cc.get("loss")
        if isinstance(loss, dict):
            snake = {"SparseCategoricalCrossentropy": "sparse_categorical_crossentropy",
                     "CategoricalCrossentropy": "categorical_crossentropy",
                     "BinaryCrossentropy": "binary_crossentropy", "MeanSquaredError": "mse",
                     "MeanAbsoluteError": "mae"}[loss["class_name"]]
            loss = losses_mod.get(snake).__class__(from_logits=loss.get("config", {}).get("from_logits", False))
        metrics = cc.get("metrics") or []
        flat = []
        for m in metrics if isinstance(metrics, list) else [metrics]:
            flat += m if isinstance(m, list) else [m]
        flat = [m if isinstance(m, str) else m.get("config", {}).get("name") for m in flat]
        model.compile(optimizer=opt, loss=loss, metrics=[m for m in flat if m], device="cpu")
    except (KeyError, ValueError, TypeError) as exc:
        warnings.warn(f"{path}: model loaded uncompiled; its compile config is not supported by rnnkit ({exc})")


def is_keras_file(path: Path) -> bool:
    """Whether ``path`` holds a Keras 3 archive (a zip) or a legacy HDF5 file, by its bytes."""
    path = Path(path)
    if not path.is_file():
        return False
    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as fh:
        return fh.read(8) == b"\x89HDF\r\n\x1a\n"


def load_keras_file(path: Path, compile: bool = True):
    """Load a Keras ``.keras`` or ``.h5`` Sequential model as an rnnkit model."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such model file")
    with untrusted.reading(path):
        if zipfile.is_zipfile(path):
            return _load_keras3(path, compile)
        with open(path, "rb") as fh:
            magic = fh.read(8)
        if magic == b"\x89HDF\r\n\x1a\n":
            return _load_h5(path, compile)
    raise ModelFileError(f"{path}: neither a Keras 3 .keras archive nor an HDF5 .h5 file")
