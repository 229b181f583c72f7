"""A streaming LM's one-step graph: ``(token (batch,), state (batch, S, hidden)) -> (logits
(batch, vocab), state (batch, S, hidden))``, so any ONNX runtime can prime and generate.

The state packs every layer's carried tensors along axis 1, layer by layer (``h, c`` for an
LSTM layer, ``h`` for the others): ``S`` is ``layers`` for GRU/RNN/MinGRU/MinLSTM stacks
and ``2 * layers`` for LSTMs. Zeros are the start state, as in `CharLM.initial_state`. A
prime is fed one token at a time through the same graph (what `CharLM.prime` computes in
one fused call, up to float rounding).
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from ..lm.charlm import CharLM
from .onnx_file import ExportError, write_onnx


class LMStep(nn.Module):
    """`CharLM` one token per stream from an explicit packed state (see the module docstring).

    Each layer steps through its own cell (``layer.step`` on the input projection), so the graph
    computes `CharLM.step` with the layer's activations, residual norms and feed-forward blocks.
    """

    def __init__(self, model: CharLM):
        super().__init__()
        self.model = model
        self.counts = [len(s) for s in model.initial_state(1, torch.device("cpu"))]

    @property
    def state_size(self) -> int:
        """``S``: tensors in the packed state."""
        return sum(self.counts)

    def forward(self, token: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.embedding(token, self.model.embed.weight)
        new_state, at = [], 0

        def one_step(layer, inputs):
            proj = F.linear(inputs, layer.weight_ih, layer.bias_ih)
            out, finals = layer.step(proj, layer_state, None)
            return out, finals

        for i, n in enumerate(self.counts):
            layer_state = [state[:, at + j] for j in range(n)]
            at += n
            x, finals = self.model._layer_output(i, x, one_step, drop=False)
            new_state.extend(finals)
        return self.model._head(x), torch.stack(new_state, 1)


def export_lm_step(model: CharLM, vocab: dict, path: str | os.PathLike, extra: dict | None = None,
                   opset_version: int | None = None) -> None:
    """Write ``model``'s one-step graph (`LMStep`) to ``path``: inputs ``token`` (int64,
    ``(batch,)``) and ``state`` (float32, ``(batch, S, hidden)``), outputs ``logits`` and
    ``state_out``, batch dynamic. ``vocab`` (``{"level", "tokens"}``) and ``extra`` go into
    the metadata with the model config."""
    step = LMStep(model)
    hidden = model.config.hidden
    widths = {int(s.shape[-1]) for layer in model.initial_state(1, torch.device("cpu")) for s in layer}
    if widths != {hidden}:
        raise ExportError(f"the one-step graph packs states of width {hidden}; this model's are {sorted(widths)}")
    token = torch.zeros(2, dtype=torch.long)
    state = torch.zeros(2, step.state_size, hidden)
    metadata = {"kind": "lm-step", "vocab": vocab, "model": model.config.to_dict(), "state_shape": [step.state_size, hidden],
                "inputs": {"token": "int64 (batch,)", "state": f"float32 (batch, {step.state_size}, {hidden})"},
                "outputs": {"logits": f"float32 (batch, {model.config.vocab_size})",
                            "state_out": f"float32 (batch, {step.state_size}, {hidden})"},
                **(extra or {})}
    batch = {0: "batch"}
    write_onnx(step, (token, state), path, ["token", "state"], ["logits", "state_out"],
               {"token": batch, "state": batch, "logits": batch, "state_out": batch}, metadata, opset_version)
