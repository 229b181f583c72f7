"""Checkpoints of a streaming LM run: one safetensors file each, written atomically.

A checkpoint holds every tensor needed to continue exactly — model weights
(``model/*``), optimizer moments (``optim/<param>/<key>``), the carried hidden
state (``state/<layer>/<i>``, one row per stream: in data-parallel runs, every rank's
streams gathered in rank order) and the RNG states as uint8 tensors (``rng/*``, other
ranks' under ``rng/rank<r>/*``) —
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
from safetensors.torch import load as st_load
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
        raise _corrupt(path, exc) from None
    return tensors, _checked_meta(path, tensors, header)


def load_checkpoint_bytes(data: bytes, path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """`load_checkpoint` of a file's bytes (``path`` names it in errors): data-parallel ranks
    get the checkpoint from rank 0 this way, so they need not share its disk."""
    try:
        n = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + n]).get("__metadata__") or {}
        tensors = st_load(data)
    except Exception as exc:
        raise _corrupt(Path(path), exc) from None
    return tensors, _checked_meta(Path(path), tensors, header)


def _corrupt(path: Path, exc: Exception) -> CheckpointError:
    return CheckpointError(f"{path}: corrupt checkpoint ({str(exc).splitlines()[0] or type(exc).__name__})")


def _checked_meta(path: Path, tensors: dict[str, torch.Tensor], header: dict) -> dict:
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an rnnkit stream-LM checkpoint (format {header.get('format')!r})")
    if _digest(tensors) != header.get("sha256"):
        raise CheckpointError(f"{path}: corrupt checkpoint (tensor data does not match its SHA-256)")
    try:
        return json.loads(header["meta"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: corrupt checkpoint (bad JSON header: {exc})") from None


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


def rng_tensors(all_devices: bool = True) -> dict[str, torch.Tensor]:
    """The CPU RNG state (``torch``) and, once CUDA is in use, each GPU's (``cuda<i>``): of
    every GPU, or with ``all_devices=False`` of the current one (a data-parallel process's)."""
    out = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        devices = range(torch.cuda.device_count()) if all_devices else [torch.cuda.current_device()]
        for i in devices:
            out[f"cuda{i}"] = torch.cuda.get_rng_state(i)
    return out


def set_rng(tensors: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(tensors["torch"])
    if torch.cuda.is_available():
        for name, state in tensors.items():
            index = name[4:]
            if name.startswith("cuda") and index.isdigit() and int(index) < torch.cuda.device_count():
                torch.cuda.set_rng_state(state, int(index))


def all_ranks_rng_tensors() -> dict[str, torch.Tensor]:
    """`rng_tensors` of every data-parallel rank (each draws its own dropout masks): rank 0's
    under their usual names, rank r's under ``rank<r>/``. One process: just `rng_tensors`."""
    from .. import distributed

    if not distributed.is_active():
        return rng_tensors()
    parts = distributed.all_gather_bytes(st_save(rng_tensors(all_devices=False)))
    out = st_load(parts[0])
    for r, part in enumerate(parts[1:], 1):
        out.update(pack(f"rank{r}", st_load(part)))
    return out


def set_rank_rng(tensors: dict[str, torch.Tensor], rank: int) -> None:
    """Restore rank ``rank``'s RNG state from `all_ranks_rng_tensors`'s output."""
    set_rng(unpack(f"rank{rank}", tensors) if rank else tensors)
