"""``layer(embedding(ids))`` in one step, for layers that can read an embedding table directly.

A MinGRU or MinLSTM (alone or inside `Bidirectional`) right after an `Embedding`
only ever multiplies the embedded vectors by its input weights. The product of
the whole table with those weights (``(vocab, gates*units)``, computed once per
call) holds every step's gate logits as a row: looking rows up replaces the
``(batch, time, features)`` embedded inputs and the largest matrix products of
the step, forward and backward. The fusion leaves the numbers as they were (up
to the order of float additions) and is skipped wherever it could change what a
user sees or cost more: subclasses and patched ``forward`` methods, hooks on
either layer, autocast, input dropout, ids other than int32/int64, anything off
the C path, and tables with more rows than the call has ids.

Every model reaches the fusion here, through `embedded_call` (`Sequential`, functional
models: an Embedding layer feeding a recurrent layer) or `embedded_run` (`CharLM`: a torch
``nn.Embedding`` and a carried state); both apply the same guards (`_fusable`).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules import module as _module

from .core import Embedding
from .minrnn import MinGRU, MinLSTM
from .recurrent import Bidirectional


def _hooked(*layers) -> bool:
    # Hooks expect the embedded vectors to exist and to flow through each module's own call.
    if any(getattr(_module, name, None) for name in (
            "_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
            "_global_backward_pre_hooks")):
        return True
    return any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks
               for layer in layers for m in layer.modules())


def _as_built(module) -> bool:
    # Exactly rnnkit's class, its call not replaced on the instance: a subclass may change what
    # the layer computes, which reading the table would silently skip.
    if "forward" in vars(module):
        return False
    if type(module) in (Embedding, MinGRU, MinLSTM):
        return True
    if type(module) is nn.Embedding:  # a plain lookup: no renormalisation, no row without gradient
        return module.max_norm is None and module.padding_idx is None and not module.sparse
    return type(module) is Bidirectional and all(_as_built(m) and type(m) is not Embedding
                                                 for m in (module.forward_layer, module.backward_layer))


def ids_fit(ids: torch.Tensor) -> bool:
    """Whether ``ids`` can index a table on the fused path: int32/int64 on the CPU, no autocast
    (which would turn the projected table into bfloat16)."""
    return ids.device.type == "cpu" and ids.dtype in (torch.int32, torch.int64) and not torch.is_autocast_enabled("cpu")


def _fusable(embedding, layer, ids: torch.Tensor, table: torch.Tensor, training) -> bool:
    """The guards: both modules as built, no hooks, ids and table on the C path (`ids_fit`,
    ``layer.reads_table``: no input dropout due, the table no larger than the call's ids)."""
    return (_as_built(embedding) and _as_built(layer) and not _hooked(embedding, layer) and ids_fit(ids)
            and layer.reads_table(ids, table, training))


def embedded_call(embedding, layer, ids: torch.Tensor, mask: torch.Tensor | None, training):
    """``layer(embedding(ids), mask=mask)`` for an rnnkit `Embedding` and a MinGRU, MinLSTM or
    `Bidirectional` of one, or None where ``layer`` cannot read ``embedding``'s table.

    ``mask`` is the embedding's output mask (``ids != 0`` with ``mask_zero``), or None.
    """
    if type(embedding) is not Embedding or not hasattr(layer, "reads_table"):
        return None
    ids = embedding.token_ids(ids)
    table = embedding.embeddings
    if not _fusable(embedding, layer, ids, table, training):
        return None
    try:
        return layer.forward_on_table(ids, table, mask)
    except IndexError:  # an id outside the table: the embedding's own one-line error
        embedding._check_ids(ids)
        raise


def embedded_run(embedding: nn.Embedding, layer, ids: torch.Tensor, states: list, training):
    """``layer.run(embedding(ids), None, states, training)`` — outputs ``(batch, time, units)``
    and final states from the carried ``states`` — read from a torch ``nn.Embedding``'s table, or
    None where the guards say no (the caller then embeds and runs the layer itself)."""
    if not hasattr(layer, "run_on_table") or not hasattr(layer, "reads_table"):
        return None
    table = embedding.weight
    if not _fusable(embedding, layer, ids, table, training):
        return None
    return layer.run_on_table(ids, table, None, states)
