"""Keras's attention layers: ``Attention``, ``AdditiveAttention`` and ``MultiHeadAttention``.

They compute what Keras 3's layers compute (``keras/src/layers/attention/``), with Keras's
weights, masks and call arguments, checked against real Keras in
``tests/fixtures/keras/attention/``. rnnkit's own attention for its seq2seq models (additive,
dot or general scores with a hidden layer) is ``ContextAttention``
(``rnnkit/layers/context_attention.py``); a config that rnnkit saved under the old name
``"Attention"`` still loads as that class.

Masking follows Keras exactly, including its two quirks: ``Attention`` biases masked scores by
``-1e9`` (a query whose value steps are all masked averages every value), and
``MultiHeadAttention`` zeroes a fully masked row of weights only when it computes the scores
explicitly (``return_attention_scores``, ``dropout > 0`` or inputs of rank other than 3); otherwise
such a row averages every value, as Keras's fused ``dot_product_attention`` does.
"""
from __future__ import annotations

import math
import string

import torch
from torch import nn

from .. import initializers, regularizers
from ._dropout import dropout as _fast_dropout
from .base import Layer, as_tensor, format_shape, is_probing
from .registry import register

_MASKED = -1.0e9  # Keras's bias for masked scores (float32)

# The old rnnkit Attention's constructor keys; a config with one of them is a ContextAttention.
_CONTEXT_ATTENTION_KEYS = {"score", "units", "activation", "energy_activation", "kernel_initializer", "use_bias"}


class _ScoreDropout:
    """Dropout on attention weights while training. With ``seed``, the masks come from the
    layer's own generator seeded once, so a seeded layer repeats its masks run after run
    (they differ from Keras's, which come from another generator); without, from PyTorch's
    default generator. Shape probes draw nothing."""

    def _init_dropout(self, rate, seed):
        if not isinstance(rate, (int, float)) or not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"{type(self).__name__}: dropout must be a float in [0, 1), got {rate!r}")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ValueError(f"{type(self).__name__}: seed must be an integer or None, got {seed!r}")
        self._rate = float(rate)
        self._generators: dict = {}

    def _drop(self, weights: torch.Tensor, training) -> torch.Tensor:
        training = self.training if training is None else training
        if not training or self._rate == 0.0 or is_probing():
            return weights
        if self.seed is None:
            return _fast_dropout(weights, self._rate, True)
        gen = self._generators.get(weights.device)
        if gen is None:
            gen = self._generators[weights.device] = torch.Generator(device=weights.device)
            gen.manual_seed(self.seed)
        keep = torch.empty_like(weights).bernoulli_(1.0 - self._rate, generator=gen)
        return weights * keep / (1.0 - self._rate)


def _list_shapes(layer, input_shape):
    if not isinstance(input_shape, list) or len(input_shape) not in (2, 3):
        raise ValueError(
            f"layer {layer.name!r} ({type(layer).__name__}) takes a list [query, value] or "
            f"[query, value, key], got input shape {format_shape(input_shape)}"
        )
    return [tuple(s) for s in input_shape]


