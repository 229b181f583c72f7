"""A seq2seq run's whole translation as one graph: ``x (batch, time)`` input ids ->
``ids (batch, Ty)`` greedy output ids, ``logits (batch, Ty, V_out)``, ``attention (batch, Ty, time)``.

Batch and input time are dynamic (the encoder and attention read any length up to the
trained Tx; shorter inputs are right-padded with ``<pad>`` as `Vocab.encode` pads them). The
output length is fixed at Ty: the decoder loop is unrolled, Ty steps, as the model always
runs it. The greedy choice of each step (fed back in ``"feedback"`` mode) is in the graph;
beam search is not (it is a search over hypotheses, not a fixed computation).
"""
from __future__ import annotations

import os

import torch
from torch import nn

from ..seq2seq.model import Seq2Seq
from .onnx_file import write_onnx


class GreedyTranslation(nn.Module):
    """`Seq2Seq.generate` with ``beam_width=1``, returning the logits too."""

    def __init__(self, model: Seq2Seq):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        a, mask = self.model.encode(x)
        logits, weights, ids = self.model._decode(a, mask, lambda logit: logit.argmax(-1))
        return ids, logits, weights


def export_seq2seq(model: Seq2Seq, input_vocab: dict, output_vocab: dict, path: str | os.PathLike,
                   extra: dict | None = None, opset_version: int | None = None) -> None:
    """Write ``model``'s greedy translation (`GreedyTranslation`) to ``path``, the vocabularies
    (``Vocab.to_json()``) in the metadata."""
    c = model.config
    x = torch.full((2, c.tx), c.pad_id if c.pad_id is not None else 0, dtype=torch.long)
    x[:, : max(1, c.tx - 1)] = 1 if c.pad_id == 0 else 0  # a padded example: the mask path is traced
    metadata = {"kind": "seq2seq", "model": c.to_json(), "input_vocab": input_vocab, "output_vocab": output_vocab,
                "inputs": {"x": f"int64 (batch, time <= {c.tx}), right-padded with <pad>"},
                "outputs": {"ids": f"int64 (batch, {c.ty})", "logits": f"float32 (batch, {c.ty}, {c.output_vocab_size})",
                            "attention": f"float32 (batch, {c.ty}, time)"},
                **(extra or {})}
    dynamic = {"x": {0: "batch", 1: "time"}, "ids": {0: "batch"}, "logits": {0: "batch"},
               "attention": {0: "batch", 2: "time"}}
    write_onnx(GreedyTranslation(model), (x,), path, ["x"], ["ids", "logits", "attention"], dynamic, metadata,
               opset_version)
