"""MinGRU and MinLSTM (Feng et al., 2024, "Were RNNs All We Needed?").

Their gates read only the input, never the previous state, so the recurrence is
linear in the state::

    h_t = a_t * h_{t-1} + b_t        (a_t in (0, 1), b_t > 0, both from x_t alone)

    MinGRU:  z = sigmoid(x W_z + b_z),  h~ = g(x W_h + b_h)
             a_t = 1 - z,  b_t = z * h~
    MinLSTM: f = sigmoid(x W_f + b_f),  i = sigmoid(x W_i + b_i),  h~ = g(x W_h + b_h)
             a_t = f / (f + i),  b_t = i / (f + i) * h~

    g(x) = x + 0.5 for x >= 0, sigmoid(x) otherwise (positive, so log b_t exists)

All gates come from one input projection for every step at once; only the
update above runs along time. Both cells are written as ``z = sigmoid(d)``,
``a = 1 - z``, ``b = z * g(k)``, with ``d`` the update gate's logit (MinGRU) or
``log i - log f = softplus(-f) - softplus(-i)`` (MinLSTM, exact and stable).

Weights (PyTorch layout, as the other recurrent layers): ``weight_ih (n*u, in)``,
``bias_ih (n*u,)``; Keras-style ``get_weights()``: ``kernel (in, n*u)``,
``bias (n*u,)``. Blocks: MinGRU ``z, h`` (n=2), MinLSTM ``f, i, h`` (n=3).

Execution (``scan=``):
    ``"log"``: every step at once with Heinsen's parallel log-space scan
    (`log_space_scan`): the path for GPUs.
    ``"loop"``: one ``lerp`` per step over ``(batch, units)``, gates computed in
    cache-sized blocks of steps, backward written out (`gated_recurrence`). On
    CPU this beats the log-space scan several times over: PyTorch's CPU
    ``logcumsumexp`` is a scalar loop of exp/log per element (benchmarks/cells.py
    measures both).
    ``"cell"``: the cell's one-step function (`step`), applied step by step
    through the generic recurrent loop (the reference; generation runs one step
    at a time through any path).
    ``"auto"`` (default): ``"log"`` on CUDA, ``"loop"`` elsewhere.
All three compute the same function: tests hold each within 1e-5 of the
float64 result for up to 4,096 steps, gradients included, with masks and
``go_backwards``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import format_shape
from .recurrent import RNN
from .registry import register

SCANS = ("auto", "log", "loop", "cell")

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


def _gates(d: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``z = sigmoid(d)``, ``s = sigmoid(min(k, 0))`` and ``g(k) = relu(k) + s``."""
    z = torch.sigmoid(d)
    s = torch.sigmoid(k.clamp(max=0.0))
    return z, s, F.relu(k).add_(s)


