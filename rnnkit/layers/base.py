"""The Layer base class: a ``torch.nn.Module`` with Keras's life cycle.

A layer is *built* once its input shape is known — from ``input_shape=`` when it
is first in a model, from the previous layer's output shape inside a model, or
from the first array it is called on — and only then creates its weights.
Shapes follow Keras: tuples whose first entry is the batch size (``None``).
"""
from __future__ import annotations

import collections
import re
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn

Shape = tuple

_NAME_COUNTS: collections.Counter = collections.Counter()


def to_snake_case(name: str) -> str:
    """Keras's class-name-to-layer-name rule: ``MaxPooling1D`` -> ``max_pooling1d``."""
    intermediate = re.sub("(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    insecure = re.sub("([a-z])([A-Z])", r"\1_\2", intermediate).lower()
    return insecure if insecure[0] != "_" else "private" + insecure


def unique_name(base: str) -> str:
    """``base`` the first time in this process, then ``base_1``, ``base_2``, ... (as Keras)."""
    n = _NAME_COUNTS[base]
    _NAME_COUNTS[base] += 1
    return base if n == 0 else f"{base}_{n}"


_PROBING = [0]


class shape_probe:
    """Context in which layers are run on stand-in tensors only to learn their output shapes
    (a functional model built from symbolic tensors): stateful layers keep their state and
    nothing that a real call would update (moving statistics, carried states) changes."""

    def __enter__(self):
        _PROBING[0] += 1
        return self

    def __exit__(self, *exc):
        _PROBING[0] -= 1
        return False


def is_probing() -> bool:
    """Whether the current call is a `shape_probe` run."""
    return _PROBING[0] > 0


def clear_session() -> None:
    """Reset the automatic layer and model name counters (``keras.backend.clear_session``)."""
    _NAME_COUNTS.clear()


def as_tensor(x, device: torch.device | None = None) -> torch.Tensor:
    """Convert a NumPy array / nested list / tensor to a tensor (floats as float32, ints as int64)."""
    if isinstance(x, torch.Tensor):
        t = x
    else:
        a = np.asarray(x)
        if a.dtype == object:
            raise TypeError(f"expected a numeric array, got an array of Python objects with shape {a.shape}")
        if a.dtype.kind == "f":
            a = a.astype(np.float32, copy=False)
        elif a.dtype.kind in "iub":
            a = a.astype(np.int64, copy=False) if a.dtype.kind != "b" else a
        t = torch.from_numpy(np.ascontiguousarray(a))
    if device is not None and t.device != device:
        t = t.to(device)
    return t


def shape_of(x) -> Shape:
    if isinstance(x, (list, tuple)):
        return [shape_of(t) for t in x]
    return (None,) + tuple(x.shape[1:])


def format_shape(shape) -> str:
    return str(tuple(shape)) if not isinstance(shape, list) else str([tuple(s) for s in shape])


_NO_SHAPE = ("layer {name!r} has no defined {what} shape yet: it has not been built (give the model an "
             "input_shape or an Input, call it on data, or call model.build((None, ...)))")


class Layer(nn.Module):
    """Base of every rnnkit layer.

    Subclasses implement ``build(input_shape)`` (create parameters),
    ``forward(inputs, mask=None, training=None)`` (Keras's ``call``) and
    ``compute_output_shape(input_shape)``; masking layers also override
    ``compute_mask``. Keras-layout weights come from ``get_weights()``.

    Args:
        name: unique layer name; by default the snake-cased class name,
            numbered per process (``lstm``, ``lstm_1``, ...).
        trainable: whether the weights receive gradients.
        input_shape: shape of one sample (no batch axis), for the first layer of
            a model. ``batch_input_shape`` / ``input_dim`` are accepted too.
    """

    supports_masking = False

    def __init__(
        self,
        *,
        name: str | None = None,
        trainable: bool = True,
        input_shape: Sequence[int | None] | None = None,
        batch_input_shape: Sequence[int | None] | None = None,
        batch_size: int | None = None,
        input_dim: int | None = None,
        dtype: Any = None,
        **unknown,
    ):
        super().__init__()
        # Keras's default outside fit is inference: a direct call (layer(x), model(x)) drops
        # nothing. fit / the training loops switch to training mode with .train() and back.
        self.training = False
        if unknown:
            raise TypeError(
                f"{type(self).__name__}() got unexpected argument(s): {', '.join(sorted(unknown))}"
            )
        if dtype not in (None, "float32", torch.float32):
            raise ValueError(f"{type(self).__name__}: only float32 layers are supported, got dtype={dtype!r}")
        self.name = name or unique_name(to_snake_case(type(self).__name__))
        if input_shape is None and input_dim is not None:
            input_shape = (input_dim,)
        if batch_input_shape is not None:
            self._batch_input_shape: Shape | None = tuple(batch_input_shape)
        elif input_shape is not None:
            self._batch_input_shape = (batch_size,) + tuple(input_shape)
        else:
            self._batch_input_shape = None
        self.built = False
        self._trainable = bool(trainable)
        self._build_input_shape: Shape | None = None
        self._output_shape = None

    # ----------------------------------------------------------------- build
    def build(self, input_shape: Shape) -> None:
        """Create the layer's weights for inputs of ``input_shape``; default: none."""

    def build_for(self, input_shape: Shape) -> None:
        """Build (once) and record the input and output shapes."""
        if self.built:
            return
        self.build(input_shape)
        self._build_input_shape = input_shape
        self._output_shape = self.compute_output_shape(input_shape)
        self.built = True
        if not self._trainable:  # freeze weights made by build(); never unfreeze a child
            self.trainable = False
        device = getattr(self, "_device_hint", None)
        if device is not None:
            self.to(device)

    def compute_output_shape(self, input_shape: Shape):
        return input_shape

    def compute_mask(self, inputs, mask):
        return mask if self.supports_masking else None

    # ------------------------------------------------------------------ call
    def __call__(self, inputs, *args, **kwargs):
        device = self._param_device()
        if isinstance(inputs, (list, tuple)):
            inputs = [self._cast_input(as_tensor(t, device)) for t in inputs]
        else:
            inputs = self._cast_input(as_tensor(inputs, device))
        if not self.built:
            self.build_for(shape_of(inputs))
            self._param_device()  # now that the weights exist: their dtype, for the cast below
            inputs = [self._cast_input(t) for t in inputs] if isinstance(inputs, list) else self._cast_input(inputs)
        elif isinstance(inputs, torch.Tensor):
            self._check_input(inputs)
        mask = kwargs.get("mask")
        if mask is not None:
            first = inputs[0] if isinstance(inputs, list) else inputs
            if isinstance(mask, (list, tuple)):
                kwargs["mask"] = [None if m is None else as_tensor(m, first.device).bool() for m in mask]
            else:
                kwargs["mask"] = as_tensor(mask, first.device).bool()
        return super().__call__(inputs, *args, **kwargs)

    def _check_input(self, x: torch.Tensor) -> None:
        self._check_shape(tuple(x.shape))

    def _check_shape(self, got: Shape) -> None:
        # Keras's rule for a built layer: same rank and same feature (last) axis; the
        # batch and time axes may vary, so a sequence model runs on any length.
        expected = self._build_input_shape
        if expected is None or isinstance(expected, list) or isinstance(got, list):
            return
        got = tuple(got)
        if len(got) != len(expected) or (
            len(got) > 1 and expected[-1] is not None and got[-1] is not None and expected[-1] != got[-1]
        ):
            raise ValueError(
                f"layer {self.name!r} ({type(self).__name__}) expected input shape "
                f"{format_shape(expected)}, got {format_shape(got)}"
            )

    def _param_device(self) -> torch.device | None:
        # Cached: walking the module tree on every call costs more than a small layer's
        # forward. ``_apply`` (behind .to/.cpu/.cuda) clears the cache.
        cached = self.__dict__.get("_device_cache", False)
        if cached is not False:
            return cached
        device, dtype = getattr(self, "_device_hint", None), None
        for p in self.parameters():
            device, dtype = p.device, p.dtype
            break
        if self.built:
            self.__dict__["_device_cache"] = device
            self.__dict__["_dtype_cache"] = dtype
        return device

    def _cast_input(self, t):
        # Floating inputs take the weights' dtype, as Keras casts inputs to a layer's dtype
        # (a float64 tensor would otherwise fail inside the first matrix product).
        dtype = self.__dict__.get("_dtype_cache")
        if dtype is not None and isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != dtype:
            return t.to(dtype)
        return t

    def _apply(self, fn, *args, **kwargs):
        # nn.Module._apply recurses through the children's _apply, so each layer clears its own.
        self.__dict__.pop("_device_cache", None)
        self.__dict__.pop("_dtype_cache", None)
        return super()._apply(fn, *args, **kwargs)

    # --------------------------------------------------------------- weights
    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for p in self.parameters():
            p.requires_grad_(self._trainable)

    @property
    def weights(self) -> list[torch.Tensor]:
        return list(self.parameters())

    @property
    def trainable_weights(self) -> list[torch.Tensor]:
        return [p for p in self.parameters() if p.requires_grad]

    @property
    def non_trainable_weights(self) -> list[torch.Tensor]:
        return [p for p in self.parameters() if not p.requires_grad]

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise ValueError(
                f"layer {self.name!r} is not built yet, so it has no {what}: give the first "
                f"layer input_shape=..., or call the layer/model on an input first"
            )

    def count_params(self) -> int:
        """Number of weights (trainable or not), as Keras counts them."""
        self._require_built("weights")
        return sum(p.numel() for p in self.parameters())

    def keras_weight_tensors(self) -> list[torch.Tensor]:
        """Weights as tensors in Keras's order and layout. Default: own parameters as stored."""
        return [p for p in self.parameters()]

    def load_keras_weight_tensors(self, arrays: list[np.ndarray]) -> None:
        """Inverse of ``keras_weight_tensors``: copy Keras-layout arrays into the parameters."""
        targets = list(self.parameters())
        for p, a in zip(targets, arrays):
            p.data.copy_(torch.as_tensor(a, dtype=p.dtype))

    def get_weights(self) -> list[np.ndarray]:
        """The weights as NumPy arrays, in Keras's shapes and order."""
        self._require_built("weights")
        return [w.detach().cpu().numpy().copy() for w in self.keras_weight_tensors()]

    def set_weights(self, weights: Iterable) -> None:
        """Set weights from NumPy arrays in Keras's shapes and order (as ``get_weights`` gives)."""
        self._require_built("weights")
        arrays = [np.asarray(w, dtype=np.float32) for w in weights]
        current = self.get_weights()
        if len(arrays) != len(current):
            raise ValueError(
                f"layer {self.name!r} ({type(self).__name__}) has {len(current)} weight arrays, "
                f"got {len(arrays)}"
            )
        for i, (a, c) in enumerate(zip(arrays, current)):
            if a.shape != c.shape:
                raise ValueError(
                    f"layer {self.name!r} ({type(self).__name__}) weight {i} has shape {c.shape}, "
                    f"got {a.shape}"
                )
        with torch.no_grad():
            self.load_keras_weight_tensors(arrays)

    def regularization_loss(self) -> torch.Tensor | None:
        """Sum of this layer's weight penalties (None when it has none)."""
        total = None
        # Runs every training step: read the list from __dict__ (a missing attribute would go
        # through nn.Module.__getattr__ and an exception) and skip unset penalties first.
        for attr, reg in self.__dict__.get("_regularizers", ()):
            if reg is None:
                continue
            w = getattr(self, attr, None)
            if w is None:
                continue
            term = reg(w)
            total = term if total is None else total + term
        return total

    # ----------------------------------------------------------------- shape
    @property
    def input_shape(self):
        if self._build_input_shape is None:
            if self._batch_input_shape is not None:
                return self._batch_input_shape
            raise AttributeError(_NO_SHAPE.format(name=self.name, what="input"))
        return self._build_input_shape

    @property
    def output_shape(self):
        if not self.built:
            if self._batch_input_shape is not None:
                return self.compute_output_shape(self._batch_input_shape)
            raise AttributeError(_NO_SHAPE.format(name=self.name, what="output"))
        return self._output_shape

    def __getattr__(self, name):
        # An AttributeError raised inside a property sends Python to nn.Module.__getattr__,
        # whose "object has no attribute" would hide why the shape is not known yet.
        if name in ("input_shape", "output_shape"):
            raise AttributeError(_NO_SHAPE.format(name=self.__dict__.get("name", type(self).__name__),
                                                  what=name.split("_")[0]))
        return super().__getattr__(name)

    # ---------------------------------------------------------------- config
    def get_config(self) -> dict:
        """Constructor arguments, JSON-serialisable (as ``keras.layers.Layer.get_config``)."""
        cfg = {"name": self.name, "trainable": self.trainable}
        if self._batch_input_shape is not None:
            cfg["batch_input_shape"] = list(self._batch_input_shape)
        return cfg

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def extra_repr(self) -> str:
        return f"name={self.name!r}"