@register
class Attention(_ScoreDropout, Layer):
    """Dot-product (Luong) attention, as ``keras.layers.Attention``.

    ``scores = query . key^T`` (``"dot"``, times ``scale`` with ``use_scale``) or
    ``concat_score_weight * sum(tanh(scale * (query_i + key_j)))`` (``"concat"``); the
    weights are ``softmax(scores)`` over the value steps and the output is ``weights @ value``.

    Args:
        use_scale: learn a scalar ``scale`` (initially 1) multiplying the scores. Default False.
        score_mode: ``"dot"`` (default) or ``"concat"`` (adds the scalar ``concat_score_weight``).
        dropout: fraction of the attention weights dropped while training. Default 0.
        seed: integer seed of the dropout masks (rnnkit's generator, not Keras's); default None.

    Call arguments:
        inputs: ``[query, value]`` or ``[query, value, key]``: ``query (batch, Tq, dim)``,
            ``value (batch, Tv, value_dim)``, ``key (batch, Tv, dim)`` (default: value).
        mask: ``[query_mask (batch, Tq), value_mask (batch, Tv)]`` (either may be None; a third,
            key, mask is accepted and, as in Keras, not used). Masked value steps get
            (almost exactly) zero weight; outputs of masked queries are zero.
        return_attention_scores: return ``(output, weights)``; the weights are taken after
            dropout, as Keras does.
        training: apply dropout (default: the layer's mode, inference unless fitting).
        use_causal_mask: query step ``i`` sees value steps ``j <= i`` only.

    Output: ``(batch, Tq, value_dim)``; weights ``(batch, Tq, Tv)``. The output mask is the
    query mask. Weights (Keras order): ``scale ()`` with use_scale, ``concat_score_weight ()``
    with ``"concat"``.

    Example:
        >>> out = Attention()([np.ones((2, 4, 8), "float32"), np.ones((2, 6, 8), "float32")])
        >>> tuple(out.shape)
        (2, 4, 8)
    """

    def __init__(self, use_scale: bool = False, score_mode: str = "dot", dropout: float = 0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if score_mode not in ("dot", "concat"):
            raise ValueError(f"{type(self).__name__}: score_mode must be 'dot' or 'concat', got {score_mode!r}")
        self.use_scale = bool(use_scale)
        self.score_mode = score_mode
        self.seed = seed
        self._init_dropout(dropout, seed)
        self.dropout = float(dropout)

    @classmethod
    def from_config(cls, config: dict):
        # rnnkit saved its own attention layer (now ContextAttention) under this class name.
        if cls is Attention and _CONTEXT_ATTENTION_KEYS & set(config):
            from .context_attention import ContextAttention

            return ContextAttention.from_config(config)
        return super().from_config(config)

    def _check_widths(self, shapes):
        query_dim, key_dim = shapes[0][-1], shapes[-1][-1]
        if None not in (query_dim, key_dim) and query_dim != key_dim:
            raise ValueError(
                f"layer {self.name!r} ({type(self).__name__}) needs query and key of the same last "
                f"dimension, got {query_dim} and {key_dim}"
            )

    def build(self, input_shape):
        shapes = _list_shapes(self, input_shape)
        self._check_widths(shapes)
        self.scale = nn.Parameter(torch.ones(())) if self.use_scale else None
        self.concat_score_weight = nn.Parameter(torch.ones(())) if self.score_mode == "concat" else None

    def compute_output_shape(self, input_shape):
        shapes = _list_shapes(self, input_shape)
        return tuple(shapes[0][:-1]) + (shapes[1][-1],)

    def compute_mask(self, inputs, mask):
        if mask is None or not isinstance(mask, (list, tuple)) or mask[0] is None:
            return None
        return mask[0]

    def scores(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """Unnormalised scores ``(batch, Tq, Tv)``."""
        if self.score_mode == "dot":
            s = torch.matmul(query, key.transpose(-2, -1))
            return s * self.scale if self.scale is not None else s
        summed = query.unsqueeze(-2) + key.unsqueeze(-3)
        if self.scale is not None:
            summed = self.scale * summed
        return self.concat_score_weight * torch.tanh(summed).sum(-1)

    def forward(self, inputs, mask=None, training=None, return_attention_scores=False, use_causal_mask=False):
        if not isinstance(inputs, (list, tuple)) or len(inputs) not in (2, 3):
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) takes a list [query, value] "
                             f"or [query, value, key], got {type(inputs).__name__}")
        query, value = inputs[0], inputs[1]
        key = inputs[2] if len(inputs) == 3 else value
        if (query.dim() < 3 or value.dim() != query.dim() or key.dim() != query.dim()
                or key.shape[:-1] != value.shape[:-1]):
            raise ValueError(
                f"layer {self.name!r} ({type(self).__name__}) expects query (batch, Tq, dim), value "
                f"(batch, Tv, value_dim) and key (batch, Tv, dim), got {[tuple(t.shape) for t in inputs]}"
            )
        if mask is not None and (not isinstance(mask, (list, tuple)) or len(mask) not in (2, 3)):
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) takes mask=[query_mask, "
                             f"value_mask], got {type(mask).__name__}")
        query_mask, value_mask = (mask[0], mask[1]) if mask is not None else (None, None)
        scores = self.scores(query, key)
        scores_mask = None if value_mask is None else as_tensor(value_mask, scores.device).bool().unsqueeze(-2)
        if use_causal_mask:
            tq, tv = scores.shape[-2:]
            causal = torch.ones(tq, tv, dtype=torch.bool, device=scores.device).tril()
            scores_mask = causal if scores_mask is None else scores_mask & causal
        if scores_mask is not None:
            scores = torch.where(scores_mask, scores, scores + _MASKED)
        weights = self._drop(torch.softmax(scores, dim=-1), training)
        output = torch.matmul(weights, value)
        if query_mask is not None:
            output = torch.where(as_tensor(query_mask, output.device).bool().unsqueeze(-1), output, 0.0)
        return (output, weights) if return_attention_scores else output

    def get_config(self):
        cfg = super().get_config()
        cfg.update(use_scale=self.use_scale, score_mode=self.score_mode, dropout=self.dropout, seed=self.seed)
        return cfg


