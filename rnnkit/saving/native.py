"""rnnkit's model file: one safetensors file holding config, weights and optimizer state.

Layout: tensors ``"<layer name>/<parameter>"`` (the parameters as stored, in PyTorch's
layout: see ``layers.recurrent`` and ``layers.convolutional``), optimizer tensors ``"optimizer/<index>/<key>"``; the
safetensors header's metadata holds JSON strings ``rnnkit_format``,
``model_config``, ``compile_config`` and ``optimizer_state`` (the non-tensor part), and
``rnnkit_sha256``: a SHA-256 over the tensors (names, dtypes, shapes, bytes) and all the other
metadata, the format string included, so a damaged file is refused instead of loading wrong
numbers. Files of formats 1 and 2 have none and are read only with ``RNNKIT_ALLOW_UNCHECKED=1``
(see ``untrusted``, which also bounds what a file may declare). Nothing is ever unpickled. Files are written to a temporary name, fsynced and
renamed into place, so a crash mid-save leaves the previous file intact.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..utils import atomic_write_bytes
from . import untrusted
from .untrusted import ModelFileError

FORMAT = "rnnkit-model/3"
# Format 1 stored Conv1D kernels in Keras's (kernel_size, channels, filters) layout; format 2
# stores them as conv1d reads them; format 3 adds the digest (rnnkit_sha256). Files of formats
# 1 and 2 still load (format 1 through _upgrade_format_1), unchecked, when the user opts in.
FORMAT_1, FORMAT_2 = "rnnkit-model/1", "rnnkit-model/2"
READABLE = (FORMAT, FORMAT_2, FORMAT_1)


def _digest(tensors: dict[str, torch.Tensor], metadata: dict) -> str:
    """SHA-256 over the tensors (names, dtypes, shapes, bytes) and the metadata (but the digest itself)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    h.update(json.dumps({k: v for k, v in metadata.items() if k != "rnnkit_sha256"}, sort_keys=True).encode())
    return h.hexdigest()


def _to_bytes(tensors: dict, metadata: dict) -> bytes:
    """A safetensors file whose metadata carries `_digest` of its own contents."""
    return st_save(tensors, metadata={**metadata, "rnnkit_sha256": _digest(tensors, metadata)})


def _model_tensors(model) -> dict[str, torch.Tensor]:
    tensors = {}
    for pname, p in model._parameters.items():  # a subclassed model's own add_weight()s
        if p is not None:
            tensors[f"./{pname}"] = p.detach().cpu().contiguous()
    for layer in model.layers:
        for pname, p in layer.named_parameters():
            tensors[f"{layer.name}/{pname}"] = p.detach().cpu().contiguous()
    return tensors


def _layer_list(model) -> list:
    """``[[name, class name], ...]`` of the model's layers in order: lets a weights file load into the
    same architecture rebuilt under other automatic names (Keras matches weights by position too)."""
    return [[layer.name, type(layer).__name__] for layer in model.layers]


def _rename_by_position(model, tensors: dict, metadata: dict) -> dict:
    """The file's tensors renamed to ``model``'s layer names when the file's layers are the same
    classes in the same order under other names; ``tensors`` unchanged otherwise."""
    try:
        saved = json.loads(metadata.get("layers", "null"))
    except json.JSONDecodeError:
        return tensors
    ours = _layer_list(model)
    if not isinstance(saved, list) or [c for _, c in saved] != [c for _, c in ours]:
        return tensors
    rename = {old: new for (old, _), (new, _) in zip(saved, ours)}
    out = {}
    for key, t in tensors.items():
        layer, _, rest = key.partition("/")
        out[f"{rename.get(layer, layer)}/{rest}"] = t
    return out


