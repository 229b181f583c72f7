"""Dropout on the CPU with masks from a C kernel (``rnnkit/native/dropout.c``).

PyTorch's CPU ``F.dropout`` draws each element with ``bernoulli_`` from its locked
Mersenne Twister: 13.6 ms for a (32, 128, 384) float32 tensor here, where multiplying
by the mask takes 0.3 ms, so dropout between a char model's layers cost 30 % of its
training step. The kernel draws each element from an integer hash of a per-call
seed and the element's index, vectorized and in parallel. The seed comes from PyTorch's
default generator, so ``torch.manual_seed`` and the RNG states that training runs
save for ``--resume`` still fix every mask; the masks differ from ``F.dropout``'s
(another generator), with the same distribution: each element kept with probability
``1 - p`` (to 2^-32) and scaled by ``1 / (1 - p)``. Anything else (other devices,
dtypes, no C compiler, ``RNNKIT_NATIVE=0``) runs ``F.dropout``.
"""
from __future__ import annotations

import ctypes
import functools

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

__all__ = ["dropout", "Dropout"]


@functools.lru_cache(maxsize=None)
def _kernel():
    from .. import native

    lib = native.library("dropout")
    if lib is None:
        return None
    fn = lib.rnnkit_dropout
    fn.argtypes = [ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_float,
                   ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32]
    fn.restype = None
    return fn


class _Dropout(torch.autograd.Function):
    """The kernel forward; backward, the same kernel on the gradient with the same seed
    (the same elements kept and scaled), so no mask is stored."""

    @staticmethod
    def forward(ctx, x, p):
        ctx.seed = int(torch.randint(0, 2**63 - 1, (1,), dtype=torch.int64))
        ctx.threshold = min(round((1.0 - p) * 2.0**32), 2**32 - 1)
        ctx.scale = 1.0 / (1.0 - p)
        return _apply(ctx, x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        return _apply(ctx, grad), None


def _apply(ctx, x: torch.Tensor) -> torch.Tensor:
    x = x.contiguous()
    y = torch.empty_like(x)
    _kernel()(x.numel(), ctx.seed, ctx.threshold, ctx.scale, x.data_ptr(), y.data_ptr(), torch.get_num_threads())
    return y


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout(x, p, training)``; float32 CPU tensors take the C kernel's masks."""
    if not training or p == 0.0:
        return x
    if not 0.0 <= p < 1.0:
        return F.dropout(x, p, training)  # p = 1 and bad rates: PyTorch's result and error
    # (under torch.func transforms the kernel cannot see the batched tensors: PyTorch's dropout)
    if (x.device.type == "cpu" and x.dtype == torch.float32 and x.numel() and _kernel() is not None
            and not torch._C._are_functorch_transforms_active()):
        return _Dropout.apply(x, float(p))
    return F.dropout(x, p, training)


class Dropout(nn.Module):
    """``nn.Dropout`` with `dropout`'s CPU masks: zeroes elements with probability ``p`` and
    scales the rest by ``1 / (1 - p)`` while training; identity in eval mode."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
