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

The streaming LM engine (`rnnkit.lm.stream_train`) gives each rank its own block of
contiguous streams instead, and uses the helpers below to keep the ranks in step:
`on_main` for what rank 0 alone reads or writes, `agree` for stops any rank can call,
`all_gather_rows` / `all_gather_bytes` to collect every rank's state for a checkpoint,
`lost_contact` for one clear error when another rank is gone. Nothing is pickled: bytes
travel as uint8 tensors.
"""
from __future__ import annotations

import datetime
import json
import os
from contextlib import contextmanager
from typing import Callable

import torch
import torch.distributed as dist


def requested() -> bool:
    """True when launched by torchrun (or similar) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def setup(device: torch.device | None = None, timeout_s: float | None = None) -> bool:
    """Join the process group described by the environment, once. Returns whether distributed.

    A process may join, `shutdown` and join again (``train`` called twice): each join meets
    the others under keys of its own in the launch's store (see `_join_store`)."""
    if not requested() or not dist.is_available():
        return False
    if not dist.is_initialized():
        use_nccl = torch.cuda.is_available() and (device is None or device.type == "cuda")
        timeout = datetime.timedelta(seconds=float(timeout_s or os.environ.get("RNNKIT_DIST_TIMEOUT", 120)))
        _import_before_joining()
        store, rank_, world = _join_store(timeout)
        dist.init_process_group(backend="nccl" if use_nccl else "gloo", store=store, rank=rank_, world_size=world,
                                timeout=timeout)
        if use_nccl:
            torch.cuda.set_device(local_rank())
    return is_active()


#: ``(store, rank, world size)`` of this process's env:// rendezvous, made at its first join and
#: kept: rank 0 serves the store for as long as the process lives. The count of joins so far.
_rendezvous: tuple | None = None
_joins = 0


def _join_store(timeout: datetime.timedelta) -> tuple[dist.Store, int, int]:
    """``(store, rank, world size)`` for one join: the launch's rendezvous store, under keys of
    this join's own.

    ``init_method="env://"`` gives every join of a process the same keys, and keys outlive the
    group that wrote them (torchrun's agent store outlives every group; here rank 0's store
    lives as long as the process, so that a process joining again never meets a server on its
    way out). A process joining again could then read another process's address from the
    previous group before that process writes its new one: gloo connects to the old address and
    both processes wait in ``init_process_group``, past any timeout. Every process joins the same
    number of times (they run the same program), so the join count names the same fresh keys on
    all of them."""
    global _rendezvous, _joins
    if _rendezvous is None:
        from torch.distributed.rendezvous import rendezvous

        _rendezvous = next(rendezvous("env://", timeout=timeout))
    store, rank_, world = _rendezvous
    store.set_timeout(timeout)
    _joins += 1
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")  # a restarted torchrun worker group
    return dist.PrefixStore(f"rnnkit/{restart}/{_joins}/", store), rank_, world


def _import_before_joining() -> None:
    """Import what DDP imports, before the first group exists: ``torch.distributed.nn.functional``
    takes ``group.WORLD`` as its functions' default group when imported, which would keep the
    group DDP first ran in (its threads, sockets and store) alive after `shutdown`."""
    try:
        import torch.distributed.nn.functional  # noqa: F401
    except ImportError:
        pass


def rank() -> int:
    return dist.get_rank() if is_active() else 0


def world_size() -> int:
    return dist.get_world_size() if is_active() else 1


def launched_rank() -> int:
    """This process's rank as the launcher set it (``RANK``), before joining or after leaving."""
    return int(os.environ.get("RANK", "0"))


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
    payloads = [json.loads(b) for b in all_gather_bytes(mine)]
    for r, p in enumerate(payloads):
        if p != payloads[0]:
            diff = sorted(k for k in set(p) | set(payloads[0]) if p.get(k) != payloads[0].get(k))
            raise RuntimeError(
                f"rank {r} has a different {what} than rank 0 (differs in: {', '.join(diff)}); "
                f"every process must run the same command on the same data"
            )


