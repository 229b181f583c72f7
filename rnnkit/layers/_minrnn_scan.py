"""The scan kernels of MinGRU and MinLSTM (`minrnn`): ``h_t = a_t * h_{t-1} + b_t`` along time.

`log_space_scan` (every step at once in log space: the GPU path), `fused_scan` (projection,
gates and recurrence in one autograd function: `_NativeScan` on the C kernels of
``rnnkit/native/minrnn_scan.c`` where they fit, else `_FusedScan` in cache-sized blocks of steps)
and the activation ``g`` with its logarithm. The cells in `minrnn` say which path runs when.
"""
from __future__ import annotations

import ctypes
import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

# Stands for log(0) at masked steps: finite so that logcumsumexp's backward never
# meets (-inf) - (-inf); exp of it is exactly 0 in float64.
_LOG_ZERO = -1e30
_LOG_HALF = math.log(0.5)


def g(x: torch.Tensor) -> torch.Tensor:
    """The paper's positive activation for candidate states: ``x + 0.5`` for x >= 0, else ``sigmoid(x)``."""
    # relu + clamp rather than torch.where: the same values and gradients, and several
    # times faster on CPU, where comparisons and where() are not vectorised.
    return F.relu(x) + torch.sigmoid(x.clamp(max=0.0))


def log_g(x: torch.Tensor) -> torch.Tensor:
    """``log(g(x))`` computed without forming g (stable for very negative x)."""
    return torch.log(F.relu(x) + 0.5) + F.logsigmoid(x.clamp(max=0.0)) - _LOG_HALF


