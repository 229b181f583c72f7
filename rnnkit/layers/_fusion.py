"""``layer(embedding(ids))`` in one step, for layers that can read an embedding table directly.

A MinGRU or MinLSTM (alone or inside `Bidirectional`) right after an `Embedding`
only ever multiplies the embedded vectors by its input weights. The product of
the whole table with those weights (``(vocab, gates*units)``, computed once per
call) holds every step's gate logits as a row: looking rows up replaces the
``(batch, time, features)`` embedded inputs and the largest matrix products of
the step, forward and backward. The fusion leaves the numbers as they were (up
to the order of float additions) and is skipped wherever it could change what a
user sees: hooks on either layer, input dropout, anything off the C path.
"""
from __future__ import annotations

import torch
from torch.nn.modules import module as _module


def _hooked(*layers) -> bool:
    # Forward hooks expect the embedded vectors to exist; a fused call would skip them silently.
    if _module._global_forward_hooks or _module._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for layer in layers for m in layer.modules())


def embedded_call(embedding, layer, ids: torch.Tensor, mask: torch.Tensor | None, training):
    """``layer(embedding(ids), mask=mask)``, or None where ``layer`` cannot read ``embedding``'s table.

    ``mask`` is the embedding's output mask (``ids != 0`` with ``mask_zero``), or None.
    """
    read = getattr(layer, "reads_table", None)
    if read is None or ids.device.type != "cpu" or _hooked(embedding, layer):
        return None
    ids = embedding.token_ids(ids)
    table = embedding.embeddings
    if not read(ids, table, training):
        return None
    try:
        return layer.forward_on_table(ids, table, mask)
    except IndexError:  # an id outside the table: the embedding's own one-line error
        embedding._check_ids(ids)
        raise
