"""Checkpoints of a streaming LM run: one safetensors file each, written atomically.

A checkpoint holds every tensor needed to continue exactly — model weights
(``model/*``), optimizer moments (``optim/<param>/<key>``), the carried hidden
state (``state/<layer>/<i>``) and the RNG states as uint8 tensors (``rng/*``) —
and, as JSON in the safetensors header, everything else: model config,
vocabulary, data position, scheduler state, optimizer hyper-parameters. A
SHA-256 of all tensor bytes sits beside the JSON, so a damaged file is refused
with a clear message instead of loading garbage. Nothing is unpickled.

The file is written to a temporary name, fsynced and renamed over the old one
(`rnnkit.utils.atomic_write_bytes`): a crash or a full disk while saving leaves
the previous checkpoint as it was.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

from ..utils import atomic_write_bytes

FORMAT = "rnnkit.stream-lm"
VERSION = "1"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (missing, truncated, damaged, foreign)."""


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy() if t.numel() else b"")
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write ``tensors`` and the JSON-able ``meta`` to ``path`` atomically."""
    # Own, contiguous CPU copies: safetensors refuses shared storage (tied weights, h/c zeros).
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}
    header = {"format": FORMAT, "version": VERSION, "meta": json.dumps(meta), "sha256": _digest(tensors)}
    atomic_write_bytes(path, st_save(tensors, metadata=header))


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """``(tensors, meta)`` from a checkpoint; `CheckpointError` if it is missing or damaged."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for every kind of damage
        raise CheckpointError(f"{path}: corrupt checkpoint ({str(exc).splitlines()[0] or type(exc).__name__})") from None
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an rnnkit stream-LM checkpoint (format {header.get('format')!r})")
    if _digest(tensors) != header.get("sha256"):
        raise CheckpointError(f"{path}: corrupt checkpoint (tensor data does not match its SHA-256)")
    try:
        meta = json.loads(header["meta"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: corrupt checkpoint (bad JSON header: {exc})") from None
    return tensors, meta


# ----------------------------------------------------------- packing helpers
def pack(prefix: str, d: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}/{k}": v for k, v in d.items()}


def unpack(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    cut = len(prefix) + 1
    return {k[cut:]: v for k, v in tensors.items() if k.startswith(prefix + "/")}


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """The optimizer's per-parameter tensors (flat names) and its JSON-able param groups."""
    sd = optimizer.state_dict()
    tensors = {}
    for pid, st in sd["state"].items():
        for key, value in st.items():
            tensors[f"{pid}/{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, groups


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict]) -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        pid, key = name.split("/", 1)
        state.setdefault(int(pid), {})[key] = value
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in groups]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def rng_tensors() -> dict[str, torch.Tensor]:
    out = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"cuda{i}"] = s
    return out


def set_rng(tensors: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("cuda")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
