"""Core layers: Input, Dense, Embedding, Dropout, Activation, Flatten, RepeatVector, TimeDistributed."""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import activations, initializers, regularizers
from .base import Layer, Shape, as_tensor
from ._dropout import dropout
from ._lookup import embedding_lookup


class InputLayer(Layer):
    """Declares the shape of one sample; ``rnnkit.Input(shape)`` makes one.

    Args:
        shape: sample shape without the batch axis, e.g. ``(33,)``; ``None`` for a
            variable axis.
        dtype: ``"float32"`` or ``"int64"``/``"int32"`` (token ids).
    """

    def __init__(self, shape=None, batch_size=None, dtype="float32", name=None, batch_shape=None, sparse=False,
                 ragged=False, **kw):
        if sparse or ragged:
            raise ValueError(f"InputLayer: {'sparse' if sparse else 'ragged'}=True is not supported by rnnkit")
        if batch_shape is not None:
            batch_shape = tuple(batch_shape)
        elif shape is not None:
            batch_shape = (batch_size,) + tuple(shape)
        else:
            raise ValueError("Input needs shape=, e.g. Input(shape=(33,))")
        super().__init__(name=name, batch_input_shape=batch_shape, **kw)
        self.input_dtype = str(dtype)
        self.built = True
        self._build_input_shape = batch_shape
        self._output_shape = batch_shape

    preserves_dtype = True

    @property
    def shape(self):
        return self._batch_input_shape

    def symbolic_output(self):
        """The symbolic tensor this input stands for (made once: `Input` returns it)."""
        from .symbolic import KerasTensor, Node

        if not self._inbound_nodes:
            t = KerasTensor(self._batch_input_shape, self.input_dtype, name=self.name)
            node = Node(self, (), {}, t)
            t.node = node
            self._inbound_nodes.append(node)
        return self._inbound_nodes[0].outputs

    def forward(self, inputs, mask=None, training=None):
        return inputs

    def get_config(self):
        return {"name": self.name, "batch_shape": list(self._batch_input_shape), "dtype": self.input_dtype}


def Input(shape=None, batch_size=None, dtype="float32", name=None, batch_shape=None, sparse=False, **kwargs):
    """A symbolic model input of ``shape`` (one sample, no batch axis), as ``keras.Input``: call
    layers on it to build a functional model, or put it first in a ``Sequential``.

    ``batch_shape`` (batch axis first) fixes the batch size, as stateful layers need."""
    if sparse:
        raise ValueError("Input: sparse=True is not supported by rnnkit")
    for arg in ("tensor", "ragged", "optional"):
        if kwargs.get(arg):
            raise ValueError(f"Input: {arg}= is not supported by rnnkit")
        kwargs.pop(arg, None)
    if kwargs:
        raise TypeError(f"Input() got unexpected argument(s): {', '.join(sorted(kwargs))}")
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name, batch_shape=batch_shape)
    return layer.symbolic_output()


