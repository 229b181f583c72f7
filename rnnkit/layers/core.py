"""Core layers: Input, Dense, Embedding, Dropout, Activation, Flatten, RepeatVector, TimeDistributed."""
from __future__ import annotations

import numbers

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import activations, initializers, regularizers
from .. import constraints as rnnkit_constraints
from . import _args
from ._args import ActivationAttributes, ActivityRegularized, Constrained, OneInput
from .base import Layer, Shape, as_tensor
from ._dropout import dropout
from ._lookup import embedding_lookup


class InputLayer(Layer):
    """Declares the shape of one sample; ``rnnkit.Input(shape)`` makes one.

    Args:
        shape: sample shape without the batch axis, e.g. ``(33,)``; ``None`` for a
            variable axis.
        batch_size: fixed batch size (default None: any).
        dtype: ``"float32"`` (default, also for None) or ``"int64"``/``"int32"`` (token ids).
        batch_shape: the shape with the batch axis, instead of ``shape`` and ``batch_size``.
        sparse, ragged, input_tensor, optional: Keras's; refused unless None/False.
    """

    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None, ragged=None, batch_shape=None,
                 input_tensor=None, optional=False, name=None, **kw):
        _args.refuse("Input", sparse=sparse, ragged=ragged, input_tensor=input_tensor, optional=optional)
        if "input_shape" in kw:  # Keras's deprecated spelling of shape
            shape = kw.pop("input_shape")
        if "batch_input_shape" in kw:
            batch_shape = kw.pop("batch_input_shape")
        _args.refuse("Input", input_dim=kw.pop("input_dim", None))  # Layer's would be overridden by shape
        if shape is not None and batch_shape is not None:
            raise ValueError("Input: give shape= or batch_shape=, not both")
        if batch_shape is not None:
            if batch_size is not None:
                raise ValueError("Input: give batch_size= or batch_shape=, not both")
            batch_shape = _input_shape("batch_shape", batch_shape)
        elif shape is not None:
            if batch_size is not None:
                batch_size = _args.positive_int("Input", "batch_size", batch_size)
            batch_shape = (batch_size,) + _input_shape("shape", shape)
        else:
            raise ValueError("Input needs shape=, e.g. Input(shape=(33,))")
        super().__init__(name=name, batch_input_shape=batch_shape, **kw)
        dtype = "float32" if dtype is None else str(dtype).replace("torch.", "")
        if dtype not in _INPUT_DTYPES:
            raise ValueError(f"Input: dtype must be one of {', '.join(_INPUT_DTYPES)}, got {dtype!r}")
        self.input_dtype = dtype
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


_INPUT_DTYPES = ("float32", "int32", "int64")


def _input_shape(arg: str, shape) -> tuple:
    """A shape tuple of positive ints and Nones (Keras refuses floats and strings too)."""
    if not isinstance(shape, (tuple, list)):
        hint = f" (write ({shape},))" if isinstance(shape, (int, np.integer)) else ""
        raise ValueError(f"Input: {arg} must be a tuple of positive integers or None, got {shape!r}{hint}")
    return tuple(None if d is None else _args.positive_int("Input", arg, d) for d in shape)


def Input(shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None, tensor=None,
          optional=False, ragged=None):
    """A symbolic model input of ``shape`` (one sample, no batch axis), as ``keras.Input``: call
    layers on it to build a functional model, or put it first in a ``Sequential``. ``batch_shape``
    (batch axis first) fixes the batch size, as stateful layers need. The arguments are
    `InputLayer`'s (``tensor``, Keras's ``input_tensor``, is refused too)."""
    _args.refuse("Input", tensor=tensor)
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, sparse=sparse, ragged=ragged,
                       batch_shape=batch_shape, optional=optional, name=name)
    return layer.symbolic_output()


