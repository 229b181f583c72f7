"""The Layer base class: a ``torch.nn.Module`` with Keras's life cycle.

A layer is *built* once its input shape is known — from ``input_shape=`` when it
is first in a model, from the previous layer's output shape inside a model, or
from the first array it is called on — and only then creates its weights.
Shapes follow Keras: tuples whose first entry is the batch size (``None``).
"""
from __future__ import annotations

import collections
import functools
import inspect
import re
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn

# functional_call holds what happens around every call (masks, training flag, symbolic calls,
# shape probes); it knows layers only through their methods, so it does not import this module.
from .functional_call import eager_call, symbolic_call, trusts_output_shape
from .functional_call import is_probing, shape_probe  # noqa: F401  (the layers read them from here)
from .symbolic import KerasTensor, any_symbolic, flatten, torch_dtype

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
            if any(isinstance(v, KerasTensor) for v in flatten(list(a.ravel()))):
                raise TypeError(
                    "got an array of symbolic tensors (keras.Input / a layer called on one): that is the "
                    "functional API; build keras.Model(inputs, outputs) and call model.predict(data)"
                )
            raise TypeError(f"expected a numeric array, got an array of Python objects with shape {a.shape} "
                            f"(ragged lists? pad them to one length with pad_sequences)")
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
    if isinstance(x, dict):
        return {k: shape_of(t) for k, t in x.items()}
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
        self._inbound_nodes: list = []  # one symbolic.Node per call on symbolic tensors
        self._trainable = bool(trainable)
        self._build_input_shape: Shape | None = None
        self._output_shape = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Keras marks a layer built once its build() has run, also when user code calls
        # layer.build(shape) itself; weights set after that must be the ones the first call uses.
        if "build" in cls.__dict__ and not getattr(cls.__dict__["build"], "_marks_built", False):
            cls.build = _marking_built(cls.__dict__["build"])
        cls._call_info = None  # the call signature, read once per class (`_signature`)

    # ----------------------------------------------------------------- build
    def build(self, input_shape: Shape) -> None:
        """Create the layer's weights for inputs of ``input_shape``; default: none."""

    def build_for(self, input_shape: Shape) -> None:
        """Build (once) and record the input and output shapes."""
        if self.built:
            return
        self.__dict__["_in_build_for"] = True
        try:
            self.build(input_shape)
        finally:
            self.__dict__["_in_build_for"] = False
        self._finish_build(input_shape)

    def _finish_build(self, input_shape) -> None:
        self._build_input_shape = input_shape
        self._output_shape = None
        if trusts_output_shape(type(self)):
            try:
                self._output_shape = self.compute_output_shape(input_shape)
            except NotImplementedError:  # known from the first call instead
                pass
        self.built = True
        if not self._trainable:  # freeze weights made by build(); never unfreeze a child
            self.trainable = False
        device = getattr(self, "_device_hint", None)
        if device is not None:
            self.to(device)

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_mask(self, inputs, mask):
        return mask if self.supports_masking else None

    # ------------------------------------------------------------------ call
    def forward(self, *args, **kwargs):
        """Keras's ``call``: layers written the Keras way define ``call``, rnnkit's own ``forward``."""
        call = type(self).__dict__.get("call") or getattr(type(self), "call", None)
        if call is None or call is Layer.call:
            raise NotImplementedError(f"layer {self.name!r} ({type(self).__name__}) defines neither call() nor forward()")
        return call(self, *args, **kwargs)

    def call(self, *args, **kwargs):  # pragma: no cover - overridden by Keras-style layers
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        if not args:
            if "inputs" not in kwargs:
                raise TypeError(f"layer {self.name!r} ({type(self).__name__}) was called without inputs")
            args = (kwargs.pop("inputs"),)
        inputs, rest = args[0], args[1:]
        if any_symbolic(inputs, rest, kwargs):
            return symbolic_call(self, inputs, rest, kwargs)
        device = self._param_device()
        if isinstance(inputs, (list, tuple)):
            inputs = [self._cast_input(as_tensor(t, device)) for t in inputs]
        elif isinstance(inputs, dict):
            inputs = {k: self._cast_input(as_tensor(t, device)) for k, t in inputs.items()}
        else:
            inputs = self._cast_input(as_tensor(inputs, device))
        if not self.built:
            self.build_for(shape_of(inputs))
            self._param_device()  # now that the weights exist: their dtype, for the cast below
            if isinstance(inputs, list):
                inputs = [self._cast_input(t) for t in inputs]
            elif isinstance(inputs, torch.Tensor):
                inputs = self._cast_input(inputs)
        elif isinstance(inputs, torch.Tensor):
            self._check_input(inputs)
        rest = tuple(as_tensor(a, device) if isinstance(a, np.ndarray) else a for a in rest)
        mask = kwargs.get("mask")
        if mask is not None:
            first = inputs[0] if isinstance(inputs, list) else inputs
            if isinstance(first, dict):
                first = next(iter(first.values()))
            if isinstance(mask, (list, tuple)):
                kwargs["mask"] = [None if m is None else as_tensor(m, first.device).bool() for m in mask]
            elif isinstance(mask, dict):
                kwargs["mask"] = {k: None if m is None else as_tensor(m, first.device).bool() for k, m in mask.items()}
            else:
                kwargs["mask"] = as_tensor(mask, first.device).bool()
        return eager_call(self, inputs, rest, kwargs)

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
            # a weight made non-trainable (moving statistics, add_weight(trainable=False)) stays so
            p.requires_grad_(self._trainable and not getattr(p, "untrainable", False))

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
        """Weights as tensors in Keras's order and layout. Default, as Keras orders them: this
        layer's own weights (those created trainable first), then each sublayer's, in the order
        they were assigned."""
        return [w for part in self._weight_parts() for w in part[1]]

    def load_keras_weight_tensors(self, arrays: list[np.ndarray]) -> None:
        """Inverse of ``keras_weight_tensors``: copy Keras-layout arrays into the parameters."""
        i = 0
        for owner, ws in self._weight_parts():
            if owner is None:
                for p, a in zip(ws, arrays[i : i + len(ws)]):
                    p.data.copy_(torch.as_tensor(np.asarray(a), dtype=p.dtype))
            else:
                owner.load_keras_weight_tensors(arrays[i : i + len(ws)])
            i += len(ws)

    def _weight_parts(self) -> list:
        """``[(None, own parameters), (sublayer, its Keras weights), ...]``."""
        own = list(dict.fromkeys(p for p in self._parameters.values() if p is not None))
        own = ([p for p in own if not getattr(p, "untrainable", False)]
               + [p for p in own if getattr(p, "untrainable", False)])
        parts = [(None, own)]
        seen = {id(p) for p in own}

        def walk(module):
            for child in module.children():
                if isinstance(child, Layer):
                    ws = child.keras_weight_tensors()
                    if ws and not all(id(w) in seen for w in ws):
                        parts.append((child, ws))
                        seen.update(id(w) for w in ws)
                    for p in child.parameters():
                        seen.add(id(p))
                else:
                    own_params = [p for p in child._parameters.values() if p is not None and id(p) not in seen]
                    if own_params:
                        parts.append((None, own_params))
                        seen.update(id(p) for p in own_params)
                    walk(child)

        walk(self)
        return parts

    def add_weight(self, *args, shape=None, initializer=None, dtype=None, trainable=True, autocast=True,
                   regularizer=None, constraint=None, aggregation="none", overwrite_with_gradient=False,
                   name=None):
        """Create a weight of ``shape`` owned by this layer, as Keras's ``Layer.add_weight``.

        ``initializer``: a name (``"glorot_uniform"``, ``"zeros"``...), an initializer or a callable
        ``(shape) -> array`` (default ``glorot_uniform``; ``zeros`` for integer weights);
        ``regularizer`` adds its penalty to the training loss; ``trainable=False`` makes a weight the
        optimizer leaves alone (such weights come after the trainable ones in ``get_weights()``).
        Returns the ``torch.nn.Parameter``; assign it to an attribute as Keras code does.
        """
        if args:
            if len(args) > 3:
                raise TypeError(f"add_weight() takes at most 3 positional arguments, got {len(args)}")
            if isinstance(args[0], str):
                raise ValueError(f"add_weight: name must be passed as a keyword argument; got "
                                 f"add_weight({args[0]!r}, ...): use add_weight(shape=..., name={args[0]!r})")
            given = dict(zip(("shape", "initializer", "dtype"), args))
            shape = given.get("shape", shape)
            initializer = given.get("initializer", initializer)
            dtype = given.get("dtype", dtype)
        for arg, value, default in (("constraint", constraint, None), ("aggregation", aggregation, "none"),
                                    ("overwrite_with_gradient", overwrite_with_gradient, False),
                                    ("autocast", autocast, True)):
            if value != default and value is not default:
                raise ValueError(f"add_weight: {arg}={value!r} is not supported by rnnkit (only the default "
                                 f"{default!r})")
        from .. import initializers, regularizers

        shape = () if shape is None else tuple(int(d) for d in shape)
        tdtype = torch_dtype(dtype or "float32")
        if initializer is None:
            initializer = "glorot_uniform" if tdtype.is_floating_point else "zeros"
        init = initializers.get(initializer)
        values = torch.as_tensor(np.asarray(init(shape)) if not isinstance(init(shape), torch.Tensor) else init(shape))
        values = values.to(tdtype).reshape(shape).clone()
        trainable = bool(trainable) and tdtype.is_floating_point
        param = nn.Parameter(values, requires_grad=trainable and self._trainable)
        base = re.sub(r"\W", "_", name or "variable") or "variable"
        key, n = base, 1
        while key in self._parameters or key in self.__dict__ or key in self._modules:
            key, n = f"{base}_{n}", n + 1
        self.register_parameter(key, param)
        if not trainable:
            param.untrainable = True  # Keras lists it after the trainable weights; never unfrozen
        if regularizer is not None:
            if "_regularizers" not in self.__dict__:
                self._regularizers = []
            self._regularizers.append((key, regularizers.get(regularizer)))
        self.__dict__.pop("_device_cache", None)
        return param

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
        for layer in sublayers(self):  # a custom layer's or model's own layers (Keras sums them too)
            term = layer.regularization_loss()
            if term is not None:
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
        if name in ("input", "output") and "_inbound_nodes" in self.__dict__:
            self._only_node(name)  # raises the reason
        return super().__getattr__(name)

    @property
    def input(self):
        """The symbolic input(s) of this layer's one call in a functional graph (Keras's ``layer.input``)."""
        return self._only_node("input").args[0]

    @property
    def output(self):
        """The symbolic output(s) of this layer's one call in a functional graph (Keras's ``layer.output``)."""
        return self._only_node("output").outputs

    def _only_node(self, what: str):
        nodes = self.__dict__.get("_inbound_nodes") or []
        if not nodes:
            raise AttributeError(f"layer {self.name!r} has no {what}: it has not been called on a symbolic "
                                 f"tensor (keras.Input) in a functional model")
        if len(nodes) > 1:
            raise AttributeError(f"layer {self.name!r} has been called {len(nodes)} times (a shared layer), so it "
                                 f"has no single {what}; use the tensors its calls returned")
        return nodes[0]

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