class _GatedRecurrence(torch.autograd.Function):
    """``h_t = (1 - z_t) * h_{t-1} + z_t * g(k_t)`` with ``z = sigmoid(d)``, step by step, backward written out.

    Inputs time-major: ``d, k (time, batch, units)``, ``h0 (batch, units)``. The
    backward is the reverse recurrence ``G_t = dL/dh_t + a_{t+1} G_{t+1}`` (``a = 1 - z``),
    then ``dL/dd_t = G_t z_t a_t (g(k_t) - h_{t-1})``, ``dL/dk_t = G_t z_t g'(k_t)`` and
    ``dL/dh0 = a_0 G_0``: autograd through the loop would record nodes at every step.

    Both directions walk time in blocks of `block` steps and compute the gates of a
    block just before its steps (again in the backward, instead of saving them): each
    elementwise pass over the whole (time, batch, units) array would cost about as
    much as the loop itself, while a block's temporaries stay in the CPU's cache.
    """

    @staticmethod
    def block(batch_units: int) -> int:
        return max(1, 65536 // batch_units)  # 256 KiB per temporary: within L2

    @staticmethod
    def forward(ctx, d, k, h0):
        h = torch.empty_like(d)
        prev = h0
        n = _GatedRecurrence.block(h0.numel())
        for start in range(0, d.shape[0], n):
            z, _, gk = _gates(d[start : start + n], k[start : start + n])
            for z_t, g_t, h_t in zip(z.unbind(0), gk.unbind(0), h[start : start + n].unbind(0)):
                prev = torch.lerp(prev, g_t, z_t, out=h_t)
        ctx.save_for_backward(d, k, h0, h)
        return h

    @staticmethod
    def backward(ctx, grad_h):
        d, k, h0, h = ctx.saved_tensors
        grad_d, grad_k = torch.empty_like(d), torch.empty_like(k)
        carry = None  # a_{t+1} G_{t+1} flowing back from the next block
        n = _GatedRecurrence.block(h0.numel())
        for start in reversed(range(0, d.shape[0], n)):
            stop = min(start + n, d.shape[0])
            z, s, gk = _gates(d[start:stop], k[start:stop])
            a = 1.0 - z
            grad = grad_h[start:stop].clone(memory_format=torch.contiguous_format)
            if carry is not None:
                grad[-1].add_(carry)
            g_steps, a_steps = grad.unbind(0), a.unbind(0)
            for t in range(len(g_steps) - 2, -1, -1):
                g_steps[t].addcmul_(a_steps[t + 1], g_steps[t + 1])
            carry = a[0] * grad[0]
            gz = grad.mul_(z)
            # g'(k) = 1 for k > 0, sigmoid'(k) below: 0.75 * [k > 0] + s (1 - s).
            dg = torch.sign(k[start:stop]).clamp_(min=0.0).mul_(0.75).addcmul_(s, 1.0 - s)
            torch.mul(dg, gz, out=grad_k[start:stop])
            h_prev = h[start - 1 : stop - 1] if start else torch.cat([h0.unsqueeze(0), h[: stop - 1]])
            torch.mul(gk.sub_(h_prev).mul_(a), gz, out=grad_d[start:stop])
        return grad_d, grad_k, carry


def gated_recurrence(d: torch.Tensor, k: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """All states of ``h_t = (1 - z_t) h_{t-1} + z_t g(k_t)``, ``z = sigmoid(d)``, one step at a time.

    ``d, k (time, batch, units)`` (time-major: the loop walks axis 0), ``h0 (batch, units)``;
    returns ``(time, batch, units)``. ``d = -inf`` gives ``z = 0``: the step keeps the state.
    """
    return _GatedRecurrence.apply(d.contiguous(), k.contiguous(), h0.contiguous())


class MinRNN(RNN):
    """What MinGRU and MinLSTM share: weights, the three execution paths, config.

    A subclass sets ``blocks`` (gate blocks in the projection) and ``_logits``,
    which turns the projection into the update logit ``d`` and the candidate
    pre-activation ``k`` (so ``z = sigmoid(d)``, ``a = 1 - z``, ``b = z * g(k)``).
    """

    blocks = 2
    cell_type = "minrnn"
    _NOT_HERE = ("activation", "recurrent_activation", "recurrent_initializer", "recurrent_regularizer",
                 "recurrent_dropout", "stateful", "unroll", "unit_forget_bias", "reset_after")

    def __init__(
        self,
        units: int,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        zero_output_for_mask: bool = False,
        scan: str = "auto",
        **kwargs,
    ):
        cls = type(self).__name__
        fixed = sorted(k for k in kwargs if k in self._NOT_HERE)
        if fixed:
            raise TypeError(f"{cls}() has fixed activations and no recurrent weights; drop argument(s): {', '.join(fixed)}")
        if scan not in SCANS:
            raise ValueError(f"{cls}: scan must be one of {', '.join(SCANS)}, got {scan!r}")
        super().__init__(
            units, use_bias=use_bias, kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer, dropout=dropout,
            return_sequences=return_sequences, return_state=return_state, go_backwards=go_backwards,
            zero_output_for_mask=zero_output_for_mask, **kwargs,
        )
        self.scan = scan

    # -------------------------------------------------------------- weights
    @property
    def gates(self) -> int:
        return self.blocks

    @property
    def n_states(self) -> int:
        return 1

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                f"layer {self.name!r} ({type(self).__name__}) expects inputs of shape "
                f"(batch, time, features) with known features, got {format_shape(input_shape)}"
            )
        n = self.blocks * self.units
        self.weight_ih = nn.Parameter(torch.empty(n, input_shape[-1]))
        self.bias_ih = nn.Parameter(torch.empty(n)) if self.use_bias else None
        keras = [self.kernel_initializer((input_shape[-1], n))]
        if self.use_bias:
            keras.append(self.bias_initializer((n,)))
        with torch.no_grad():
            self.load_keras_weight_tensors(keras)

    def keras_weight_tensors(self):
        return [self.weight_ih.t()] + ([self.bias_ih] if self.use_bias else [])

    def load_keras_weight_tensors(self, arrays):
        ws = [torch.as_tensor(a, dtype=torch.float32) for a in arrays]
        self.weight_ih.data.copy_(ws[0].t())
        if self.use_bias:
            self.bias_ih.data.copy_(ws[1].reshape(-1))

    # ------------------------------------------------------------ execution
    def _logits(self, parts) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - interface
        """``(d, k)``, each ``(..., units)``, from the projection's ``blocks`` parts, each ``(..., units)``."""
        raise NotImplementedError

    def _project(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The input projection of every step, one contiguous tensor per block (elementwise
        ops on slices of one wide projection run several times slower on CPU)."""
        ws = self.weight_ih.chunk(self.blocks)
        bs = self.bias_ih.chunk(self.blocks) if self.use_bias else [None] * self.blocks
        return [F.linear(x, w, b) for w, b in zip(ws, bs)]

    def fused_mode(self, training):
        return None  # no torch op computes these cells; RNN.run then calls _loop

    def resolved_scan(self, device: torch.device) -> str:
        """The path ``scan="auto"`` stands for on ``device``."""
        if self.scan != "auto":
            return self.scan
        return "log" if device.type == "cuda" else "loop"

    def step(self, proj_t, states, rec_keep=None):
        """One step from the carried state: ``proj_t (batch, blocks*units)`` is ``x_t``'s projection."""
        d, k = self._logits(proj_t.chunk(self.blocks, dim=-1))
        h = torch.lerp(states[0], g(k), torch.sigmoid(d))
        return h, [h]

    def _loop(self, x, mask, states, training):
        # RNN.run calls this for layers without a fused op (after dropout and go_backwards).
        scan = self.resolved_scan(x.device)
        if scan == "cell" or x.shape[1] == 0:
            return super()._loop(x, mask, states, training)
        h0 = states[0]
        if scan == "log":
            d, k = self._logits(self._project(x))
            log_a, log_b = F.logsigmoid(-d), F.logsigmoid(d) + log_g(k)
            if mask is not None:  # a masked step keeps the state: a = 1, b = 0
                m = mask.unsqueeze(-1)
                log_a, log_b = log_a.masked_fill(~m, 0.0), log_b.double().masked_fill(~m, _LOG_ZERO)
            h = log_space_scan(log_a, log_b, h0).to(x.dtype)
        else:
            d, k = self._logits(self._project(x.transpose(0, 1)))  # time-major: the loop walks axis 0
            if mask is not None:
                d = d.masked_fill(~mask.t().unsqueeze(-1), float("-inf"))
            h = gated_recurrence(d, k, h0).transpose(0, 1)
        final = h[:, -1]
        if mask is not None:  # as Keras: zeros before the first real step, the carried state after
            h = h * (mask.long().cumsum(1) > 0).unsqueeze(-1)
        return h, [final]

    def get_config(self):
        cfg = super().get_config()
        for key in self._NOT_HERE:
            cfg.pop(key, None)
        cfg["scan"] = self.scan
        return cfg


class MinGRU(MinRNN):
    """Minimal GRU: update gate and candidate from the input only, computed for all steps at once.

    Per step: ``z = sigmoid(x W_z + b_z)``, ``h~ = g(x W_h + b_h)``,
    ``h_t = (1 - z) * h_{t-1} + z * h~``.

    Args:
        units: state width ``u``; the layer has ``2u(in + 1)`` parameters.
        use_bias: default True. kernel_initializer: default ``"glorot_uniform"``;
            bias_initializer: default ``"zeros"``; kernel_regularizer, bias_regularizer.
        dropout: input dropout while training (one mask per sequence), as LSTM.
        return_sequences: output every step ``(batch, time, u)`` instead of the last ``(batch, u)``.
        return_state: also return the final state (``[output, h]``).
        go_backwards: process the sequence in reverse (outputs in processing order).
        zero_output_for_mask: zeros at masked steps instead of the carried state.
        scan: ``"auto"`` (default), ``"log"``, ``"loop"`` or ``"cell"`` (see the module docs).

    Call arguments: ``inputs (batch, time, features)``, ``mask (batch, time)`` (a
    masked step leaves the state unchanged), ``initial_state=[h0]`` or ``h0 (batch, u)``,
    ``training``.

    Example:
        >>> layer = MinGRU(16, return_sequences=True)
        >>> layer(np.zeros((2, 50, 8), "float32")).shape
        torch.Size([2, 50, 16])
        >>> layer.count_params()
        288
    """

    blocks = 2
    cell_type = "mingru"

    def _logits(self, parts):
        z, k = parts
        return z, k


class MinLSTM(MinRNN):
    """Minimal LSTM: forget and input gates from the input only, normalised to sum to 1.

    Per step: ``f = sigmoid(x W_f + b_f)``, ``i = sigmoid(x W_i + b_i)``,
    ``h~ = g(x W_h + b_h)``, ``h_t = f/(f+i) * h_{t-1} + i/(f+i) * h~``; the state is
    ``h`` alone (no cell state).

    Args: as `MinGRU`; ``3u(in + 1)`` parameters.

    Example:
        >>> MinLSTM(16)(np.zeros((2, 50, 8), "float32")).shape
        torch.Size([2, 16])
    """

    blocks = 3
    cell_type = "minlstm"

    def _logits(self, parts):
        f, i, k = parts
        # a = f/(f+i) = sigmoid(log f - log i), with log sigmoid(x) = -softplus(-x).
        return F.softplus(-f) - F.softplus(-i), k


register(MinGRU)
register(MinLSTM)
