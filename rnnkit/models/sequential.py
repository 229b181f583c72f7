"""``Sequential``: a stack of layers, with shape inference at construction, mask propagation
from layer to layer, and the final-activation shortcut that lets cross-entropy losses work on
logits."""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from ..layers.base import Layer, format_shape, unique_name
from ..layers._fusion import embedded_call
from ..layers.core import Embedding, InputLayer
from ..layers.registry import deserialize_layer, serialize_layer
from .model import Model


class Sequential(Model):
    """A linear stack of layers, as ``keras.Sequential``.

    Shapes are inferred as layers are added once the input shape is known
    (``input_shape=`` on the first layer, ``rnnkit.Input(shape)`` first, or the
    first batch it is called on). Masks from ``Embedding(mask_zero=True)`` travel
    down the stack to the layers that use them.

    Example:
        >>> model = Sequential([
        ...     Embedding(120, 42, input_shape=(33,)),
        ...     Bidirectional(LSTM(56, return_sequences=True)),
        ...     Bidirectional(LSTM(12)),
        ...     Dense(8),
        ... ])
        >>> model.count_params()
        61592
    """

    _sequential = True  # how the fit loop tells a stack of layers (training.loop.Trainer)

    def __init__(self, layers: Iterable[Layer] | None = None, name: str | None = None, **kwargs):
        super().__init__(name=name or unique_name("sequential"), **kwargs)
        self._stack = nn.ModuleList()
        self._input_layer: InputLayer | None = None
        for layer in layers or ():
            self.add(layer)

    # --------------------------------------------------------------- stack
    @property
    def layers(self) -> list[Layer]:
        return list(self._stack)

    def add(self, layer: Layer) -> None:
        """Append ``layer``; builds it at once when the input shape is known."""
        from ..layers.symbolic import KerasTensor

        if isinstance(layer, KerasTensor):  # keras.Input(...) first in the list
            if not isinstance(layer.layer, InputLayer):
                raise TypeError(f"model {self.name!r}: Sequential takes layers (and one keras.Input first), got "
                                f"the symbolic output of layer {layer.layer.name!r}")
            layer = layer.layer
        if isinstance(layer, InputLayer):
            if len(self._stack) or self._input_layer is not None:
                raise ValueError(f"model {self.name!r}: an Input can only be the first element of a Sequential")
            self._input_layer = layer
            self._batch_input_shape = layer.shape
            return
        if not isinstance(layer, Layer):
            raise TypeError(
                f"model {self.name!r}: Sequential takes rnnkit layers, got {type(layer).__name__}"
            )
        if any(existing.name == layer.name for existing in self._stack):
            raise ValueError(
                f"model {self.name!r}: all layers must have unique names; {layer.name!r} is already in the model"
            )
        self._stack.append(layer)
        self.__dict__.pop("_fitting_shapes", None)
        if len(self._stack) == 1 and self._batch_input_shape is None and layer._batch_input_shape is not None:
            self._batch_input_shape = layer._batch_input_shape
        if self._batch_input_shape is not None:
            self.built = False
            self.build_for(self._batch_input_shape)

    def pop(self) -> Layer:
        if not self._stack:
            raise ValueError(f"model {self.name!r} has no layers to pop")
        layer = self._stack[-1]
        del self._stack[-1]
        self.__dict__.pop("_fitting_shapes", None)
        if self.built:
            self._output_shape = self._stack[-1].output_shape if self._stack else self._build_input_shape
        return layer

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """The layer called ``name``, or at position ``index``."""
        if index is not None:
            if not -len(self._stack) <= index < len(self._stack):
                raise ValueError(f"model {self.name!r} has {len(self._stack)} layers; index {index} is out of range")
            return self._stack[index]
        for layer in self._stack:
            if layer.name == name:
                return layer
        raise ValueError(
            f"model {self.name!r} has no layer named {name!r}; its layers are "
            f"{', '.join(l.name for l in self._stack)}"
        )

    def build(self, input_shape=None) -> None:
        """Build every layer for ``input_shape`` (batch axis first, as ``keras.Model.build``;
        None: the declared input shape)."""
        if input_shape is None:
            input_shape = self._batch_input_shape
            if input_shape is None:
                raise ValueError(f"model {self.name!r}: build() needs an input shape, e.g. build((None, 33))")
        shape = tuple(input_shape)
        if not self.__dict__.get("_building"):  # called directly, not by build_for
            if self.built:
                self._check_shape(shape)
            else:
                self.build_for(shape)  # which records the shapes, then comes back here
            return
        self.__dict__.pop("_fitting_shapes", None)
        for i, layer in enumerate(self._stack):
            if isinstance(shape, list):
                prev = self._stack[i - 1]
                raise ValueError(
                    f"model {self.name!r}: layer {prev.name!r} has {len(shape)} outputs (return_state=True?); "
                    f"a Sequential layer must have exactly one output"
                )
            if layer.built:
                layer._check_shape(shape)  # a layer built elsewhere must accept this stack's shape
            else:
                layer.build_for(shape)
            shape = layer.compute_output_shape(shape)
        self._final_shape = shape

    def build_for(self, input_shape) -> None:
        self._building = True
        try:
            super().build_for(input_shape)
        finally:
            self._building = False

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self._stack:
            shape = layer.compute_output_shape(shape)
        return shape

    def _check_shape(self, got) -> None:
        # Every layer was checked as the stack was built. An input of another shape (say,
        # another length) is walked through the stack once, so that a layer it does not
        # fit is named with what it expected, rather than failing deep inside a kernel.
        key = tuple(got[1:])
        fitting = self.__dict__.setdefault("_fitting_shapes", set())
        if key in fitting:
            return
        shape = tuple(got)
        for layer in self._stack:
            if not layer.built or isinstance(shape, list):
                break
            layer._check_shape(shape)
            shape = layer.compute_output_shape(shape)
        if len(fitting) < 1024:
            fitting.add(key)

    # ------------------------------------------------------------- forward
    def forward(self, inputs, mask=None, training=None, return_logits: bool = False, with_mask: bool = False):
        out, out_mask = self.forward_with_mask(inputs, mask=mask, training=training, return_logits=return_logits)
        return (out, out_mask) if with_mask else out

    def forward_with_mask(self, inputs, mask=None, training=None, return_logits: bool = False):
        """Run the stack; returns ``(output, output_mask)``.

        With ``return_logits`` the final layer's activation is left out (only when
        ``final_activation`` names one), so losses can use the stable logit form.
        """
        if not self._stack:
            raise ValueError(f"model {self.name!r} has no layers")
        x = inputs
        last = len(self._stack) - 1
        fused = -1  # index of a layer already computed together with the embedding before it
        for i, layer in enumerate(self._stack):
            if i == fused:
                continue
            kwargs = {"training": training}
            if mask is not None and layer.supports_masking:
                kwargs["mask"] = mask
            y = None
            nxt = self._stack[i + 1] if i < last else None
            if (isinstance(layer, Embedding) and hasattr(nxt, "reads_table")
                    and not (i + 1 == last and return_logits)):
                # Embedding -> MinGRU/MinLSTM: the recurrent layer reads the table's rows (layers/_fusion.py)
                emb_mask = layer.compute_mask(x, mask)
                y = embedded_call(layer, nxt, x, emb_mask if nxt.supports_masking else None, training)
                if y is not None:
                    layer, mask, fused = nxt, emb_mask, i + 1
            if y is None and i == last and return_logits:
                y = layer.logits(x)
            elif y is None:
                # The model's own call has converted, placed and checked the input, and the
                # layers' shapes were checked as the stack was built, so each layer runs as a
                # plain module: Layer.__call__'s per-call conversions cost more than a small step.
                y = nn.Module.__call__(layer, x, **kwargs)
            if isinstance(y, list):
                raise ValueError(
                    f"model {self.name!r}: layer {layer.name!r} returned {len(y)} outputs (return_state=True?); "
                    f"a Sequential layer must have exactly one output"
                )
            mask = layer.compute_mask(x, mask)
            x = y
        return x, mask

    @property
    def final_activation(self) -> str | None:
        """Name of the last layer's activation when it is a Dense or Activation layer."""
        if not self._stack:
            return None
        last = self._stack[-1]
        return getattr(last, "activation_name", None) if hasattr(last, "logits") else None

    # ------------------------------------------------------------- weights
    def keras_weight_tensors(self):
        return [w for layer in self._stack for w in layer.keras_weight_tensors()]

    def load_keras_weight_tensors(self, arrays):
        i = 0
        for layer in self._stack:
            n = len(layer.keras_weight_tensors())
            layer.load_keras_weight_tensors(arrays[i : i + n])
            i += n

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(
                f"model {self.name!r} has not been built yet: give the first layer input_shape=..., "
                f"start with rnnkit.Input(shape), or call the model on a batch first"
            )
        return sum(layer.count_params() for layer in self._stack)

    # -------------------------------------------------------------- config
    def get_config(self) -> dict:
        layers = []
        if self._input_layer is not None:
            layers.append(serialize_layer(self._input_layer))
        layers += [serialize_layer(layer) for layer in self._stack]
        cfg = {"name": self.name, "layers": layers}
        if self.built and self._build_input_shape is not None:
            cfg["build_input_shape"] = list(self._build_input_shape)
        return cfg

    @classmethod
    def from_config(cls, config: dict, custom_objects=None) -> "Sequential":
        model = cls(name=config.get("name"))
        for spec in config["layers"]:
            model.add(deserialize_layer(spec, custom_objects=custom_objects))
        if not model.built and config.get("build_input_shape"):
            model.build_for(tuple(config["build_input_shape"]))
        return model