class Dense(Layer):
    """Densely connected layer: ``activation(inputs @ kernel + bias)`` on the last axis.

    Works on any rank: input ``(batch, ..., input_dim)`` gives ``(batch, ..., units)``,
    so a Dense after ``LSTM(return_sequences=True)`` acts on every time step.

    Args:
        units: output width.
        activation: name (``"relu"``, ``"softmax"``, ...) or callable; default linear.
        use_bias: add a bias vector.
        kernel_initializer: default ``"glorot_uniform"``; bias_initializer default ``"zeros"``.
        kernel_regularizer, bias_regularizer: e.g. ``regularizers.l2(0.01)``.

    Weights (Keras layout): ``kernel (input_dim, units)``, ``bias (units,)``.
    """

    supports_masking = True

    def __init__(
        self,
        units: int,
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(units) <= 0:
            raise ValueError(f"Dense: units must be a positive integer, got {units!r}")
        self.units = int(units)
        self.activation_name = activations.serialize(activation)
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self._regularizers = [
            ("kernel", regularizers.get(kernel_regularizer)),
            ("bias", regularizers.get(bias_regularizer)),
        ]

    def build(self, input_shape):
        in_dim = input_shape[-1]
        if in_dim is None:
            raise ValueError(f"layer {self.name!r} (Dense) needs a known last axis, got input shape {input_shape}")
        self.kernel = nn.Parameter(self.kernel_initializer((in_dim, self.units)))
        self.bias = nn.Parameter(self.bias_initializer((self.units,))) if self.use_bias else None

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def logits(self, inputs):
        """The pre-activation output ``inputs @ kernel + bias``."""
        return F.linear(inputs, self.kernel.t(), self.bias)

    def forward(self, inputs, mask=None, training=None):
        return self.activation(self.logits(inputs))

    def get_config(self):
        cfg = super().get_config()
        cfg.update(
            units=self.units,
            activation=activations.to_config(self, "activation"),
            use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
            kernel_regularizer=regularizers.serialize(self._regularizers[0][1]),
            bias_regularizer=regularizers.serialize(self._regularizers[1][1]),
        )
        return cfg


class Embedding(Layer):
    """Turns token ids into dense vectors: ``(batch, time)`` ints -> ``(batch, time, output_dim)``.

    Args:
        input_dim: vocabulary size; ids must lie in ``[0, input_dim)``.
        output_dim: vector width.
        mask_zero: treat id 0 as padding and emit a mask ``ids != 0`` that
            downstream recurrent layers honour (masked steps keep the state).
        input_length: fixed sequence length, for the first layer of a model.
        embeddings_initializer: default ``"uniform"`` (U(-0.05, 0.05), as Keras).

    Weights: ``embeddings (input_dim, output_dim)``.
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        mask_zero: bool = False,
        input_length: int | None = None,
        **kwargs,
    ):
        if input_length is not None and "input_shape" not in kwargs and "batch_input_shape" not in kwargs:
            kwargs["input_shape"] = (input_length,)
        super().__init__(**kwargs)
        if int(input_dim) <= 0 or int(output_dim) <= 0:
            raise ValueError(
                f"Embedding: input_dim and output_dim must be positive, got {input_dim!r}, {output_dim!r}"
            )
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.mask_zero = bool(mask_zero)
        self.input_length = input_length
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self._regularizers = [("embeddings", regularizers.get(embeddings_regularizer))]

    def build(self, input_shape):
        self.embeddings = nn.Parameter(self.embeddings_initializer((self.input_dim, self.output_dim)))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def _check_shape(self, got):
        # Any rank and length of ids is fine: only their range matters (checked in forward).
        pass

    def token_ids(self, inputs: torch.Tensor) -> torch.Tensor:
        """``inputs`` as integer ids (whole-valued floats are accepted, as Keras does)."""
        if inputs.is_floating_point():
            if not torch.equal(inputs, inputs.round()):
                raise ValueError(f"layer {self.name!r} (Embedding) expects integer token ids, got fractional values")
            inputs = inputs.long()
        return inputs

    def forward(self, inputs, mask=None, training=None):
        inputs = self.token_ids(inputs)
        if inputs.device.type == "cpu":
            # The CPU kernel checks every id itself; on accelerators a bad id is a device
            # assert, so they are checked before (one extra pass over the ids).
            try:
                return embedding_lookup(inputs, self.embeddings)
            except IndexError:
                self._check_ids(inputs)
                raise
        self._check_ids(inputs)
        return F.embedding(inputs, self.embeddings)

    def _check_ids(self, inputs):
        if inputs.numel():
            lo, hi = (int(v) for v in torch.aminmax(inputs))
            if lo < 0 or hi >= self.input_dim:
                bad = lo if lo < 0 else hi
                raise ValueError(
                    f"layer {self.name!r} (Embedding): token id {bad} is out of range; "
                    f"expected ids in [0, {self.input_dim - 1}] (input_dim={self.input_dim})"
                )

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return as_tensor(inputs) != 0

    def get_config(self):
        cfg = super().get_config()
        cfg.update(
            input_dim=self.input_dim,
            output_dim=self.output_dim,
            embeddings_initializer=initializers.serialize(self.embeddings_initializer),
            embeddings_regularizer=regularizers.serialize(self._regularizers[0][1]),
            mask_zero=self.mask_zero,
            input_length=self.input_length,
        )
        if self.input_length is not None:
            cfg.pop("batch_input_shape", None)
        return cfg


class Dropout(Layer):
    """Randomly zeroes a fraction ``rate`` of inputs during training and scales the rest by
    ``1 / (1 - rate)``; identity at inference. ``noise_shape`` broadcasts one draw over
    axes of size 1 (e.g. ``(None, 1, features)`` drops whole features over time)."""

    supports_masking = True

    def __init__(self, rate: float, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.noise_shape = tuple(noise_shape) if noise_shape is not None else None
        self.seed = seed

    def forward(self, inputs, mask=None, training=None):
        training = self.training if training is None else training
        if not training or self.rate == 0.0:
            return inputs
        if self.noise_shape is None:
            return dropout(inputs, self.rate, True)
        shape = [d if n is None else n for n, d in zip(self.noise_shape, inputs.shape)]
        keep = torch.empty(shape, device=inputs.device).bernoulli_(1.0 - self.rate)
        return inputs * keep / (1.0 - self.rate)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(rate=self.rate, noise_shape=list(self.noise_shape) if self.noise_shape else None, seed=self.seed)
        return cfg


class Activation(Layer):
    """Applies an activation function element-wise (``softmax`` on the last axis)."""

    supports_masking = True

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation_name = activations.serialize(activation)
        self.activation = activations.get(activation)

    def logits(self, inputs):
        return inputs

    def forward(self, inputs, mask=None, training=None):
        return self.activation(inputs)

    def get_config(self):
        cfg = super().get_config()
        cfg["activation"] = activations.to_config(self, "activation")
        return cfg


class Flatten(Layer):
    """``(batch, d1, d2, ...)`` -> ``(batch, d1 * d2 * ...)``."""

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        n = None if any(d is None for d in rest) else int(np.prod(rest)) if rest else 1
        return (input_shape[0], n)

    def _check_shape(self, got):
        expected = self._build_input_shape  # all axes but the batch count: they make the output width
        if expected is not None and tuple(got[1:]) != tuple(expected[1:]) and None not in expected[1:]:
            raise ValueError(f"layer {self.name!r} (Flatten) expected input shape {tuple(expected)}, got {tuple(got)}")

    def forward(self, inputs, mask=None, training=None):
        return inputs.reshape(inputs.shape[0], -1)


class RepeatVector(Layer):
    """Repeats a vector ``n`` times: ``(batch, features)`` -> ``(batch, n, features)``."""

    def __init__(self, n: int, **kwargs):
        super().__init__(**kwargs)
        self.n = int(n)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def forward(self, inputs, mask=None, training=None):
        if inputs.dim() != 2:
            raise ValueError(
                f"layer {self.name!r} (RepeatVector) expects (batch, features), got shape {tuple(inputs.shape)}"
            )
        return inputs.unsqueeze(1).expand(-1, self.n, -1)

    def get_config(self):
        cfg = super().get_config()
        cfg["n"] = self.n
        return cfg


class TimeDistributed(Layer):
    """Applies ``layer`` to every time step: ``(batch, time, ...)`` -> ``(batch, time, ...)``.

    The wrapped layer sees ``(batch * time, ...)`` and its weights are shared across steps.
    """

    supports_masking = True

    def __init__(self, layer: Layer, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, Layer):
            raise TypeError(f"TimeDistributed wraps an rnnkit layer, got {type(layer).__name__}")
        self.layer = layer

    def build(self, input_shape):
        if len(input_shape) < 3:
            raise ValueError(
                f"layer {self.name!r} (TimeDistributed) needs inputs of rank >= 3 (batch, time, ...), "
                f"got {input_shape}"
            )
        self.layer.build_for((None,) + tuple(input_shape[2:]))

    def compute_output_shape(self, input_shape):
        inner = self.layer.compute_output_shape((None,) + tuple(input_shape[2:]))
        return (input_shape[0], input_shape[1]) + tuple(inner[1:])

    def forward(self, inputs, mask=None, training=None):
        b, t = inputs.shape[:2]
        y = self.layer(inputs.reshape((b * t,) + tuple(inputs.shape[2:])), training=training)
        return y.reshape((b, t) + tuple(y.shape[1:]))

    def keras_weight_tensors(self):
        return self.layer.keras_weight_tensors()

    def load_keras_weight_tensors(self, arrays):
        self.layer.load_keras_weight_tensors(arrays)

    def regularization_loss(self):
        return self.layer.regularization_loss()

    def get_config(self):
        from .registry import serialize_layer

        cfg = super().get_config()
        cfg["layer"] = serialize_layer(self.layer)
        return cfg

    @classmethod
    def from_config(cls, config):
        from .registry import deserialize_layer

        config = dict(config)
        config["layer"] = deserialize_layer(config["layer"])
        return cls(**config)
