"""ContextAttention, rnnkit's own attention: a query looks at a sequence of values and takes
their weighted mean. Its seq2seq models (``rnnkit/seq2seq``) use it. Keras's ``Attention``,
``AdditiveAttention`` and ``MultiHeadAttention`` are in ``attention.py``; this layer was called
``Attention`` before them, and configs saved under that name still load as this class.

Three ways to score a query ``q`` against a key ``k`` (one per value step):

============  ==========================================  =================================
score         energy ``e(q, k)``                          weights
============  ==========================================  =================================
additive      ``v . act(W [k; q] + b)`` (Bahdanau; the    ``kernel (key_dim + query_dim,
              Coursera course's Dense(tanh) -> Dense(1))  units)``, ``bias (units,)``,
                                                          ``energy_kernel (units, 1)``,
                                                          ``energy_bias (1,)``
dot           ``q . k`` (Luong)                           none; ``query_dim == key_dim``
general       ``q W k`` (Luong)                           ``kernel (query_dim, key_dim)``
============  ==========================================  =================================

The weights are a softmax of the energies over the value steps; masked steps
get exactly zero weight. The additive kernel acts on the concatenation
``[key; query]`` (the course's ``Concatenate([a, s_prev])``), but is applied as
``k W_k + q W_q`` so the key half is computed once per sequence
(``project_keys``) instead of once per decoder step.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import activations, initializers
from .base import Layer, as_tensor, format_shape, shape_of
from .registry import register

SCORES = ("additive", "dot", "general")


@register
class ContextAttention(Layer):
    """Attention over a sequence: ``context = sum_t softmax_t(e(query, key_t)) * value_t``.

    Args:
        score: ``"additive"`` (Bahdanau, default), ``"dot"`` or ``"general"`` (Luong).
        units: width of the additive scorer's hidden layer (the course uses 10).
        activation: the additive scorer's hidden activation (default ``"tanh"``).
        energy_activation: applied to the additive energies before the softmax;
            default None (linear). The course's model uses ``"relu"``.
        use_bias: biases in the additive scorer (default True, as the course's Dense layers).
        kernel_initializer: default ``"glorot_uniform"``.

    Call arguments:
        inputs: ``[query, value]`` or ``[query, value, key]`` (key defaults to value).
            ``query``: ``(batch, query_dim)`` for one step or ``(batch, Tq, query_dim)``;
            ``value``: ``(batch, Tv, value_dim)``; ``key``: ``(batch, Tv, key_dim)``.
        mask: the value mask ``(batch, Tv)`` (True = real step), or Keras's list
            ``[query_mask, value_mask]``; a query mask zeroes the outputs of masked queries.
        return_attention_scores: also return the weights.

    Output: ``(batch, value_dim)`` for a 2-D query, else ``(batch, Tq, value_dim)``;
    with ``return_attention_scores``, ``(output, weights)`` where weights are
    ``(batch, Tv)`` or ``(batch, Tq, Tv)`` and sum to 1 over the unmasked steps
    (a row whose steps are all masked gets all zeros).

    Example:
        >>> att = ContextAttention(units=10, energy_activation="relu")
        >>> context, w = att([np.zeros((2, 64), "float32"), np.zeros((2, 30, 64), "float32")],
        ...                  return_attention_scores=True)
        >>> tuple(context.shape), tuple(w.shape), att.count_params()
        ((2, 64), (2, 30), 1301)
    """

    def __init__(
        self,
        score: str = "additive",
        units: int = 10,
        activation="tanh",
        energy_activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if score not in SCORES:
            raise ValueError(f"ContextAttention: score must be one of {', '.join(SCORES)}, got {score!r}")
        if score == "additive" and int(units) <= 0:
            raise ValueError(f"ContextAttention: units must be a positive integer, got {units!r}")
        self.score = score
        self.units = int(units)
        self.activation_name = activations.serialize(activation)
        self.activation = activations.get(activation)
        self.energy_activation_name = activations.serialize(energy_activation)
        self.energy_activation = activations.get(energy_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)

    # ----------------------------------------------------------------- build
    def build(self, input_shape):
        if not isinstance(input_shape, list) or len(input_shape) not in (2, 3):
            raise ValueError(
                f"layer {self.name!r} (ContextAttention) takes [query, value] or [query, value, key], "
                f"got input shape {format_shape(input_shape)}"
            )
        query_dim = input_shape[0][-1]
        key_dim = input_shape[-1][-1] if len(input_shape) == 3 else input_shape[1][-1]
        if self.score == "additive":
            self.kernel = nn.Parameter(self.kernel_initializer((key_dim + query_dim, self.units)))
            self.energy_kernel = nn.Parameter(self.kernel_initializer((self.units, 1)))
            self.bias = nn.Parameter(torch.zeros(self.units)) if self.use_bias else None
            self.energy_bias = nn.Parameter(torch.zeros(1)) if self.use_bias else None
        elif self.score == "general":
            self.kernel = nn.Parameter(self.kernel_initializer((query_dim, key_dim)))
        elif query_dim != key_dim:
            raise ValueError(
                f"layer {self.name!r} (ContextAttention, score='dot') needs query and key of the same width, "
                f"got {query_dim} and {key_dim}; use score='general' or 'additive'"
            )
        self.key_dim = key_dim

    def compute_output_shape(self, input_shape):
        query, value = input_shape[0], input_shape[1]
        return tuple(query[:-1]) + (value[-1],)

    # ------------------------------------------------------------------ call
    def __call__(self, inputs, mask=None, **kwargs):
        # The base class handles one tensor and one mask; here both come as lists.
        if not isinstance(inputs, (list, tuple)) or len(inputs) not in (2, 3):
            raise ValueError(
                f"layer {self.name!r} (ContextAttention) takes a list [query, value] or [query, value, key], "
                f"got {type(inputs).__name__}"
            )
        device = self._param_device()
        inputs = [as_tensor(t, device) for t in inputs]
        if not self.built:
            self.build_for(shape_of(inputs))
        query_mask, value_mask = (mask if isinstance(mask, (list, tuple)) else (None, mask))
        masks = [None if m is None else as_tensor(m, inputs[0].device).bool() for m in (query_mask, value_mask)]
        return nn.Module.__call__(self, inputs, mask=masks, **kwargs)

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """The query-independent part of the score, computed once per sequence.

        ``keys (batch, Tv, key_dim)`` -> additive: ``(batch, Tv, units)`` (``k W_k + b``);
        general: ``(batch, Tv, query_dim)`` (``k W^T``); dot: the keys themselves."""
        if self.score == "additive":
            return F.linear(keys, self.kernel[: self.key_dim].t(), self.bias)
        if self.score == "general":
            return F.linear(keys, self.kernel)
        return keys

    def energies(self, query: torch.Tensor, projected_keys: torch.Tensor) -> torch.Tensor:
        """Unnormalised scores ``(batch, Tq, Tv)`` of ``query (batch, Tq, query_dim)``."""
        if self.score == "additive":
            q = F.linear(query, self.kernel[self.key_dim :].t())  # (batch, Tq, units)
            hidden = self.activation(projected_keys.unsqueeze(1) + q.unsqueeze(2))  # (batch, Tq, Tv, units)
            e = F.linear(hidden, self.energy_kernel.t(), self.energy_bias).squeeze(-1)
            return self.energy_activation(e)
        return torch.bmm(query, projected_keys.transpose(1, 2))

    @staticmethod
    def masked_softmax(energies: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Softmax over the last axis with masked steps at exactly 0.

        ``mask (batch, Tv)`` broadcasts over the query axis. The lowest float
        (not -inf) keeps a fully masked row finite; multiplying by the mask then
        zeroes it, and changes nothing in rows with at least one real step."""
        if mask is None:
            return torch.softmax(energies, dim=-1)
        m = mask.unsqueeze(1) if energies.dim() == 3 else mask
        filled = energies.masked_fill(~m, torch.finfo(energies.dtype).min)
        return torch.softmax(filled, dim=-1) * m

    def attend(self, query, value, projected_keys, value_mask=None):
        """One attention read with keys already projected (a decoder calls this every step).

        ``query (batch, query_dim)`` or ``(batch, Tq, query_dim)``; returns
        ``(context, weights)`` shaped as the layer's outputs."""
        single = query.dim() == 2
        q = query.unsqueeze(1) if single else query
        weights = self.masked_softmax(self.energies(q, projected_keys), value_mask)
        context = torch.bmm(weights, value)
        if single:
            return context.squeeze(1), weights.squeeze(1)
        return context, weights

    def forward(self, inputs, mask=None, training=None, return_attention_scores=False):
        query, value = inputs[0], inputs[1]
        key = inputs[2] if len(inputs) == 3 else value
        if value.dim() != 3 or key.shape[:2] != value.shape[:2] or query.dim() not in (2, 3):
            raise ValueError(
                f"layer {self.name!r} (ContextAttention) expects query (batch, [Tq,] dim), value and key "
                f"(batch, Tv, dim) with the same Tv, got {[tuple(t.shape) for t in inputs]}"
            )
        query_mask, value_mask = mask if mask is not None else (None, None)
        context, weights = self.attend(query, value, self.project_keys(key), value_mask)
        if query_mask is not None:
            context = context * query_mask.unsqueeze(-1)
        return (context, weights) if return_attention_scores else context

    def compute_mask(self, inputs, mask):
        return mask[0] if isinstance(mask, (list, tuple)) else None

    def get_config(self):
        cfg = super().get_config()
        cfg.update(
            score=self.score,
            units=self.units,
            activation=activations.to_config(self, "activation"),
            energy_activation=activations.to_config(self, "energy_activation"),
            use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
        )
        return cfg