def sublayers(module: nn.Module) -> list[Layer]:
    """The layers directly inside ``module`` (through plain containers such as ``nn.ModuleList``),
    in the order they were assigned: Keras's tracked sublayers."""
    out = []
    for child in module.children():
        if isinstance(child, Layer):
            out.append(child)
        else:
            out.extend(sublayers(child))
    return out


def _marking_built(build):
    @functools.wraps(build)
    def wrapper(self, input_shape=None, *args, **kwargs):
        if self.__dict__.get("_in_build_for") or self.__dict__.get("_in_user_build"):
            return build(self, input_shape, *args, **kwargs)
        self.__dict__["_in_user_build"] = True
        try:
            result = build(self, input_shape, *args, **kwargs)
        finally:
            self.__dict__["_in_user_build"] = False
        if input_shape is not None and not build.__module__.startswith("rnnkit.models"):
            self._finish_build(_as_shape(input_shape))
        return result

    wrapper._marks_built = True
    return wrapper


def _as_shape(shape):
    if isinstance(shape, dict):
        return {k: _as_shape(v) for k, v in shape.items()}
    if isinstance(shape, (list, tuple)) and shape and all(isinstance(s, (list, tuple)) for s in shape):
        return [tuple(s) for s in shape]
    return tuple(shape)


# What functional_call reads without importing Layer: a class whose forward is Layer's runs its
# ``call``; a compute_output_shape that is Layer's default describes only rnnkit's own layers.
Layer.forward.runs_call = True
Layer.compute_output_shape.is_layer_default = True
Layer.build = _marking_built(Layer.build)