def log_space_scan(log_a: torch.Tensor, log_b: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """All states of ``h_t = a_t * h_{t-1} + b_t`` at once, from ``log a`` and ``log b``.

    Args:
        log_a, log_b: ``(batch, time, units)``; ``log_a <= 0``.
        h0: initial state ``(batch, units)`` of any sign, or None for zeros.

    Returns:
        ``h (batch, time, units)`` in the dtype of ``log_b``.
    """
    # Heinsen's scan (2023): unrolled, h_t = exp(a*_t) * sum_{s<=t} exp(log b_s - a*_s) with
    # a* = cumsum(log a), and logcumsumexp adds those exponentials without overflow. Yet log h_t
    # is then a difference of two numbers as large as |a*_t|, which grows with t: fp32 would keep
    # only ~|a*_t| * 6e-8 of relative precision (1e-3 after 4,096 steps), so the scan runs in float64.
    a_star = log_a.double().cumsum(1)
    h = torch.exp(a_star + torch.logcumsumexp(log_b.double() - a_star, dim=1))
    if h0 is not None:  # the recurrence is linear in h0, so its share adds outside the logs
        h = h + torch.exp(a_star) * h0.double().unsqueeze(1)
    return h.to(log_b.dtype)


# Steps per block: about 1 MiB of each temporary, so a block's gates stay in the CPU's cache
# (measured: 4x smaller blocks pay more in per-call overhead, 4x larger ones in memory traffic).
_BLOCK_ELEMENTS = 262144


def _block_steps(batch: int, units: int) -> int:
    return max(1, _BLOCK_ELEMENTS // (batch * units))


def _numpy_ok(t: torch.Tensor) -> bool:
    """Whether the per-step loops can run as numpy calls on ``t``'s memory (CPU, float32/64)."""
    return t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)


def _np_recur(a: np.ndarray, b: np.ndarray, prev: np.ndarray, out: np.ndarray) -> None:
    """``out[t] = a[t] * out[t-1] + b[t]`` along axis 0, from ``out[-1] = prev``."""
    with np.errstate(all="ignore"):  # inf/nan propagate silently, as in the torch ops
        for a_t, b_t, o_t in zip(a, b, out):
            np.multiply(a_t, prev, out=o_t)
            np.add(o_t, b_t, out=o_t)
            prev = o_t


def _np_recur_back(a: np.ndarray, G: np.ndarray, accumulate: bool) -> None:
    """Reverse recurrence along axis 0 from ``G[-1]``: ``G[t] (+)= a[t+1] * G[t+1]``
    (added to what ``G[t]`` holds with ``accumulate``, else replacing it)."""
    tmp = np.empty_like(G[0])
    with np.errstate(all="ignore"):  # inf/nan propagate silently, as in the torch ops
        for t in range(len(G) - 2, -1, -1):
            if accumulate:
                np.multiply(a[t + 1], G[t + 1], out=tmp)
                np.add(G[t], tmp, out=G[t])
            else:
                np.multiply(a[t + 1], G[t + 1], out=G[t])


def _update_gate(P: torch.Tensor, z: torch.Tensor, sl: slice) -> torch.Tensor:
    """Fill ``z[sl]`` from the projection ``P (blocks, time, batch, units)``; keep what the backward needs in P."""
    if P.shape[0] == 2:  # MinGRU: z = sigmoid(logit), in place (z is P[0])
        return P[0][sl].sigmoid_()
    # MinLSTM: z = i / (f + i) = (1 + e^-pf) / ((1 + e^-pf) + (1 + e^-pi)), numerator and denominator
    # times e^c, c = min(pf, pi, 0): no exponent is positive and one term is 1, so it holds for any
    # logits (the sigmoids themselves underflow below about -88). P[0], P[1] become 1 - f and 1 - i,
    # the derivatives of d = log i - log f by the gate logits (up to sign) that the backward needs.
    pf, pi = P[0][sl], P[1][sl]
    c = torch.minimum(pf, pi).clamp_(max=0.0)
    ec = c.exp()
    num = torch.sub(c, pf).exp_().add_(ec)
    zb = torch.div(num, torch.sub(c, pi).exp_().add_(ec).add_(num), out=z[sl])
    pf.neg_().sigmoid_()
    pi.neg_().sigmoid_()
    return zb


def _update_gate_backward(P: torch.Tensor, grad_P: torch.Tensor) -> None:
    """Turn ``grad_P[0]``, the gradient of the update logit ``d``, into the gate logits' gradients.

    ``P`` and ``grad_P`` cover the same steps."""
    if P.shape[0] == 2:  # MinGRU: d is the logit itself
        return
    # MinLSTM: d = log i - log f, so dd/d(i logit) = 1 - i and dd/d(f logit) = -(1 - f)
    torch.mul(grad_P[0], P[1], out=grad_P[1])
    grad_P[0].mul_(P[0]).neg_()


class _FusedScan(torch.autograd.Function):
    """MinGRU / MinLSTM's ``scan="loop"`` path: projection, gates and ``h_t = (1 - z_t) h_{t-1} + z_t g(k_t)``.

    Inputs: ``x (batch, time, in)``, ``weight (blocks*units, in)``, ``bias`` or None,
    ``h0 (batch, units)``, ``keep (batch, time, 1)`` (1 at real steps, 0 at masked
    ones, which keep the state) or None, ``sequence`` (whether the outputs of all
    steps are wanted, or only the last state). Returns ``(h (batch, time, units)``
    or an empty tensor, ``h_T (batch, units))``.

    One matrix product per gate block gives every step's logits at once; then time
    is walked in blocks of steps whose gates are computed just before their steps,
    so the temporaries stay in the CPU's cache, and the recurrence runs step by step
    (``h_t = a_t h_{t-1} + z_t g(k_t)`` as two numpy calls on the CPU, a ``lerp``
    elsewhere). The backward is the reverse recurrence ``G_t = dL/dh_t + a_{t+1} G_{t+1}``
    (``a = 1 - z``), then ``dL/dd_t = G_t a_t (h_t - h_{t-1})`` (as ``z_t (g(k_t) - h_{t-1})
    = h_t - h_{t-1}``), ``dL/dk_t = G_t z_t g'(k_t)``, ``dL/dh0 = a_0 G_0`` and the
    projection's products: autograd through the loop would record nodes at every step,
    and would keep every elementwise temporary.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, h0, keep, sequence):
        batch, time, _ = x.shape
        units = h0.shape[1]
        blocks = weight.shape[0] // units
        # Time-major inside: a step is then one contiguous (batch, units) slab; batch-major
        # slices of a step sit time * units apart, a power of two that thrashes the caches.
        x2 = x.transpose(0, 1).reshape(time * batch, -1)
        ws = [w.t() for w in weight.split(units)]
        biases = [None] * blocks if bias is None else bias.split(units)
        P = x.new_empty(blocks, time, batch, units)
        z = P[0] if blocks == 2 else torch.empty_like(P[0])
        k, h = P[-1], torch.empty_like(P[0])
        keep = None if keep is None else keep.transpose(0, 1)
        prev = h0
        n = _block_steps(batch, units)
        use_np = _numpy_ok(x)
        a_buf = h.new_empty(min(n, time), batch, units) if use_np else None
        for start in range(0, time, n):
            sl, rows = slice(start, start + n), slice(start * batch, (start + n) * batch)
            for Pj, w, b in zip(P, ws, biases):
                torch.mm(x2[rows], w, out=Pj[sl].view(-1, units))
                if b is not None:  # (addmm would broadcast-copy the bias first, several times slower)
                    Pj[sl].add_(b)
            zb = _update_gate(P, z, sl)
            if keep is not None:
                zb.mul_(keep[sl])
            kb = k[sl]
            s = kb.clamp(max=0.0).sigmoid_()
            gk = kb.clamp(min=0.0).add_(s)  # g(k) = relu(k) + sigmoid(min(k, 0))
            # g'(k), kept in k's place for the backward: 1 for k > 0, s (1 - s) for k <= 0 (< 1).
            torch.maximum(kb.gt_(0.0), s.addcmul_(s, s, value=-1.0), out=kb)
            if use_np:
                # h_t = a_t h_{t-1} + b_t as two numpy calls per step (~1 us each, where a torch
                # call costs ~5 us of dispatch on (batch, units) slabs this small).
                b = gk.mul_(zb)
                _np_recur(torch.sub(1.0, zb, out=a_buf[: len(zb)]).numpy(), b.numpy(),
                          prev.detach().numpy(), h[sl].numpy())
                prev = h[sl][-1]
            else:
                for z_t, g_t, h_t in zip(zb.unbind(0), gk.unbind(0), h[sl].unbind(0)):
                    prev = torch.lerp(prev, g_t, z_t, out=h_t)
        ctx.save_for_backward(x2, weight, h0, P, z, h)
        ctx.has_bias = bias is not None
        ctx.set_materialize_grads(False)
        return (h.transpose(0, 1) if sequence else h.new_empty(0)), prev.clone()

    @staticmethod
    @once_differentiable  # the backward is written out: a second derivative must be refused, not zero
    def backward(ctx, grad_h, grad_last):
        x2, weight, h0, P, z, h = ctx.saved_tensors
        blocks, time, batch, units = P.shape
        grad_h = None if grad_h is None or grad_h.numel() == 0 else grad_h.transpose(0, 1)
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        ws = weight.split(units)
        grad_x = x2.new_empty(x2.shape) if need_x else None
        grad_w = torch.zeros_like(weight) if need_w else None
        grad_b = weight.new_zeros(weight.shape[0]) if ctx.has_bias and need_b else None
        carry = grad_last  # a_{t+1} G_{t+1} flowing back into the block before
        n = _block_steps(batch, units)
        # Gradients of a block's logits live in one block-sized buffer: the projection's
        # products consume them while they are still in cache.
        grad_P = P.new_empty(blocks, min(n, time), batch, units)
        G = h0.new_empty(min(n, time), batch, units)
        use_np = _numpy_ok(G)
        for start in reversed(range(0, time, n)):
            sl, rows = slice(start, start + n), slice(start * batch, (start + n) * batch)
            zb = z[sl]
            steps = len(zb)
            gP, Gb = grad_P[:, :steps], G[:steps]
            gs, zs = Gb.unbind(0), zb.unbind(0)
            if grad_h is not None:
                a = 1.0 - zb
                Gb.copy_(grad_h[sl])
                if carry is not None:
                    gs[-1].add_(carry)
                if use_np:
                    _np_recur_back(a.numpy(), Gb.numpy(), accumulate=True)
                else:
                    for t in range(steps - 2, -1, -1):
                        gs[t].addcmul_(a[t + 1], gs[t + 1])
            elif carry is not None:  # only the last state has a gradient: G_t = (1 - z_{t+1}) G_{t+1}
                gs[-1].copy_(carry)
                if use_np:
                    _np_recur_back(torch.sub(1.0, zb).numpy(), Gb.numpy(), accumulate=False)
                else:
                    for t in range(steps - 2, -1, -1):
                        torch.addcmul(gs[t + 1], zs[t + 1], gs[t + 1], value=-1.0, out=gs[t])
            else:
                Gb.zero_()
            torch.mul(Gb, zb, out=gP[-1]).mul_(P[-1][sl])  # dL/dk = G z g'(k)
            grad_d = gP[0]  # from h_t - h_{t-1}
            if start:
                torch.sub(h[sl], h[start - 1 : start + steps - 1], out=grad_d)
            else:
                torch.sub(h[1:steps], h[: steps - 1], out=grad_d[1:])
                torch.sub(h[0], h0, out=grad_d[0])
            carry = torch.addcmul(gs[0], zs[0], gs[0], value=-1.0)  # a_0 G_0
            if grad_h is None:  # then a_t G_t = G_{t-1}: one product fewer
                grad_d[1:].mul_(Gb[:-1])
                grad_d[0].mul_(carry)
            else:
                grad_d.mul_(a).mul_(Gb)
            _update_gate_backward(P[:, sl], gP)
            flat = gP.reshape(blocks, -1, units)
            if need_x:
                torch.mm(flat[0], ws[0], out=grad_x[rows])
                for j in range(1, blocks):
                    grad_x[rows].addmm_(flat[j], ws[j])
            if need_w:
                for j, gw in enumerate(grad_w.split(units)):
                    gw.addmm_(flat[j].t(), x2[rows])
            if grad_b is not None:
                grad_b.view(blocks, units).add_(flat.sum(1))
        if need_x:
            grad_x = grad_x.view(time, batch, -1).transpose(0, 1)
        return grad_x, grad_w, grad_b, carry, None, None


@functools.lru_cache(maxsize=None)
def _kernels():
    """The compiled kernels (``rnnkit/native/minrnn_scan.c``) with their signatures, or None."""
    from .. import native

    lib = native.library("minrnn_scan")
    if lib is None:
        return None
    i32, i64, ptr = ctypes.c_int32, ctypes.c_int64, ctypes.c_void_p
    lib.rnnkit_minrnn_forward.argtypes = [i32, i64, i64, i32, *[ptr] * 6, i32]
    lib.rnnkit_minrnn_backward.argtypes = [i32, i64, i64, i32, *[ptr] * 8, i32]
    lib.rnnkit_minrnn_forward.restype = lib.rnnkit_minrnn_backward.restype = None
    return lib


def _native():
    """The C kernels where they can be used (`rnnkit.native`), else None (the torch/numpy path)."""
    return _kernels()


def _block_rows(time: int, width: int) -> int:
    return max(1, _BLOCK_ELEMENTS // max(1, time * width))


def _ptr(t: torch.Tensor | None, row: int = 0):
    return None if t is None or t.numel() == 0 else t[row].data_ptr()


class _NativeScan(torch.autograd.Function):
    """`_FusedScan`'s computation (same inputs and outputs) with the gates and the recurrence in C.

    Batch-major: each block of whole sequences (about 1 MiB of logits) gets one matrix
    product for all its gate blocks, then one kernel call that computes the gates and
    walks every sequence through time (``rnnkit/native/minrnn_scan.c``); the backward
    mirrors it, the kernel writing every logit's gradient for two matrix products and a sum.
    Float32 on the CPU; the kernels use as many threads as PyTorch's intra-op pool.

    With ``ids (batch, time)`` the inputs are ``x = table[ids]`` for an embedding
    ``table (vocab, in)`` passed as ``x``: the projection of the whole table
    (``table W^T``, ``(vocab, blocks*units)``) is computed once and each step's logits
    are a row of it, so no ``(batch, time, in)`` input and no large matrix product
    exist; the backward sums the logits' gradients per id (``index_add``) and
    multiplies the ``(vocab, blocks*units)`` sum out into the table's and the
    weight's gradients.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, h0, keep, sequence, ids=None):
        lib = _native()
        batch, time = ids.shape if ids is not None else x.shape[:2]
        units, width = h0.shape[1], weight.shape[0]
        blocks = width // units
        if ids is None:
            x2 = x.contiguous().view(batch * time, -1)
        else:
            # a copy, as the unfused path keeps the embedded vectors and not the table: the
            # table may then change in place before the backward (an optimizer, a padding row reset)
            x2 = x.detach().clone(memory_format=torch.contiguous_format)
            ids = ids.reshape(-1).contiguous()
            projected = torch.mm(x2, weight.t())
        P = x.new_empty(batch, time, width)
        z = x.new_empty(batch, time, units) if blocks == 3 else x.new_empty(0)
        h = x.new_empty(batch, time, units)
        keep = None if keep is None else keep.reshape(batch, time).to(x.dtype).contiguous()
        bias_c = None if bias is None else bias.detach().contiguous()
        h0 = h0.contiguous()
        wt, threads, n = weight.t(), torch.get_num_threads(), _block_rows(time, width)
        for b0 in range(0, batch, n):
            b1 = min(batch, b0 + n)
            rows = slice(b0 * time, b1 * time)
            if ids is None:
                torch.mm(x2[rows], wt, out=P[b0:b1].view(-1, width))
            else:
                torch.index_select(projected, 0, ids[rows], out=P[b0:b1].view(-1, width))
            lib.rnnkit_minrnn_forward(blocks, b1 - b0, time, units, _ptr(P, b0), _ptr(z, b0),
                                      None if bias_c is None else bias_c.data_ptr(), _ptr(keep, b0),
                                      _ptr(h0, b0), _ptr(h, b0), threads)
        ctx.save_for_backward(x2, weight, h0, P, z, h, ids)
        ctx.has_bias = bias is not None
        ctx.set_materialize_grads(False)
        return (h if sequence else h.new_empty(0)), h[:, -1].clone()

    @staticmethod
    @once_differentiable  # the backward is written out: a second derivative must be refused, not zero
    def backward(ctx, grad_h, grad_last):
        x2, weight, h0, P, z, h, ids = ctx.saved_tensors
        batch, time, width = P.shape
        units = h0.shape[1]
        blocks = width // units
        grad_h = None if grad_h is None or grad_h.numel() == 0 else grad_h.contiguous()
        grad_last = None if grad_last is None else grad_last.contiguous()
        if grad_h is None and grad_last is None:
            return None, None, None, None, None, None, None
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        table = ids is not None
        grad_x = x2.new_empty(x2.shape) if need_x and not table else None
        grad_w = torch.zeros_like(weight) if need_w and not table else None
        grad_b = weight.new_zeros(width) if ctx.has_bias and need_b and not table else None
        # by id: the gradient of every row of the projected table
        grad_proj = weight.new_zeros(x2.shape[0], width) if table and (need_x or need_w or need_b) else None
        grad_h0 = h0.new_empty(batch, units)
        lib, threads, n = _native(), torch.get_num_threads(), _block_rows(time, width)
        gP = P.new_empty(min(n, batch), time, width)
        for b0 in range(0, batch, n):
            b1 = min(batch, b0 + n)
            lib.rnnkit_minrnn_backward(blocks, b1 - b0, time, units, _ptr(P, b0), _ptr(z, b0), _ptr(h, b0),
                                       _ptr(h0, b0), _ptr(grad_h, b0), _ptr(grad_last, b0), gP.data_ptr(),
                                       _ptr(grad_h0, b0), threads)
            flat, rows = gP[: b1 - b0].view(-1, width), slice(b0 * time, b1 * time)
            if grad_proj is not None:
                grad_proj.index_add_(0, ids[rows], flat)
                continue
            if need_x:
                torch.mm(flat, weight, out=grad_x[rows])
            if need_w:
                grad_w.addmm_(flat.t(), x2[rows])
            if grad_b is not None:
                grad_b.add_(flat.sum(0))
        if grad_proj is not None:
            grad_x = torch.mm(grad_proj, weight) if need_x else None
            grad_w = torch.mm(grad_proj.t(), x2) if need_w else None
            grad_b = grad_proj.sum(0) if ctx.has_bias and need_b else None
        elif need_x:
            grad_x = grad_x.view(batch, time, -1)
        return grad_x, grad_w, grad_b, grad_h0, None, None, None


def _native_fits(x, weight, bias, h0, keep) -> bool:
    tensors = [x, weight, h0] + ([] if bias is None else [bias])
    return (all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
            and (keep is None or keep.device.type == "cpu") and _native() is not None)


def fused_scan(x, weight, bias, h0, keep=None, sequence=True):
    """MinGRU (``weight`` of 2 blocks) or MinLSTM (3 blocks) over ``x (batch, time, in)`` from ``h0 (batch, units)``.

    ``keep (batch, time, 1)``: 1 at real steps, 0 where the state is kept (masks).
    Returns ``(h (batch, time, units), h_T (batch, units))``; with ``sequence=False`` the
    first is an empty tensor and only ``h_T`` carries gradients (less memory traffic).
    Float32 on a CPU runs the C kernels (`_NativeScan`) where they build; anything else,
    and any CPU without them, the torch/numpy path (`_FusedScan`): same numbers.
    """
    if _native_fits(x, weight, bias, h0, keep):
        return _NativeScan.apply(x, weight, bias, h0, keep, sequence)
    return _FusedScan.apply(x, weight, bias, h0.contiguous(), keep, sequence)