def split_optimizer_state(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer/{idx}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def join_optimizer_state(tensors: dict, meta: dict) -> dict:
    state: dict = {}
    for name, t in tensors.items():
        _, idx, key = name.split("/", 2)
        state.setdefault(int(idx), {})[key] = t
    for idx, values in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_model(model, filepath, include_optimizer: bool = True, overwrite: bool = True) -> None:
    path = Path(filepath)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists and overwrite=False")
    if not model.built:
        raise ValueError(f"model {model.name!r} is not built yet, so it has no weights to save")
    tensors = _model_tensors(model)
    metadata = {
        "rnnkit_format": FORMAT,
        "model_config": json.dumps({"class_name": type(model).__name__, "config": model.get_config()}),
        "layers": json.dumps(_layer_list(model)),
    }
    state = model.compiled
    if state is not None:
        try:
            metadata["compile_config"] = json.dumps(state.get_config())
        except ValueError:
            include_optimizer = False  # a raw torch optimizer: weights only
        if include_optimizer and state.optimizer.torch_optimizer is not None:
            opt_tensors, opt_meta = split_optimizer_state(state.optimizer.torch_optimizer)
            tensors.update(opt_tensors)
            opt_meta["iterations"] = state.optimizer.iterations
            metadata["optimizer_state"] = json.dumps(opt_meta)
    atomic_write_bytes(path, _to_bytes(tensors, metadata))


_MAX_HEADER = 100 * 2**20  # safetensors' own limit on the JSON header


def _read_safetensors(path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and header metadata of a safetensors file; every failure is one ModelFileError.

    The header is read and checked first (the weights it declares against the parameters limit,
    the config's size), the whole file only then; a file carrying a digest is checked against it
    whatever format it claims, one without is read only at an old format and with the opt-in."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such {what}")
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder, not a {what}")
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size < 8:
            raise ModelFileError(f"{path}: file is truncated ({size} bytes); not an rnnkit {what}")
        header_len = int.from_bytes(fh.read(8), "little")
        if header_len <= 0 or header_len > _MAX_HEADER or 8 + header_len > size:
            raise ModelFileError(f"{path}: not an rnnkit {what} (bad or truncated safetensors header)")
        head = fh.read(header_len)
        try:
            header = json.loads(head)
            if not isinstance(header, dict):
                raise ValueError("the header is not a JSON object")
            metadata = header.get("__metadata__") or {}
            if not isinstance(metadata, dict):
                raise ValueError("__metadata__ is not a JSON object")
            shapes = {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}
        except (ValueError, UnicodeDecodeError, TypeError, KeyError, AttributeError) as exc:
            raise ModelFileError(f"{path}: corrupt or truncated {what} ({untrusted.one_line(exc)})") from None
        untrusted.check_declared_tensors(path, shapes, {k for k in shapes if not k.startswith("optimizer/")})
        untrusted.check_config_bytes(path, len(str(metadata.get("model_config", ""))))
        fh.seek(0)
        data = fh.read()
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: corrupt or truncated {what} ({exc})") from None
    del data
    fmt = str(metadata.get("rnnkit_format", ""))
    digest = metadata.get("rnnkit_sha256")
    if digest is not None:
        if digest != _digest(tensors, metadata):
            raise ModelFileError(f"{path}: corrupt {what} (its contents do not match the checksum written with it)")
    elif fmt.startswith(FORMAT):
        raise ModelFileError(f"{path}: corrupt {what} (format {FORMAT} without its checksum)")
    elif fmt.startswith((FORMAT_1, FORMAT_2)) and not untrusted.allow_unchecked():
        raise ModelFileError(
            f"{path}: {what} of format {fmt!r} carries no checksum, so damage or tampering cannot be "
            f"detected; set {untrusted.ALLOW_UNCHECKED_ENV}=1 to load it if you trust where it came from"
        )
    untrusted.grant(sum(t.numel() * t.element_size() for t in tensors.values()))
    return tensors, metadata


def read_file(path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read an rnnkit model file; every failure becomes one clear ModelFileError."""
    tensors, metadata = _read_safetensors(path, "model file")
    if metadata.get("rnnkit_format") not in READABLE:
        raise ModelFileError(
            f"{path}: not an rnnkit model file (format {metadata.get('rnnkit_format')!r}, expected {FORMAT!r})"
        )
    return tensors, metadata


def _upgrade_format_1(model, tensors: dict) -> dict:
    """Format 1 tensors in format 2's layout: Conv1D kernels and their optimizer moments permuted."""
    from ..layers.convolutional import Conv1D

    trainable = [p for p in model.parameters() if p.requires_grad]  # the optimizer's order
    tensors = dict(tensors)
    for layer in model.layers:
        for pname, p in layer.named_parameters():
            owner_path, _, leaf = pname.rpartition(".")
            if leaf != "kernel" or not isinstance(layer.get_submodule(owner_path), Conv1D):
                continue
            names = [f"{layer.name}/{pname}"]
            index = next((i for i, q in enumerate(trainable) if q is p), None)
            if index is not None:
                names += [k for k in tensors if k.startswith(f"optimizer/{index}/")]
            for name in names:
                if tensors[name].dim() == 3:
                    tensors[name] = tensors[name].permute(2, 1, 0).contiguous()
    return tensors


def _load_tensors(model, tensors: dict, path) -> None:
    expected = _model_tensors(model)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ModelFileError(
            f"{path}: weights do not match the model (missing: {missing[:5]}, unexpected: {unexpected[:5]})"
        )
    params = {f"{layer.name}/{n}": p for layer in model.layers for n, p in layer.named_parameters()}
    params.update({f"./{n}": p for n, p in model._parameters.items() if p is not None})
    with torch.no_grad():
        for name, p in params.items():
            t = tensors[name]
            if tuple(t.shape) != tuple(p.shape):
                raise ModelFileError(f"{path}: weight {name} has shape {tuple(t.shape)}, the model expects {tuple(p.shape)}")
            p.copy_(t.to(p.device))


def save_weights(model, filepath) -> None:
    if not model.built:
        raise ValueError(f"model {model.name!r} is not built yet, so it has no weights to save")
    atomic_write_bytes(Path(filepath), _to_bytes(_model_tensors(model), {"rnnkit_format": FORMAT + "+weights",
                                                                        "layers": json.dumps(_layer_list(model))}))


def load_weights(model, filepath) -> None:
    """Load a weights file (``save_weights``, or a whole model file) into ``model``; every failure is
    one ModelFileError (see ``untrusted``)."""
    with untrusted.reading(filepath, "weights file"):
        _load_weights(model, filepath)


def _load_weights(model, filepath) -> None:
    tensors, metadata = _read_safetensors(filepath, "weights file")
    fmt = metadata.get("rnnkit_format")
    if fmt not in READABLE + tuple(f + "+weights" for f in READABLE):
        raise ModelFileError(
            f"{filepath}: not an rnnkit weights file (format {fmt!r}, expected {FORMAT + '+weights'!r})"
        )
    tensors = {k: v for k, v in tensors.items() if not k.startswith("optimizer/")}
    if fmt.startswith(FORMAT_1):
        tensors = _upgrade_format_1(model, tensors)
    if set(tensors) != set(_model_tensors(model)):
        tensors = _rename_by_position(model, tensors, metadata)
    _load_tensors(model, tensors, filepath)