def all_gather_bytes(data: bytes) -> list[bytes]:
    """Every rank's ``data``, in rank order, on every rank (byte strings of any length)."""
    if not is_active():
        return [bytes(data)]
    device = _comm_device()
    size = torch.tensor([len(data)], dtype=torch.long, device=device)
    sizes = [torch.zeros_like(size) for _ in range(world_size())]
    dist.all_gather(sizes, size)
    longest = max(1, int(max(s.item() for s in sizes)))
    buf = torch.zeros(longest, dtype=torch.uint8, device=device)
    if data:
        buf[: len(data)] = torch.frombuffer(bytearray(data), dtype=torch.uint8).to(device)
    bufs = [torch.zeros_like(buf) for _ in range(world_size())]
    dist.all_gather(bufs, buf)
    return [b[: int(n.item())].cpu().numpy().tobytes() for b, n in zip(bufs, sizes)]


def broadcast_bytes(data: bytes | None) -> bytes:
    """Rank 0's ``data`` on every rank (the others pass None)."""
    if not is_active():
        return bytes(data or b"")
    device = _comm_device()
    size = torch.tensor([len(data) if rank() == 0 else 0], dtype=torch.long, device=device)
    dist.broadcast(size, 0)
    buf = torch.zeros(int(size.item()), dtype=torch.uint8, device=device)
    if rank() == 0 and data:
        buf.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
    if buf.numel():
        dist.broadcast(buf, 0)
    return buf.cpu().numpy().tobytes()


def on_main(fn: Callable[[], bytes | None]) -> bytes:
    """Run ``fn`` on rank 0 only (reading or writing the run folder) and give every rank
    its result (bytes), or its failure: when ``fn`` raises on rank 0, the other ranks raise a
    `RuntimeError` with the same message instead of waiting for a rank that has stopped."""
    if not is_active():
        return fn() or b""
    if rank() != 0:
        reply = broadcast_bytes(None)
        if reply[:1] == b"E":
            raise RuntimeError(f"rank 0 stopped: {reply[1:].decode()}")
        return reply[1:]
    try:
        result = fn() or b""
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        broadcast_bytes(b"E" + message.encode())
        raise
    broadcast_bytes(b"K" + result)
    return result


def agree(*flags: bool) -> tuple[bool, ...]:
    """Each flag as true on every rank when it is true on any rank: a stop that one rank
    decides (its clock, a Ctrl-C it received) is taken by all at the same step."""
    if not is_active():
        return tuple(bool(f) for f in flags)
    t = torch.tensor([int(bool(f)) for f in flags], dtype=torch.long, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return tuple(bool(v) for v in t.tolist())


def all_gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Every rank's ``t`` (same shape on all ranks) stacked along dimension 0 in rank order."""
    if not is_active():
        return t
    parts = [torch.empty_like(t) for _ in range(world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts, 0)


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` says another rank is gone (it died, was killed, or timed out)."""
    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(s in text for s in _LOST_CONTACT)


#: How gloo and NCCL word a peer that went away (they raise plain RuntimeErrors).
_LOST_CONTACT = ("connection closed by peer", "connection reset by peer", "broken pipe", "timed out",
                 "connection refused", "nccl communicator was aborted", "socket closed", "read error",
                 "gloo/transport")


@contextmanager
def lost_contact(where: Callable[[], str]):
    """Turn a failed collective (another process died, was killed, or hung past the timeout)
    into one `RuntimeError` naming this rank and ``where()`` (say, the step and what to do)."""
    try:
        yield
    except Exception as exc:
        if not (is_active() and is_connection_error(exc)):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RuntimeError(f"rank {rank()}: lost contact with the other processes {where()} ({first})") from exc


def shutdown() -> None:
    """Leave the process group, when this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