class Dense(ActivationAttributes, ActivityRegularized, Constrained, OneInput, Layer):
    """Densely connected layer: ``activation(inputs @ kernel + bias)`` on the last axis.

    Works on any rank: input ``(batch, ..., input_dim)`` gives ``(batch, ..., units)``,
    so a Dense after ``LSTM(return_sequences=True)`` acts on every time step.

    Args:
        units: output width (a positive integer).
        activation: name (``"relu"``, ``"softmax"``, ...) or callable; default None (linear).
            Assigning ``layer.activation`` later works too (None is linear).
        use_bias: add a bias vector (default True).
        kernel_initializer: default ``"glorot_uniform"``; bias_initializer default ``"zeros"``.
        kernel_regularizer, bias_regularizer: e.g. ``regularizers.l2(0.01)``.
        activity_regularizer: a penalty on the output, over the batch size (Keras 3).
        kernel_constraint, bias_constraint: projections applied after each optimizer step
            (`rnnkit.constraints`: ``"max_norm"``, ``"non_neg"``, ``UnitNorm(axis=0)`` ...).
        lora_rank, lora_alpha, quantization_config: Keras's; refused unless None.

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
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        lora_rank=None,
        lora_alpha=None,
        quantization_config=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _args.refuse("Dense", lora_rank=lora_rank, lora_alpha=lora_alpha, quantization_config=quantization_config)
        self.units = _args.positive_int("Dense", "units", units)
        self.activation = activation
        self.use_bias = _args.flag("Dense", "use_bias", use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self._regularizers = [
            ("kernel", regularizers.get(kernel_regularizer)),
            ("bias", regularizers.get(bias_regularizer)),
        ]
        self._init_activity(activity_regularizer)
        self._init_constraints(kernel=kernel_constraint, bias=bias_constraint)

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
        z = F.linear(inputs, self.kernel.t(), self.bias)
        if self.activity_regularizer is not None:  # the loss reads the logits; the penalty is on the output
            self._record_activity(self.activation(z))
        return z

    def forward(self, inputs, mask=None, training=None):
        return self._record_activity(self.activation(F.linear(inputs, self.kernel.t(), self.bias)))

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
        self._constraint_config(cfg, kernel_constraint="kernel", bias_constraint="bias")
        return self._activity_config(cfg)


class Embedding(Constrained, OneInput, Layer):
    """Turns token ids into dense vectors: ``(batch, time)`` ints -> ``(batch, time, output_dim)``.

    Args:
        input_dim: vocabulary size; ids must lie in ``[0, input_dim)``.
        output_dim: vector width.
        embeddings_initializer: default ``"uniform"`` (U(-0.05, 0.05), as Keras).
        embeddings_regularizer: a weight penalty, e.g. ``regularizers.l2(0.01)``.
        mask_zero: treat id 0 as padding and emit a mask ``ids != 0`` that
            downstream recurrent layers honour (masked steps keep the state).
        weights: the initial table ``(input_dim, output_dim)`` (or a list holding it), as Keras.
        input_length: fixed sequence length, for the first layer of a model (Keras 2's
            meaning; Keras 3 ignores it with a warning).
        embeddings_constraint: a projection of the table after each optimizer step
            (`rnnkit.constraints`).
        lora_rank, lora_alpha, quantization_config: Keras's; refused unless None.

    Weights: ``embeddings (input_dim, output_dim)``.
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        embeddings_constraint=None,
        mask_zero: bool = False,
        weights=None,
        lora_rank=None,
        lora_alpha=None,
        quantization_config=None,
        input_length: int | None = None,
        **kwargs,
    ):
        if input_length is not None:
            input_length = _args.positive_int("Embedding", "input_length", input_length)
            if "input_shape" not in kwargs and "batch_input_shape" not in kwargs:
                kwargs["input_shape"] = (input_length,)
        super().__init__(**kwargs)
        _args.refuse("Embedding", lora_rank=lora_rank, lora_alpha=lora_alpha, quantization_config=quantization_config)
        self.input_dim = _args.positive_int("Embedding", "input_dim", input_dim)
        self.output_dim = _args.positive_int("Embedding", "output_dim", output_dim)
        self.mask_zero = _args.flag("Embedding", "mask_zero", mask_zero)
        self.input_length = input_length
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self._regularizers = [("embeddings", regularizers.get(embeddings_regularizer))]
        self._init_constraints(embeddings=embeddings_constraint)
        if weights is not None:
            self._initial_table(weights)

    def _initial_table(self, weights) -> None:
        # Keras builds the layer at once and sets the table; here the parameter is made now
        # and build() keeps it.
        table = weights[0] if isinstance(weights, (list, tuple)) and len(weights) == 1 else weights
        table = torch.as_tensor(np.asarray(table, dtype=np.float32))
        if tuple(table.shape) != (self.input_dim, self.output_dim):
            raise ValueError(f"Embedding: weights must be one array of shape ({self.input_dim}, {self.output_dim}), "
                             f"got shape {tuple(table.shape)}")
        self.embeddings = nn.Parameter(table.clone())

    def build(self, input_shape):
        if "embeddings" not in self._parameters:
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
            embeddings_constraint=rnnkit_constraints.serialize(self._constraints["embeddings"]),
            mask_zero=self.mask_zero,
            input_length=self.input_length,
        )
        if self.input_length is not None:
            cfg.pop("batch_input_shape", None)
        return cfg


