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
    ``"loop"``: projection, gates and recurrence in one autograd function
    (`fused_scan`). For float32 on an x86-64 CPU with a C compiler, C kernels
    (``rnnkit/native/minrnn_scan.c``, `_NativeScan`) compute the gates and walk
    every sequence in one pass forward and one backward, around one matrix
    product per cache-sized block of sequences. Elsewhere (float64, other
    devices, no compiler, ``RNNKIT_NATIVE=0``) `_FusedScan` walks time in
    cache-sized blocks of steps: per block one
    matrix product per gate block, the gates, then the recurrence step by step
    over ``(batch, units)`` (two numpy calls per step on the CPU, about 1 µs
    each against ~5 µs for a torch call; one ``lerp`` elsewhere); the backward
    is written out and, without ``return_sequences``, carries back the last
    state's gradient alone. On CPU this beats the log-space scan several times
    over: PyTorch's CPU ``logcumsumexp`` is a scalar loop of exp/log per
    element (benchmarks/cells.py measures both). A chunked two-level scan (all chunks at once, then chained)
    measured no faster here: the per-step calls it saves cost less than the
    extra passes over memory it adds.
    ``"cell"``: the cell's one-step function (`step`), applied step by step
    through the generic recurrent loop (the reference; generation runs one step
    at a time through any path).
    ``"auto"`` (default): ``"log"`` on CUDA, ``"loop"`` elsewhere.
All three compute the same function: tests hold each within 1e-5 of the
float64 result for up to 4,096 steps, gradients included, with masks and
``go_backwards``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# The kernels, re-exported: `rnnkit.layers.minrnn` has always been where they are imported from.
from ._minrnn_scan import (  # noqa: F401
    _LOG_ZERO, _FusedScan, _NativeScan, _native, _native_fits, fused_scan, g, log_g, log_space_scan,
)
from .base import format_shape
from .recurrent import BaseRNN
from .registry import register

SCANS = ("auto", "log", "loop", "cell")

class MinRNN(BaseRNN):
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
        if "stateful" in kwargs:
            raise TypeError(f"{cls}() does not take stateful= (it keeps no state between calls: pass "
                            "initial_state=, or use LSTM/GRU with stateful=True)")
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
        return None  # no torch op computes these cells; BaseRNN.run then calls _loop

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

    def reads_table(self, ids, table, training=None) -> bool:
        """Whether `forward_on_table` can stand for ``self(table[ids])`` in this call:
        the C path (float32 on the CPU, ``scan`` resolving to ``"loop"``), no input
        dropout, and a table of at most as many rows as there are ids (otherwise projecting the
        whole table costs more than projecting the embedded vectors: large vocabularies, short
        calls such as a generation step)."""
        training = self.training if training is None else training
        return (ids.dim() == 2 and 0 < table.shape[0] <= ids.numel() and not (training and self.dropout > 0)
                and self.resolved_scan(table.device) == "loop"
                and _native_fits(table, self.weight_ih, self.bias_ih, table, None))

    def forward_on_table(self, ids, table, mask=None):
        """``self(table[ids], mask)`` for ``ids (batch, time)`` into an embedding ``table (vocab,
        features)``, without forming the ``(batch, time, features)`` inputs: each step's gate
        logits are a row of ``table W^T`` (see `_NativeScan`). Same outputs and gradients (to
        float rounding); only where `reads_table` says so."""
        states = [table.new_zeros(ids.shape[0], self.units)]
        seq, finals = self.run_on_table(ids, table, mask, states, last_only=not self.return_sequences and mask is None)
        return self._outputs(seq, finals, states)

    def run_on_table(self, ids, table, mask, states, last_only: bool = False):
        """`run` over ``table[ids]`` (see `forward_on_table`; Bidirectional calls it per direction)."""
        if self.go_backwards:
            ids = ids.flip(1)
            mask = None if mask is None else mask.flip(1)
        seq, finals = self._finish(*self._table_scan(table, ids, mask, states[0], last_only), mask, last_only)
        if self.zero_output_for_mask and mask is not None:
            seq = seq * mask.unsqueeze(-1)
        return seq, finals

    def _loop(self, x, mask, states, training, last_only=False):
        # BaseRNN.run calls this for layers without a fused op (after dropout and go_backwards).
        # Without return_sequences (and masks) only the last state leaves the layer: the scan
        # then hands back that state alone, so the backward needs no gradient over every step.
        scan = self.resolved_scan(x.device)
        if scan == "cell" or 0 in x.shape[:2]:  # no steps or no sequences: the generic loop's empty result
            return super()._loop(x, mask, states, training)
        h0 = states[0]
        if scan == "log":
            d, k = self._logits(self._project(x))
            log_a, log_b = F.logsigmoid(-d), F.logsigmoid(d) + log_g(k)
            if mask is not None:  # a masked step keeps the state: a = 1, b = 0
                m = mask.unsqueeze(-1)
                log_a, log_b = log_a.masked_fill(~m, 0.0), log_b.double().masked_fill(~m, _LOG_ZERO)
            h = log_space_scan(log_a, log_b, h0).to(x.dtype)
            final = h[:, -1]
        else:
            keep = None if mask is None else mask.unsqueeze(-1).to(x.dtype)
            h, final = fused_scan(x, self.weight_ih, self.bias_ih, h0, keep, sequence=not last_only)
        return self._finish(h, final, mask, last_only)

    def _table_scan(self, table, ids, mask, h0, last_only):
        keep = None if mask is None else mask.unsqueeze(-1).to(table.dtype)
        return _NativeScan.apply(table, self.weight_ih, self.bias_ih, h0, keep, not last_only, ids)

    def _finish(self, h, final, mask, last_only):
        if last_only:  # BaseRNN.forward reads the last step of the outputs
            return final.unsqueeze(1), [final]
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
