"""Read real Keras model files: Keras 3 ``.keras`` archives and legacy HDF5 ``.h5``.

Supported: Sequential and functional models (nested models, shared layers, several inputs and
outputs, ``keras.ops`` calls recorded in the graph) built from the layers rnnkit implements. The
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
import io
import json
import re
import warnings
import zipfile
from pathlib import Path

import h5py
import numpy as np

from ..layers.base import Layer
from ..layers.registry import deserialize_layer, layer_class
from ..models import Sequential
from ..models.functional import functional_from_config
from . import untrusted
from .untrusted import ModelFileError

# Options that exist in Keras configs but change nothing rnnkit computes.
# (``seed`` and ``data_format`` are not here: a layer that takes them gets them, and any other
# layer takes only their neutral values, None and "channels_last".)
_IGNORED = {
    "implementation", "time_major", "unroll", "sparse", "ragged", "optional",
    "quantization_config", "registered_name", "module", "trainable_weights_count",
}
# Shapes Keras 2 stored to build a layer before its first call; the call's inputs build it here.
_BUILD_ONLY = {"query_shape", "key_shape", "value_shape"}
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
        if key in _IGNORED or (key in _BUILD_ONLY and class_name == "MultiHeadAttention"):
            continue
        if key == "dtype":
            policy = value.get("config", {}).get("name") if isinstance(value, dict) else value
            if class_name == "InputLayer" and policy is not None:
                out[key] = policy
            elif policy not in (None, "float32"):
                raise ModelFileError(f"Keras layer {name!r} ({class_name}) computes in dtype {policy!r}; "
                                     "rnnkit reads float32 models only")
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


def _build_model(model_config: dict, legacy: bool):
    """A Keras model config (``config.json`` or an ``.h5`` file's ``model_config``) -> an rnnkit model."""
    kind = model_config.get("class_name")
    if not isinstance(model_config.get("config"), (dict, list)):
        raise ModelFileError("the Keras model config has no 'config' object")
    if kind == "Sequential":
        return _build_sequential(model_config, legacy)
    if kind in ("Functional", "Model"):
        try:
            return functional_from_config(_translate_functional(model_config["config"], legacy))
        except (ValueError, TypeError, KeyError) as exc:
            if isinstance(exc, ModelFileError):
                raise
            raise ModelFileError(f"the Keras functional model cannot be rebuilt: {exc}") from None
    raise ModelFileError(
        f"only Sequential and functional Keras models can be imported, this file holds a {kind!r} model "
        "(a subclassed model's code is not in its file: rebuild it in Python and use load_weights)"
    )


def _translate_nested(spec: dict, legacy: bool, nested: set) -> dict:
    """A layer spec of a functional model's ``layers`` list, translated, with its calls."""
    kind = spec["class_name"]
    if kind in ("Functional", "Model"):
        out = {"class_name": "Functional", "config": _translate_functional(spec["config"], legacy)}
    elif kind == "Sequential":
        layers = spec["config"]["layers"]
        out = {"class_name": "Sequential", "config": {
            "name": spec["config"].get("name"),
            "layers": [translate_layer(s, legacy, first=(i == 0)) for i, s in enumerate(layers)]}}
    elif str(spec.get("module", "")).startswith("keras.src.ops.") or _legacy_op(spec):  # keras.ops in the graph
        config = dict(spec.get("config", {}))
        out = {"class_name": "OpCall",
               "config": {"name": config.pop("name", None), "op": _snake(kind), "arguments": config}}
    else:
        out = translate_layer(spec, legacy, first=(kind == "InputLayer"))
    out["name"] = spec.get("name") or spec.get("config", {}).get("name")
    out["inbound_nodes"] = [_node(n, kind, nested) for n in spec.get("inbound_nodes", [])]
    return out


def _legacy_op(spec: dict) -> bool:
    """A keras.ops function in a Keras 3 legacy .h5 config, which names no module: a class no
    layer registry knows whose snake-cased name is an operation of `rnnkit.ops`."""
    from .. import ops

    if "module" in spec or "registered_name" in spec:
        return False
    try:
        layer_class(spec)
        return False
    except ValueError:
        return callable(getattr(ops, _snake(spec["class_name"]), None))


def _translate_functional(cfg: dict, legacy: bool) -> dict:
    keras2 = any(isinstance(n, list) for s in cfg["layers"] for n in s.get("inbound_nodes", []))
    # Keras 2 numbered a nested model's calls from 1 (its own input->output node is 0) everywhere.
    nested = {s.get("name") or s["config"].get("name") for s in cfg["layers"] if keras2 and (
        s["class_name"] in ("Functional", "Model") or (
            s["class_name"] == "Sequential" and s["config"].get("layers", [{}])[0].get("class_name") == "InputLayer"))}
    layers = [_translate_nested(s, legacy, nested) for s in cfg["layers"]]
    ins, outs = cfg["input_layers"], cfg["output_layers"]
    if keras2:  # Keras 2 wrote every model's inputs and outputs as lists; one means the tensor itself
        ins = ins[0] if isinstance(ins, list) and len(ins) == 1 and _ref(ins[0]) else ins
        outs = outs[0] if isinstance(outs, list) and len(outs) == 1 and _ref(outs[0]) else outs
    return {"name": cfg.get("name"), "trainable": cfg.get("trainable", True), "layers": layers,
            "input_layers": ins, "output_layers": outs}


def _ref(v) -> bool:
    return isinstance(v, list) and len(v) in (3, 4) and isinstance(v[0], str) and all(isinstance(i, int) for i in v[1:3])


def _tensor(ref: list, nested: set) -> dict:
    node = int(ref[1]) - (ref[0] in nested)
    return {"class_name": "__keras_tensor__", "config": {"keras_history": [ref[0], node, int(ref[2])]}}


# Keras 2 called a recurrent layer with ``[inputs, *initial_state]`` as one list.
_STATEFUL_CALLS = {"SimpleRNN", "LSTM", "GRU", "RNN", "Bidirectional"}


def _node(node, class_name: str, nested: set) -> dict:
    """One call of a layer, as Keras 3 writes it: ``{"args": [...], "kwargs": {...}}``.

    Keras 2's form, a list of ``[layer, node, tensor, kwargs]`` entries, is converted. The
    ``training`` Keras records is dropped (the model's own call decides it, as in Keras 3's
    functional models), and so is ``mask=None`` (the default: masks ride on the tensors)."""
    if isinstance(node, dict):
        args, kwargs = list(node.get("args", [])), dict(node.get("kwargs", {}))
    elif isinstance(node, list) and node and all(_ref(e) for e in node):
        def conv(v):
            if _ref(v):
                return _tensor(v, nested)
            if isinstance(v, list):
                return [conv(x) for x in v]
            return {k: conv(x) for k, x in v.items()} if isinstance(v, dict) else v

        tensors = [_tensor(e, nested) for e in node]
        kwargs = {k: conv(v) for k, v in (node[0][3] if len(node[0]) > 3 else {}).items()}
        if len(tensors) == 1:
            args = [tensors[0]]
        elif class_name in _STATEFUL_CALLS:
            args, kwargs["initial_state"] = [tensors[0]], tensors[1:]
        else:
            args = [tensors]
    else:
        raise ModelFileError(f"a call of Keras layer class {class_name} is written in a form rnnkit cannot read")
    kwargs.pop("training", None)
    if kwargs.get("mask", 0) is None:
        del kwargs["mask"]
    return {"args": args, "kwargs": kwargs}


def _build_sequential(model_config: dict, legacy: bool):
    cfg = model_config["config"]
    layer_specs = cfg["layers"] if isinstance(cfg, dict) else cfg  # very old Keras stored a bare list
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
def _snake(class_name: str) -> str:
    """Keras's ``naming.to_snake_case``: the key of an object's weights group in ``model.weights.h5``."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _container_keys(specs: list[dict]) -> list[str]:
    """The group keys Keras gives a list of objects: the snake-cased class name, then ``_1``, ``_2``
    for the next objects of the same class, in list order (``saving_lib._save_container_state``)."""
    used: dict[str, int] = {}
    keys = []
    for spec in specs:
        key = _snake(spec["class_name"].split(">")[-1])
        if key in used:
            used[key] += 1
            key = f"{key}_{used[key]}"
        else:
            used[key] = 0
        keys.append(key)
    return keys


# Sub-objects whose weights follow the owner's, in the owner's weight order (Keras walks attributes
# alphabetically when it writes; the order a layer lists its weights is this one).
_CHILDREN = {
    "MultiHeadAttention": ["query_dense", "key_dense", "value_dense", "output_dense"],
    "Bidirectional": ["forward_layer", "backward_layer"],
}


def _child_specs(spec: dict) -> list[tuple[str, dict | None]]:
    cfg = spec.get("config", {})
    cls = spec["class_name"]
    if cls == "StackedRNNCells":
        cells = cfg.get("cells", [])
        return [(f"cells/{k}", c) for k, c in zip(_container_keys(cells), cells)]
    if cls in _CHILDREN:
        inner = cfg.get("layer")
        return [(k, cfg.get("backward_layer") or inner if k == "backward_layer" else inner) for k in _CHILDREN[cls]]
    if isinstance(cfg.get("cell"), dict):
        return [("cell", cfg["cell"])]
    if isinstance(cfg.get("layer"), dict):
        return [("layer", cfg["layer"])]
    return []


def _collect_vars(group, spec: dict | None) -> list[np.ndarray]:
    """An object's variables in Keras's order: its own ``vars/0..n``, then its sub-objects'."""
    out = []
    if "vars" in group:
        v = group["vars"]
        out += [v[k][()] for k in sorted(v.keys(), key=int)]
    if spec is not None and spec["class_name"] in ("Functional", "Sequential") and "layers" in group:
        return out + _container_vars(group["layers"], spec["config"]["layers"])
    children = _child_specs(spec) if spec is not None else []
    known = {key.split("/")[0] for key, _ in children}
    for key, child in children:
        if key in group:
            out += _collect_vars(group[key], child)
    for key in sorted(k for k in group.keys() if k != "vars" and k not in known):
        if isinstance(group[key], h5py.Group):  # an object rnnkit has no order for: Keras's own (sorted)
            out += _collect_vars(group[key], None)
    return out


def _container_vars(layers_group, specs: list[dict]) -> list[np.ndarray]:
    out = []
    for key, spec in zip(_container_keys(specs), specs):
        if key in layers_group:
            out += _collect_vars(layers_group[key], spec)
    return out


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
    model = _build_model(config, legacy=False)
    specs = [s for s in config["config"]["layers"]] if isinstance(config.get("config"), dict) else []
    if config.get("class_name") == "Sequential":
        specs = [s for s in specs if s["class_name"] != "InputLayer"]  # Sequential.layers leaves it out
    try:
        with h5py.File(io.BytesIO(weights_bytes), "r") as h5:
            layers_group = h5["layers"] if "layers" in h5 else {}
            for key, spec in zip(_container_keys(specs), specs):
                layer = model.get_layer(spec.get("config", {}).get("name") or spec.get("name"))
                if not layer.get_weights():
                    continue
                if key not in layers_group:
                    raise ModelFileError(f"{path}: no weights stored for layer {layer.name!r} (group layers/{key})")
                _set(layer, _collect_vars(layers_group[key], spec), path)
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
        version = h5.attrs.get("keras_version", b"2")
        version = version.decode() if isinstance(version, bytes) else str(version)
        # Keras 3 writes legacy .h5 files too; only Keras 2's carry Keras 2's definitions.
        model = _build_model(config, legacy=not version.startswith("3"))
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