@register
class AdditiveAttention(Attention):
    """Additive (Bahdanau) attention, as ``keras.layers.AdditiveAttention``.

    ``scores[i, j] = sum(scale * tanh(query_i + key_j))``; weights, output, masks and call
    arguments as `Attention`.

    Args:
        use_scale: learn ``scale (dim,)`` (glorot-uniform); without it the scale is 1.
            Default True.
        dropout: fraction of the attention weights dropped while training. Default 0.
        seed: integer seed of the dropout masks (rnnkit's generator); default None.

    Input ``query (batch, Tq, dim)``, ``value (batch, Tv, value_dim)``, ``key (batch, Tv, dim)``;
    output ``(batch, Tq, value_dim)``. Weights: ``scale (dim,)`` with use_scale.
    """

    def __init__(self, use_scale: bool = True, dropout: float = 0.0, seed=None, **kwargs):
        if "score_mode" in kwargs:  # Keras passes it on and never reads it
            raise TypeError("AdditiveAttention() got unexpected argument(s): score_mode (its scores are additive)")
        super().__init__(use_scale=use_scale, dropout=dropout, seed=seed, **kwargs)

    def build(self, input_shape):
        shapes = _list_shapes(self, input_shape)
        self._check_widths(shapes)
        dim = shapes[0][-1]
        self.scale = nn.Parameter(initializers.glorot_uniform((dim,))) if self.use_scale else None

    def scores(self, query, key):
        t = torch.tanh(query.unsqueeze(-2) + key.unsqueeze(-3))
        return (self.scale * t if self.scale is not None else t).sum(-1)

    def get_config(self):
        cfg = super().get_config()
        del cfg["score_mode"]
        return cfg


# --------------------------------------------------------------------------- multi-head
_VARIANCE_SCALING = (initializers.glorot_uniform, initializers.glorot_normal, initializers.he_uniform)


def _init_kernel(init, shape, n_in):
    """A kernel whose first ``n_in`` axes are its inputs. Keras's EinsumDense gives variance-
    scaling initializers fan_in = prod(input axes), fan_out = prod(output axes)."""
    if init in _VARIANCE_SCALING:
        return init((math.prod(shape[:n_in]), math.prod(shape[n_in:]))).reshape(shape)
    return init(shape)


def _attention_equations(rank, attn_axes):
    """Keras's einsum equations (``_build_attention_equation``) for projected tensors of ``rank``
    ``(batch, <other axes>, <attention axes>, heads, channels)``: the query-key product, the
    weights-value combination, and the rank of the scores."""
    letters = string.ascii_lowercase
    target = letters[:rank]
    batch_dims = [i for i in range(rank) if i not in attn_axes and i != rank - 1]
    source, offset = "", rank
    for i in range(rank):
        if i in batch_dims or i == rank - 1:
            source += target[i]
        else:
            source += letters[offset]
            offset += 1
    product = "".join([target[i] for i in batch_dims] + [target[i] for i in attn_axes]
                      + [source[i] for i in attn_axes])
    return f"{source},{target}->{product}", f"{product},{source}->{target}", len(product)


