"""Dispatch to PyTorch's fused recurrent ops with Keras's masking semantics.

``torch.lstm`` / ``torch.gru`` / ``torch.rnn_tanh`` / ``torch.rnn_relu`` run a whole
sequence (both directions at once when bidirectional) in one native call:
oneDNN or ATen on CPU, cuDNN on GPU. They know only *lengths* (right padding),
while a Keras mask may switch off any steps (pre-padding, holes). A masked step
is a no-op for the state, so a masked sequence is equivalent to the sequence of
its unmasked steps: we compact those to the front, run the packed op, and
gather each original step's output from the last unmasked step at or before it
(after it, for the backward direction). Steps before any unmasked input output
zeros, as in Keras.

One exception: GRU training on CPU (gradients recorded) runs ``_gru_cpu``'s
hand-written backpropagation instead, which is exact and faster there than
``torch.gru`` (see that module for why); CUDA and inference keep ``torch.gru``.
"""
from __future__ import annotations

import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from . import _gru_cpu

_OPS = {"gru": torch.gru, "rnn_tanh": torch.rnn_tanh, "rnn_relu": torch.rnn_relu}


def _call_op(mode, x, batch_sizes, hx, weights, has_biases, bidirectional, train):
    """Run the native op. ``hx`` is ``(h0,)`` or ``(h0, c0)``, each ``(directions, batch, units)``.

    Returns ``(outputs, *final_states)``."""
    if mode == "lstm":
        if batch_sizes is None:
            return torch.lstm(x, hx, weights, has_biases, 1, 0.0, train, bidirectional, True)
        return torch.lstm(x, batch_sizes, hx, weights, has_biases, 1, 0.0, train, bidirectional)
    op = _OPS[mode]
    if batch_sizes is None:
        return op(x, hx[0], weights, has_biases, 1, 0.0, train, bidirectional, True)
    return op(x, batch_sizes, hx[0], weights, has_biases, 1, 0.0, train, bidirectional)


def fused_run(
    mode: str,
    x: torch.Tensor,
    mask: torch.Tensor | None,
    hx: tuple[torch.Tensor, ...],
    weights: list[torch.Tensor],
    has_biases: bool,
    bidirectional: bool,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run a recurrent layer over ``x`` with the fused op.

    Args:
        mode: ``"lstm"``, ``"gru"``, ``"rnn_tanh"`` or ``"rnn_relu"``.
        x: ``(batch, time, features)``.
        mask: ``(batch, time)`` bool, True = real step; or None.
        hx: initial states, each ``(directions, batch, units)``.
        weights: PyTorch's flat weight list (``w_ih, w_hh[, b_ih, b_hh]`` per direction).

    Returns:
        ``(outputs, final_states)``: outputs ``(batch, time, directions * units)`` in
        original time order, where a masked step repeats the previous step's output
        (the next step's, for the backward half); final states as ``hx``.
    """
    train = torch.is_grad_enabled()
    # An ONNX trace keeps one branch of each Python decision: it must not depend on the example's mask.
    exporting = torch.onnx.is_in_onnx_export()
    if mask is not None and not exporting and bool(mask.all()):
        mask = None
    if mode == "gru" and _gru_cpu.eligible(x, hx, weights):
        out, h_n = _gru_cpu.gru_train(x, None if mask is None else mask.bool(), hx[0], weights, has_biases, bidirectional)
        return out, [h_n]
    if mask is None:
        out, *states = _call_op(mode, x, None, hx, weights, has_biases, bidirectional, train)
        return out, states

    batch, time, feat = x.shape
    mask = mask.bool()
    lengths = mask.sum(1)
    # A stable sort moves each row's unmasked steps to the front, keeping their order. ONNX has no
    # stable sort; there the keys are made distinct (ties broken by time), so any sort keeps the order.
    if exporting:
        order = torch.argsort((~mask).long() * time + torch.arange(time, device=x.device), dim=1)
    else:
        order = torch.argsort((~mask).to(torch.uint8), dim=1, stable=True)
    compact = torch.gather(x, 1, order.unsqueeze(-1).expand(-1, -1, feat))
    safe_lengths = lengths.clamp(min=1)  # packing needs >= 1; empty rows are fixed below
    packed = pack_padded_sequence(compact, safe_lengths.cpu(), batch_first=True, enforce_sorted=False)
    hx_sorted = tuple(h.index_select(1, packed.sorted_indices) for h in hx)
    out_data, *states = _call_op(mode, packed.data, packed.batch_sizes, hx_sorted, weights, has_biases, bidirectional, train)
    out_c, _ = pad_packed_sequence(
        PackedSequence(out_data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices),
        batch_first=True,
        total_length=time,
    )
    states = [s.index_select(1, packed.unsorted_indices) for s in states]
    empty = lengths == 0
    if exporting or bool(empty.any()):
        states = [torch.where(empty[None, :, None], h0, s) for s, h0 in zip(states, hx)]

    units = out_c.shape[-1] // (2 if bidirectional else 1)
    seen = mask.long().cumsum(1)  # unmasked steps up to and including t
    idx = (seen - 1).clamp(min=0).unsqueeze(-1).expand(-1, -1, units)
    fwd = out_c[..., :units].gather(1, idx) * (seen > 0).unsqueeze(-1)
    if not bidirectional:
        return fwd, states
    before = seen - mask.long()  # unmasked steps strictly before t = compact index of the next one
    idx_b = torch.minimum(before, (safe_lengths - 1).unsqueeze(1)).unsqueeze(-1).expand(-1, -1, units)
    bwd = out_c[..., units:].gather(1, idx_b) * (before < lengths.unsqueeze(1)).unsqueeze(-1)
    return torch.cat([fwd, bwd], dim=-1), states
