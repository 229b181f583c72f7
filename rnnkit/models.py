"""Models: ``Sequential`` (a stack of layers) with Keras's ``summary``, training and saving API.

``Model`` holds what every model shares (compile / fit / evaluate / predict,
save, summary); ``Sequential`` adds the stack: shape inference at construction,
mask propagation from layer to layer, and the final-activation shortcut that
lets cross-entropy losses work on logits.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from .layers.base import Layer, format_shape, unique_name
from .layers._fusion import embedded_call
from .layers.core import Embedding, InputLayer
from .layers.registry import deserialize_layer, serialize_layer
from .training.loop import Trainer


class Model(Trainer, Layer):
    """Base of rnnkit models: a Layer that can be compiled, trained, evaluated and saved."""

    def __init__(self, name: str | None = None, **kwargs):
        super().__init__(name=name or unique_name("model"), **kwargs)
        self.compiled = None  # set by compile(): a training.CompiledState
        self.stop_training = False

    # ------------------------------------------------------------- training
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, device="auto", precision="fp32", **kwargs):
        """Configure training, as ``keras.Model.compile``.

        Args:
            optimizer: name (``"adam"``, ``"sgd"``, ``"rmsprop"``, ``"adagrad"``, ``"adamw"``),
                an ``rnnkit.optimizers`` object, or a ``torch.optim.Optimizer`` class/instance.
            loss: name (``"categorical_crossentropy"``, ``"sparse_categorical_crossentropy"``,
                ``"binary_crossentropy"``, ``"mse"``, ``"mae"``) or a loss object/callable.
            metrics: list of names (``"accuracy"``, ...) or metric objects.
            device: ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``.
            precision: ``"fp32"``, ``"bf16"`` (autocast) or ``"fp16"`` (autocast + gradient scaling on CUDA).
        """
        from .training.compile import compile_model

        compile_model(self, optimizer=optimizer, loss=loss, metrics=metrics, device=device,
                      precision=precision, **kwargs)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, **kwargs):
        """Train for ``epochs`` passes over ``(x, y)``; returns a ``History``.

        As ``keras.Model.fit``: ``validation_split`` takes the *last* fraction of the
        samples before shuffling; ``validation_data=(x_val, y_val)`` or ``(x_val, y_val,
        sample_weight_val)``; ``callbacks`` get Keras's hooks. ``sample_weight`` (``(n,)``, or
        ``(n, steps)`` for sequence outputs) or ``class_weight`` (``{class: weight}``) weight
        the loss, ``sum(loss * weight) / count`` as in Keras; metrics stay unweighted, as
        Keras's ``metrics`` are. Progress: a bar per epoch (loss, metrics, samples/s, ETA)
        on a terminal, one line per epoch otherwise (``verbose=2``); 0 is silent.
        """
        from .training.loop import fit

        return fit(self, x, y, batch_size=batch_size, epochs=epochs, verbose=verbose, callbacks=callbacks,
                   validation_split=validation_split, validation_data=validation_data, shuffle=shuffle,
                   class_weight=class_weight, sample_weight=sample_weight, initial_epoch=initial_epoch,
                   steps_per_epoch=steps_per_epoch, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, verbose=0, sample_weight=None, steps=None,
                 return_dict=False, **kwargs):
        """Loss (and metrics) on ``(x, y)``: a float, a list ``[loss, *metrics]`` or a dict;
        ``sample_weight`` weights the loss as in `fit`; ``steps`` stops after that many batches."""
        from .training.loop import evaluate

        return evaluate(self, x, y, batch_size=batch_size, verbose=verbose, sample_weight=sample_weight,
                        steps=steps, return_dict=return_dict, **kwargs)

    def predict(self, x, batch_size=None, verbose=0, steps=None, **kwargs) -> np.ndarray:
        """Model outputs for ``x`` as a NumPy array, computed in inference mode in batches
        (only the first ``steps`` batches when given)."""
        from .training.loop import predict

        return predict(self, x, batch_size=batch_size, verbose=verbose, steps=steps, **kwargs)

    def predict_on_batch(self, x) -> np.ndarray:
        return self.predict(x, batch_size=len(x))

    def train_on_batch(self, x, y, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on ``(x, y)``. Returns the loss (weighted as in `fit`) when the
        model has no metrics, else ``[loss, *metrics]`` over this batch (a dict with
        ``return_dict``), as Keras does."""
        from .training.loop import train_on_batch

        return train_on_batch(self, x, y, sample_weight=sample_weight, class_weight=class_weight,
                              return_dict=return_dict)

    def test_on_batch(self, x, y, sample_weight=None, return_dict=False):
        """Loss (and metrics) on one batch in inference mode, as `train_on_batch` returns them."""
        from .training.loop import test_on_batch

        return test_on_batch(self, x, y, sample_weight=sample_weight, return_dict=return_dict)

    @property
    def optimizer(self):
        return None if self.compiled is None else self.compiled.optimizer

    @property
    def device(self) -> torch.device:
        return self._param_device() or torch.device("cpu")

    def to(self, *args, **kwargs):
        out = super().to(*args, **kwargs)
        for p in self.parameters():
            self._device_hint = p.device
            break
        else:
            device = torch._C._nn._parse_to(*args, **kwargs)[0]
            if device is not None:
                self._device_hint = device
        return out

    # -------------------------------------------------------------- saving
    def save(self, filepath, include_optimizer: bool = True, overwrite: bool = True) -> None:
        """Write config (JSON) and weights (+ optimizer state) to one safetensors file, atomically."""
        from .saving.native import save_model

        save_model(self, filepath, include_optimizer=include_optimizer, overwrite=overwrite)

    def save_weights(self, filepath) -> None:
        from .saving.native import save_weights

        save_weights(self, filepath)

    def load_weights(self, filepath) -> None:
        from .saving.native import load_weights

        load_weights(self, filepath)

    def regularization_loss(self):
        terms = [t for t in (layer.regularization_loss() for layer in self.layers) if t is not None]
        return sum(terms) if terms else None

    @property
    def losses(self) -> list[torch.Tensor]:
        r = self.regularization_loss()
        return [] if r is None else [r]


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

    # ------------------------------------------------------------- summary
    def summary(self, line_length: int | None = None, positions: Sequence[float] | None = None,
                print_fn: Callable[[str], None] | None = None) -> None:
        """Print the layer table in the classic tf.keras (2.3-2.6) layout.

        Args:
            line_length: total width (default 65).
            positions: right edge of each column, as fractions of ``line_length`` or
                absolute (default ``[.45, .85, 1.]``, i.e. 29, 55, 65).
            print_fn: called with each line (default ``print``).
        """
        if not self.built:
            raise ValueError(
                "This model has not yet been built. Build the model first by calling `build()` or "
                "calling `fit()` with some data, or specify an `input_shape` argument in the first "
                "layer(s) for automatic build."
            )
        print_fn = print_fn or print
        line_length = line_length or 65
        positions = list(positions or [0.45, 0.85, 1.0])
        if positions[-1] <= 1:
            positions = [int(line_length * p) for p in positions]

        def row(fields):
            line = ""
            for i, field in enumerate(fields):
                if i > 0:
                    line = line[:-1] + " "
                line += str(field)
                line = line[: positions[i]]
                line += " " * (positions[i] - len(line))
            print_fn(line)

        print_fn(f'Model: "{self.name}"')
        print_fn("_" * line_length)
        row(["Layer (type)", "Output Shape", "Param #"])
        print_fn("=" * line_length)
        for i, layer in enumerate(self._stack):
            shape = layer.output_shape
            shape_text = format_shape(shape) if not isinstance(shape, list) else str([tuple(s) for s in shape])
            row([f"{layer.name} ({type(layer).__name__})", shape_text, layer.count_params()])
            print_fn("=" * line_length if i == len(self._stack) - 1 else "_" * line_length)
        total = self.count_params()
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {trainable:,}")
        print_fn(f"Non-trainable params: {total - trainable:,}")
        print_fn("_" * line_length)

    def summary_text(self, **kwargs) -> str:
        lines: list[str] = []
        self.summary(print_fn=lines.append, **kwargs)
        return "\n".join(lines)

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
    def from_config(cls, config: dict) -> "Sequential":
        model = cls(name=config.get("name"))
        for spec in config["layers"]:
            model.add(deserialize_layer(spec))
        if not model.built and config.get("build_input_shape"):
            model.build_for(tuple(config["build_input_shape"]))
        return model