class Dropout(OneInput, Layer):
    """Randomly zeroes a fraction ``rate`` of inputs during training and scales the rest by
    ``1 / (1 - rate)``; identity at inference.

    Args:
        rate: the fraction to drop, in ``[0, 1)``.
        noise_shape: the shape of the drop mask, broadcast over axes of size 1: e.g.
            ``(None, 1, features)`` drops whole features over time (None: the input's size).
        seed: an integer: the layer draws its masks from its own generator seeded with it, so
            they repeat from run to run (not TensorFlow's masks); None: PyTorch's global RNG.

    Call: ``layer(inputs, training=None)`` (``layer(x, True)`` too, as Keras); shapes: output as input.
    """

    supports_masking = True

    def __init__(self, rate: float, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        if noise_shape is not None:
            if not isinstance(noise_shape, (tuple, list)):
                raise ValueError(f"Dropout: noise_shape must be a tuple of integers or None, got {noise_shape!r}")
            noise_shape = tuple(None if n is None else _args.positive_int("Dropout", "noise_shape", n)
                                for n in noise_shape)
        self.noise_shape = noise_shape
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise ValueError(f"Dropout: seed must be an integer or None, got {seed!r}")
        self.seed = None if seed is None else int(seed)
        self._generator = None if seed is None else torch.Generator().manual_seed(self.seed)

    def forward(self, inputs, mask=None, training=None):
        mask, training = _keras_positional_training(mask, training)
        training = self.training if training is None else training
        if not training or self.rate == 0.0:
            return inputs
        if self.noise_shape is None and self._generator is None:
            return dropout(inputs, self.rate, True)
        shape = tuple(inputs.shape)
        if self.noise_shape is not None:
            if len(self.noise_shape) != inputs.dim():
                raise ValueError(f"layer {self.name!r} (Dropout): noise_shape {self.noise_shape} has "
                                 f"{len(self.noise_shape)} axes, the input {tuple(inputs.shape)} has {inputs.dim()}")
            shape = tuple(d if n is None else n for n, d in zip(self.noise_shape, inputs.shape))
        if self._generator is None:
            keep = torch.empty(shape, device=inputs.device, dtype=inputs.dtype).bernoulli_(1.0 - self.rate)
        else:  # drawn on the CPU, where the layer's generator lives
            keep = torch.empty(shape).bernoulli_(1.0 - self.rate, generator=self._generator)
            keep = keep.to(device=inputs.device, dtype=inputs.dtype)
        return inputs * keep / (1.0 - self.rate)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(rate=self.rate, noise_shape=list(self.noise_shape) if self.noise_shape else None, seed=self.seed)
        return cfg


def _keras_positional_training(mask, training):
    """``(mask, training)`` of a ``forward(inputs, mask, training)`` call that may be Keras's
    ``call(inputs, training, ...)`` order (Dropout, TimeDistributed): a bool where the mask
    goes is the training flag given by position."""
    if isinstance(mask, bool):
        return (None if isinstance(training, bool) else training), mask
    return mask, training


class Activation(ActivationAttributes, OneInput, Layer):
    """Applies an activation function element-wise (``softmax`` on the last axis).

    Args:
        activation: a name (``"relu"``, ...) or a callable; None is linear.

    Shapes: output as input.
    """

    supports_masking = True

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activation

    def logits(self, inputs):
        return inputs

    def forward(self, inputs, mask=None, training=None):
        return self.activation(inputs)

    def get_config(self):
        cfg = super().get_config()
        cfg["activation"] = activations.to_config(self, "activation")
        return cfg


class Flatten(OneInput, Layer):
    """``(batch, d1, d2, ...)`` -> ``(batch, d1 * d2 * ...)``.

    Args:
        data_format: ``"channels_last"`` (default, also for None) flattens the axes in
            order; ``"channels_first"`` reads axis 1 as the channels and moves it last
            first, so the result is that of the same data laid out channels-last (Keras's rule).
    """

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = _args.data_format("Flatten", data_format)

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        n = None if any(d is None for d in rest) else int(np.prod(rest)) if rest else 1
        return (input_shape[0], n)

    def _check_shape(self, got):
        expected = self._build_input_shape  # all axes but the batch count: they make the output width
        if expected is not None and tuple(got[1:]) != tuple(expected[1:]) and None not in expected[1:]:
            raise ValueError(f"layer {self.name!r} (Flatten) expected input shape {tuple(expected)}, got {tuple(got)}")

    def forward(self, inputs, mask=None, training=None):
        if self.data_format == "channels_first" and inputs.dim() > 2:
            inputs = inputs.movedim(1, -1)
        return inputs.reshape(inputs.shape[0], -1)

    def get_config(self):
        cfg = super().get_config()
        cfg["data_format"] = self.data_format
        return cfg


class RepeatVector(OneInput, Layer):
    """Repeats a vector ``n`` times: ``(batch, features)`` -> ``(batch, n, features)``.

    Args:
        n: how many times (a positive integer).
    """

    def __init__(self, n: int, **kwargs):
        super().__init__(**kwargs)
        self.n = _args.positive_int("RepeatVector", "n", n)

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


class TimeDistributed(OneInput, Layer):
    """Applies ``layer`` to every time step: ``(batch, time, ...)`` -> ``(batch, time, ...)``.

    The wrapped layer sees ``(batch * time, ...)`` and its weights are shared across steps.

    Args:
        layer: the rnnkit layer to apply.

    Call: ``layer(inputs, training=None, mask=None)`` (by position too, as Keras); a mask of shape ``(batch, time, ...)``
    reaches the wrapped layer step by step when it takes masks, as in Keras.
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
        mask, training = _keras_positional_training(mask, training)
        b, t = inputs.shape[:2]
        kwargs = {"training": training}
        if mask is not None:
            if not isinstance(mask, torch.Tensor):
                mask = as_tensor(mask, inputs.device).bool()
            if mask.dim() < 2 or tuple(mask.shape[:2]) != (b, t):
                raise ValueError(f"layer {self.name!r} (TimeDistributed): the mask's shape {tuple(mask.shape)} does "
                                 f"not start with the input's (batch, time) = ({b}, {t})")
            # Keras hands the wrapped layer each step's slice of the mask; a (batch, time) mask
            # leaves one flag per sample, which no layer reads.
            if mask.dim() > 2 and self.layer.supports_masking:
                kwargs["mask"] = mask.reshape((b * t,) + tuple(mask.shape[2:]))
        y = self.layer(inputs.reshape((b * t,) + tuple(inputs.shape[2:])), **kwargs)
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