@register
class MultiHeadAttention(_ScoreDropout, Layer):
    """Multi-head attention (Vaswani et al. 2017), as ``keras.layers.MultiHeadAttention``.

    ``query``, ``key`` and ``value`` are projected to ``num_heads`` heads (``key_dim``,
    ``key_dim`` and ``value_dim`` wide); each head computes
    ``softmax(q k^T / sqrt(key_dim)) v`` over the attention axes, and the heads are projected
    together to the output.

    Args:
        num_heads: number of heads; key_dim: width of each head's query and key.
        value_dim: width of each head's value (default key_dim).
        dropout: fraction of the attention weights dropped while training. Default 0.
        use_bias: biases in the four projections. Default True.
        output_shape: output feature shape (an int or a tuple, e.g. ``(2, 3)``); default the
            query's last dimension.
        attention_axes: axes of the query attended over (default: every axis but the batch
            and feature axes, i.e. time for ``(batch, T, dim)``); ints, negative allowed.
        sliding_window: query ``i`` attends only keys ``j`` with ``|i - j| < sliding_window``.
        use_gate: multiply the heads' outputs by ``sigmoid(query projection)`` before the output
            projection (gated attention).
        kernel_initializer: default ``"glorot_uniform"`` (Keras's fans: input axes vs output
            axes); bias_initializer: default ``"zeros"``.
        kernel_regularizer, bias_regularizer: penalties on every projection's kernel / bias.
        seed: integer seed of the dropout masks (rnnkit's generator, not Keras's).
        flash_attention: only None or False (rnnkit computes the weights explicitly).
        activity_regularizer, kernel_constraint, bias_constraint: only None.

    Call arguments (``mha(query, value, key=None, ...)``):
        query ``(batch, T, dim)``, value ``(batch, S, value_in)``, key ``(batch, S, key_in)``
        (default value). value_mask / key_mask ``(batch, S)``; attention_mask ``(batch, T, S)``
        (True = may attend); use_causal_mask; return_attention_scores (returns ``(output,
        scores (batch, heads, T, S))``, the scores before dropout); training. The query's mask
        is the one its tensor carries (``mask=[query_mask, value_mask(, key_mask)]`` from a
        model, e.g. after ``Embedding(mask_zero=True)``), as in Keras, where an explicit
        ``query_mask=`` is not used; rnnkit refuses that argument instead of ignoring it.

    Output: ``(batch, T, dim)`` (or ``(batch, T, *output_shape)``); its mask is the query's.

    Weights (Keras order and shapes): ``query/kernel (dim, heads, key_dim)``, ``query/bias
    (heads, key_dim)``, the same for ``key``, ``gate`` (with use_gate: ``(dim, heads,
    value_dim)``), ``value (value_in, heads, value_dim)``, then ``attention_output/kernel
    (heads, value_dim, *output_shape)`` and its bias ``output_shape``.
    """

    supports_masking = True

    def __init__(
        self,
        num_heads: int,
        key_dim: int,
        value_dim: int | None = None,
        dropout: float = 0.0,
        use_bias: bool = True,
        output_shape=None,
        attention_axes=None,
        sliding_window: int | None = None,
        flash_attention=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        use_gate: bool = False,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for arg, value, optional in (("num_heads", num_heads, False), ("key_dim", key_dim, False),
                                     ("value_dim", value_dim, True), ("sliding_window", sliding_window, True)):
            if optional and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"MultiHeadAttention: {arg} must be a positive integer, got {value!r}")
        for arg, value in (("activity_regularizer", activity_regularizer), ("kernel_constraint", kernel_constraint),
                           ("bias_constraint", bias_constraint)):
            if value is not None:
                raise ValueError(f"MultiHeadAttention: {arg}= is not supported (only None)")
        if flash_attention:
            raise ValueError("MultiHeadAttention: flash_attention=True is not supported; rnnkit computes "
                             "the attention weights explicitly (leave it None or False)")
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim or key_dim
        self.use_bias = bool(use_bias)
        self.use_gate = bool(use_gate)
        self.sliding_window = sliding_window
        self.flash_attention = flash_attention
        if output_shape:
            if isinstance(output_shape, int):
                output_shape = (output_shape,)
            try:
                output_shape = tuple(int(d) for d in output_shape)
            except (TypeError, ValueError):
                raise ValueError(f"MultiHeadAttention: output_shape must be an int or a tuple of ints, "
                                 f"got {output_shape!r}") from None
        self.output_shape_ = output_shape or None
        if isinstance(attention_axes, int):
            attention_axes = (attention_axes,)
        elif attention_axes is not None and not isinstance(attention_axes, (list, tuple)):
            raise ValueError(f"MultiHeadAttention: attention_axes must be an int, list or tuple, got {attention_axes!r}")
        self.attention_axes = tuple(attention_axes) if attention_axes else None
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.seed = seed
        self._init_dropout(dropout, seed)
        self.dropout = float(dropout)
        self._projections = ("query", "key") + (("gate",) if self.use_gate else ()) + ("value", "attention_output")
        self._regularizers = [(f"{p}_{w}", self.kernel_regularizer if w == "kernel" else self.bias_regularizer)
                              for p in self._projections for w in ("kernel", "bias")]

    # ----------------------------------------------------------------- build
    def build(self, input_shape):
        shapes = _list_shapes(self, input_shape)
        query, value = shapes[0], shapes[1]
        key = shapes[2] if len(shapes) == 3 else value
        if tuple(value[1:-1]) != tuple(key[1:-1]):
            raise ValueError(f"layer {self.name!r} (MultiHeadAttention) needs value and key equal in every "
                             f"axis but the last, got value {value} and key {key}")
        if None in (query[-1], value[-1], key[-1]) or len(query) < 3:
            raise ValueError(f"layer {self.name!r} (MultiHeadAttention) needs query (batch, T, dim) with known "
                             f"feature axes, got {format_shape(shapes)}")
        rank = len(query) + 1  # of the projected tensors: (batch, ..., heads, channels)
        axes = self.attention_axes if self.attention_axes is not None else tuple(range(1, rank - 2))
        axes = tuple(a if a >= 0 else (rank - 1) + a for a in axes)
        if any(not 1 <= a < rank - 2 for a in axes):
            raise ValueError(f"layer {self.name!r} (MultiHeadAttention) attention_axes={self.attention_axes!r} "
                             f"must name axes of the query between the batch and feature axes, "
                             f"got query shape {query}")
        self._axes = self.attention_axes = axes  # get_config then gives them normalized, as Keras's
        self._dot_eq, self._combine_eq, scores_rank = _attention_equations(rank, axes)
        self._norm_axes = tuple(range(scores_rank - len(axes), scores_rank))
        heads = self.num_heads
        out = self.output_shape_ or (query[-1],)
        sizes = {"query": (query[-1], self.key_dim), "key": (key[-1], self.key_dim),
                 "gate": (query[-1], self.value_dim), "value": (value[-1], self.value_dim)}
        for p in self._projections:
            if p == "attention_output":
                kernel, bias, n_in = (heads, self.value_dim) + out, out, 2
            else:
                kernel, bias, n_in = (sizes[p][0], heads, sizes[p][1]), (heads, sizes[p][1]), 1
            setattr(self, f"{p}_kernel", nn.Parameter(_init_kernel(self.kernel_initializer, kernel, n_in)))
            setattr(self, f"{p}_bias", nn.Parameter(self.bias_initializer(bias)) if self.use_bias else None)

    def compute_output_shape(self, input_shape, value_shape=None, key_shape=None):
        """From rnnkit's list ``[query, value(, key)]`` or Keras's ``(query, value, key=None)``."""
        if value_shape is not None:
            input_shape = [input_shape, value_shape] + ([key_shape] if key_shape is not None else [])
        shapes = _list_shapes(self, input_shape)
        if shapes[1][1:-1] != shapes[-1][1:-1]:
            raise ValueError(f"layer {self.name!r} (MultiHeadAttention) needs value and key equal in every "
                             f"axis but the last, got value {shapes[1]} and key {shapes[-1]}")
        return shapes[0][:-1] + (self.output_shape_ or shapes[0][-1:])

    def compute_mask(self, inputs, mask):
        if isinstance(mask, (list, tuple)):
            return mask[0] if mask else None
        return mask

    # ------------------------------------------------------------------ call
    def __call__(self, query, value=None, key=None, **kwargs):
        # Keras's signature, mha(query, value, key), as the list that Layer.__call__ builds from.
        if isinstance(query, (list, tuple)):
            if value is not None or key is not None or len(query) not in (2, 3):
                raise ValueError(f"layer {self.name!r} (MultiHeadAttention) takes mha(query, value, key=None) "
                                 f"or a list [query, value(, key)]")
            inputs = list(query)
        else:
            if value is None:
                raise TypeError(f"layer {self.name!r} (MultiHeadAttention) needs value: mha(query, value, key=None)")
            inputs = [query, value] + ([key] if key is not None else [])
        return super().__call__(inputs, **kwargs)

    def _project(self, name, x):
        kernel, bias = getattr(self, f"{name}_kernel"), getattr(self, f"{name}_bias")
        y = torch.matmul(x, kernel.reshape(kernel.shape[0], -1)).unflatten(-1, kernel.shape[1:])
        return y + bias if bias is not None else y

    def _attention_mask(self, query, value, value_mask, key_mask, attention_mask, query_mask, use_causal_mask):
        """Keras's ``_compute_attention_mask``: every mask given, merged to ``(batch, T, S)``."""
        device = query.device
        masks = []
        if query_mask is not None:
            masks.append(as_tensor(query_mask, device).bool().unsqueeze(-1))
        for m in (value_mask, key_mask):
            if m is not None:
                masks.append(as_tensor(m, device).bool().unsqueeze(-2))
        t, s = query.shape[1], value.shape[1]
        rows = torch.arange(t, device=device)[:, None]
        cols = torch.arange(s, device=device)[None, :]
        if use_causal_mask:
            masks.append((rows >= cols)[None])
        if self.sliding_window is not None:
            masks.append(((rows - cols).abs() < self.sliding_window)[None])
        if attention_mask is not None:
            masks.append(as_tensor(attention_mask, device).bool())
        if not masks:
            return None
        merged = masks[0]
        for m in masks[1:]:
            merged = merged & m
        return merged

    def forward(self, query, value=None, key=None, query_mask=None, value_mask=None, key_mask=None,
                attention_mask=None, return_attention_scores=False, training=None, use_causal_mask=False,
                mask=None):
        if query_mask is not None:
            raise ValueError(
                f"layer {self.name!r} (MultiHeadAttention): query_mask= is not supported; Keras 3 does not "
                f"use it either (it reads the mask the query tensor carries). Mask the query's tensor "
                f"(Embedding(mask_zero=True)) or pass attention_mask=")
        if isinstance(query, (list, tuple)):
            query, value, key = (list(query) + [None])[:3]
        if mask is not None:
            # The masks the tensors carry (from a model); explicit value_mask / key_mask win, as in Keras.
            if not isinstance(mask, (list, tuple)) or len(mask) not in (2, 3):
                raise ValueError(f"layer {self.name!r} (MultiHeadAttention) takes mask=[query_mask, value_mask"
                                 f"(, key_mask)], got {type(mask).__name__}")
            query_mask = mask[0]
            value_mask = mask[1] if value_mask is None else value_mask
            if key is not None and len(mask) == 3 and key_mask is None:
                key_mask = mask[2]
        if key is None:
            key = value
        if (query.dim() != value.dim() or key.dim() != value.dim() or key.shape[:-1] != value.shape[:-1]
                or query.shape[0] != value.shape[0]):
            raise ValueError(f"layer {self.name!r} (MultiHeadAttention) expects query (batch, T, dim), value "
                             f"(batch, S, dim_v) and key (batch, S, dim_k), got {tuple(query.shape)}, "
                             f"{tuple(value.shape)}, {tuple(key.shape)}")
        attention_mask = self._attention_mask(query, value, value_mask, key_mask, attention_mask, query_mask,
                                              use_causal_mask)
        gate = torch.sigmoid(self._project("gate", query)) if self.use_gate else None
        q = self._project("query", query) * (1.0 / math.sqrt(float(self.key_dim)))
        k = self._project("key", key)
        v = self._project("value", value)
        scores = torch.einsum(self._dot_eq, k, q)
        # Keras computes rank-4 attention without dropout or returned scores with the fused
        # dot_product_attention, which leaves a fully masked row uniform instead of zero.
        explicit = return_attention_scores or self._rate > 0 or q.dim() != 4
        if attention_mask is not None:
            for _ in range(scores.dim() - attention_mask.dim()):
                attention_mask = attention_mask.unsqueeze(-len(self._axes) * 2 - 1)
            scores = torch.where(attention_mask, scores, _MASKED)
        if len(self._norm_axes) == 1:
            weights = torch.softmax(scores, dim=-1)
        else:
            weights = torch.exp(scores - torch.logsumexp(scores, dim=self._norm_axes, keepdim=True))
        if attention_mask is not None and explicit:
            weights = torch.where(attention_mask, weights, 0.0)
        output = torch.einsum(self._combine_eq, self._drop(weights, training), v)
        if gate is not None:
            output = output * gate
        kernel, bias = self.attention_output_kernel, self.attention_output_bias
        output = torch.matmul(output.flatten(-2), kernel.reshape(-1, math.prod(kernel.shape[2:])))
        output = output.unflatten(-1, kernel.shape[2:])
        if bias is not None:
            output = output + bias
        return (output, weights) if return_attention_scores else output

    def get_config(self):
        cfg = super().get_config()
        cfg.update(
            num_heads=self.num_heads, key_dim=self.key_dim, value_dim=self.value_dim, dropout=self.dropout,
            use_bias=self.use_bias, use_gate=self.use_gate,
            output_shape=list(self.output_shape_) if self.output_shape_ else None,
            attention_axes=list(self.attention_axes) if self.attention_axes is not None else None,
            sliding_window=self.sliding_window,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
            kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
            bias_regularizer=regularizers.serialize(self.bias_regularizer),
            activity_regularizer=None, kernel_constraint=None, bias_constraint=None, seed=self.seed,
        )
        return cfg
