"""``load_model``: a model rebuilt from a file, rnnkit's own (`native`) or Keras's (`keras_format`).

Loading makes models, so this module sits above `rnnkit.models` (which writes files through
`native` and never imports this module); the layer registry finds the classes a file names.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .. import models  # noqa: F401  (registers Sequential and Functional with the layer registry)
from ..layers.registry import deserialize_layer
from . import native, untrusted
from .keras_format import is_keras_file, load_keras_file
from .objects import custom_object_scope
from .untrusted import ModelFileError


def load_model(filepath, compile: bool = True, custom_objects=None):
    """Load a model saved by ``Model.save``, or a Keras ``.keras`` / legacy ``.h5`` file.

    Args:
        filepath: path to the file.
        compile: restore the loss, metrics and optimizer (with its state) when saved.
        custom_objects: ``{name: class}`` for custom layers (and initializers ...) the file names,
            besides those registered with ``keras.saving.register_keras_serializable``.

    Every failure to read the file is one ``ModelFileError``; what a file may declare is bounded
    as ``rnnkit.saving.untrusted`` says (limits raised with ``RNNKIT_MAX_*`` variables).
    """
    # Names in the file resolve to rnnkit's classes, registered ones, and these (never to code in the file).
    path = Path(os.fspath(filepath))
    with custom_object_scope(custom_objects), untrusted.reading(path):
        return _load_model(path, compile)


def _load_model(path: Path, compile: bool):
    # By content, not by name: ``model.save("best.h5")`` (the Keras 2 habit, also through
    # ModelCheckpoint) writes rnnkit's own format under a Keras name.
    if is_keras_file(path):
        return load_keras_file(path, compile=compile)
    if path.suffix in (".keras", ".h5", ".hdf5") and path.is_file():
        try:
            return load_native(path, compile=compile)
        except ModelFileError:
            raise ModelFileError(
                f"{path}: neither a Keras 3 .keras archive, an HDF5 .h5 file nor an rnnkit model file"
            ) from None
    return load_native(path, compile=compile)


def load_native(path, compile: bool = True, custom_objects=None):
    tensors, metadata = native.read_file(path)
    try:
        spec = json.loads(metadata["model_config"])
        untrusted.check_config(path, spec)
        model = deserialize_layer(spec, custom_objects=custom_objects)
    except (KeyError, json.JSONDecodeError, TypeError, AttributeError, RecursionError) as exc:
        raise ModelFileError(untrusted.one_line(f"{path}: model config is unreadable ({exc!r})")) from None
    if metadata["rnnkit_format"] == native.FORMAT_1:
        tensors = native._upgrade_format_1(model, tensors)
    native._load_tensors(model, {k: v for k, v in tensors.items() if not k.startswith("optimizer/")}, path)
    if compile and "compile_config" in metadata:
        cfg = json.loads(metadata["compile_config"])
        model.compile(optimizer=cfg["optimizer"], loss=cfg["loss"], metrics=cfg["metrics"], device="cpu",
                      precision=cfg.get("precision", "fp32"), loss_weights=cfg.get("loss_weights"),
                      weighted_metrics=cfg.get("weighted_metrics"))
        if "optimizer_state" in metadata:
            opt_meta = json.loads(metadata["optimizer_state"])
            opt_tensors = {k: v for k, v in tensors.items() if k.startswith("optimizer/")}
            model.compiled.optimizer.iterations = opt_meta.get("iterations", 0)
            model.compiled.optimizer.torch_optimizer.load_state_dict(native.join_optimizer_state(opt_tensors, opt_meta))
    return model
