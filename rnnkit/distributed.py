"""Data-parallel training with torch.distributed, launched by ``torchrun``.

``torchrun --nproc_per_node=N -m rnnkit train ...`` (or any script calling
``Model.fit``) sets ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``/``MASTER_ADDR``;
``setup()`` then joins the process group (NCCL on GPU, gloo on CPU) and the
fit loop wraps the model in ``DistributedDataParallel``. Each step, every rank
takes its own contiguous slice of the same global batch (``world_size x
batch_size`` samples, in one shared shuffled order), DDP averages gradients,
and all ranks apply the same update — so N processes with per-rank batch B
follow the same trajectory as one process with batch N*B. Only rank 0 prints
progress and writes files.
"""
from __future__ import annotations

import datetime
import json
import os

import torch
import torch.distributed as dist


def requested() -> bool:
    """True when launched by torchrun (or similar) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def setup(device: torch.device | None = None, timeout_s: float | None = None) -> bool:
    """Join the process group described by the environment, once. Returns whether distributed."""
    if not requested() or not dist.is_available():
        return False
    if not dist.is_initialized():
        use_nccl = torch.cuda.is_available() and (device is None or device.type == "cuda")
        timeout = datetime.timedelta(seconds=float(timeout_s or os.environ.get("RNNKIT_DIST_TIMEOUT", 120)))
        dist.init_process_group(backend="nccl" if use_nccl else "gloo", timeout=timeout)
        if use_nccl:
            torch.cuda.set_device(local_rank())
    return is_active()


def rank() -> int:
    return dist.get_rank() if is_active() else 0


def world_size() -> int:
    return dist.get_world_size() if is_active() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """Whether this process should print and write files (rank 0, or not distributed)."""
    return rank() == 0


def broadcast_int(value: int) -> int:
    if not is_active():
        return value
    t = torch.tensor([value], dtype=torch.long, device=_comm_device())
    dist.broadcast(t, 0)
    return int(t.item())


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if is_active():
        t = t.to(_comm_device())
        dist.all_reduce(t)
    return t


def check_same_config(payload: dict, what: str = "training configuration") -> None:
    """Refuse to train when ranks disagree (different model, data size, batch size...).

    Each rank's payload travels as JSON bytes in a tensor (no pickling)."""
    if not is_active():
        return
    mine = json.dumps(payload, sort_keys=True, default=str).encode()
    device = _comm_device()
    size = torch.tensor([len(mine)], dtype=torch.long, device=device)
    sizes = [torch.zeros_like(size) for _ in range(world_size())]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    buf = torch.zeros(longest, dtype=torch.uint8, device=device)
    buf[: len(mine)] = torch.frombuffer(bytearray(mine), dtype=torch.uint8).to(device)
    bufs = [torch.zeros_like(buf) for _ in range(world_size())]
    dist.all_gather(bufs, buf)
    payloads = [json.loads(bytes(b[: int(n.item())].cpu().tolist())) for b, n in zip(bufs, sizes)]
    for r, p in enumerate(payloads):
        if p != payloads[0]:
            diff = sorted(k for k in set(p) | set(payloads[0]) if p.get(k) != payloads[0].get(k))
            raise RuntimeError(
                f"rank {r} has a different {what} than rank 0 (differs in: {', '.join(diff)}); "
                f"every process must run the same command on the same data"
            )


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
