"""``Model``: what every model shares — compile / fit / evaluate / predict, save, weights —
and the Keras subclassing API (``class M(keras.Model)`` with ``__init__`` and ``call``).
``Model(inputs, outputs)`` makes a functional model (`functional.Functional`), as in Keras."""
from __future__ import annotations

import numpy as np
import torch

from ..layers.base import Layer, shape_probe, sublayers, to_snake_case, unique_name
from ..training.loop import Trainer


class Model(Trainer, Layer):
    """A layer that can be compiled, trained, evaluated and saved; three ways to make one, as in Keras.

    * ``Model(inputs, outputs)`` — a functional model: the graph from ``keras.Input`` tensors to
      the tensors computed from them (`functional.Functional`).
    * ``Sequential([...])`` — a stack of layers.
    * a subclass that makes its layers in ``__init__`` and uses them in ``call(inputs, training=None,
      mask=None, ...)``; it is built by its first call (or ``build(input_shape)``, ``fit``, ``predict``).

    Example (subclassing)::

        class TextModel(keras.Model):
            def __init__(self, vocab_size, units):
                super().__init__()
                self.embedding = keras.layers.Embedding(vocab_size, 64)
                self.gru = keras.layers.GRU(units, return_sequences=True, return_state=True)
                self.dense = keras.layers.Dense(vocab_size)

            def call(self, inputs, states=None, return_state=False, training=False):
                x = self.embedding(inputs, training=training)
                x, states = self.gru(x, initial_state=states, training=training)
                x = self.dense(x, training=training)
                return (x, states) if return_state else x
    """

    # The class ``Model(inputs, outputs)`` makes; models.functional (which imports this
    # module) sets it when it defines `Functional`.
    _functional: type | None = None

    def __new__(cls, *args, **kwargs):
        if cls is Model and (len(args) >= 2 or "inputs" in kwargs or "outputs" in kwargs):
            return Layer.__new__(Model._functional)
        return Layer.__new__(cls)

    def __init__(self, *args, name: str | None = None, **kwargs):
        if args or "inputs" in kwargs or "outputs" in kwargs:
            raise TypeError(
                f"{type(self).__name__}: a subclassed model takes its layers in __init__ and its inputs in "
                f"call(); Model(inputs, outputs) makes a functional model only when called on Model itself"
            )
        super().__init__(name=name or unique_name(to_snake_case(type(self).__name__)
                                                  if type(self).__module__.split(".")[0] != "rnnkit"
                                                  else "model"), **kwargs)
        self.compiled = None  # set by compile(): a training.CompiledState
        self.stop_training = False

    # ---------------------------------------------------------- subclassing
    @property
    def layers(self) -> list[Layer]:
        """The model's own layers, in the order they were assigned (Keras's tracked layers)."""
        return sublayers(self)

    def build(self, input_shape=None) -> None:
        """Build a subclassed model's layers by calling it once on zeros of ``input_shape``
        (batch axis first; None axes become 1), as Keras builds a model whose build() is not its own."""
        if input_shape is None:
            raise ValueError(f"model {self.name!r}: build() needs an input shape, e.g. build((None, 33))")
        if self.built and self.__dict__.get("_built_by_call"):
            return
        from ..layers.symbolic import KerasTensor, map_structure, stand_in

        def placeholder(shape):
            shape = tuple(1 if d is None else d for d in shape)
            return stand_in(KerasTensor(shape), 0) * 0

        shape = input_shape
        if isinstance(shape, (list, tuple)) and shape and all(isinstance(s, (list, tuple)) for s in shape):
            x = [placeholder(s) for s in shape]
        elif isinstance(shape, dict):
            x = {k: placeholder(v) for k, v in shape.items()}
        else:
            x = placeholder(shape)
        self.build_from_data(x)
        self._build_input_shape = shape

    def build_from_data(self, x) -> None:
        """Create a subclassed model's weights by one inference call on ``x`` that changes nothing
        (no state carried, no statistics updated)."""
        was_training = self.training
        self.eval()
        with torch.no_grad(), shape_probe(), torch.random.fork_rng(devices=[]):
            self.__dict__["_building_by_call"] = True
            try:
                self(x, training=False)
            finally:
                self.__dict__["_building_by_call"] = False
        self.train(was_training)
        self.built = True
        self.__dict__["_built_by_call"] = True

    def build_for(self, input_shape) -> None:
        if type(self).build is Model.build and not self.built:
            # A subclassed model without its own build(): its layers build on the first call,
            # which marks the model built (functional_call.eager_call).
            self._build_input_shape = input_shape
            return
        super().build_for(input_shape)

    def _check_shape(self, got) -> None:
        return  # a subclassed model's call decides what it takes (any length, extra arguments)

    @property
    def needs_data_build(self) -> bool:
        """Whether only a call on data can create this (subclassed) model's weights."""
        return not self.built and type(self).build is Model.build

    def reset_states(self) -> None:
        """Set every stateful recurrent layer's carried states back to zeros (Keras 2's ``reset_states``)."""
        from ..layers.recurrent import reset_states

        reset_states(self)

    reset_state = reset_states

    def get_config(self) -> dict:
        raise NotImplementedError(
            f"model {self.name!r} ({type(self).__name__}) is a subclassed model: define get_config() (and "
            f"from_config()) to save or clone it, as in Keras; save_weights/load_weights work without them"
        )

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        if cls is Model and isinstance(config, dict) and "input_layers" in config and "layers" in config:
            return Model._functional.from_config(config, custom_objects=custom_objects)
        return cls(**config)

    def to_json(self, **kwargs) -> str:
        """The model's architecture as JSON (``keras.models.model_from_json`` reads it back)."""
        import json

        from ..layers.registry import serialize_layer

        return json.dumps({**serialize_layer(self), "backend": "rnnkit"}, **kwargs)

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False, show_trainable=False):
        """Print the layer table in the classic tf.keras layout (see `summary.print_summary`)."""
        from .summary import print_summary

        print_summary(self, line_length=line_length, positions=positions, print_fn=print_fn,
                      expand_nested=expand_nested, show_trainable=show_trainable)

    def summary_text(self, **kwargs) -> str:
        lines: list[str] = []
        self.summary(print_fn=lines.append, **kwargs)
        return "\n".join(lines)

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(
                f"model {self.name!r} has not been built yet: call it on a batch, call model.build(input_shape) "
                f"or fit it first"
            )
        return sum(p.numel() for p in self.parameters())

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
        from ..training.compile import compile_model

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
        from ..training.loop import fit

        return fit(self, x, y, batch_size=batch_size, epochs=epochs, verbose=verbose, callbacks=callbacks,
                   validation_split=validation_split, validation_data=validation_data, shuffle=shuffle,
                   class_weight=class_weight, sample_weight=sample_weight, initial_epoch=initial_epoch,
                   steps_per_epoch=steps_per_epoch, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, verbose=0, sample_weight=None, steps=None,
                 return_dict=False, **kwargs):
        """Loss (and metrics) on ``(x, y)``: a float, a list ``[loss, *metrics]`` or a dict;
        ``sample_weight`` weights the loss as in `fit`; ``steps`` stops after that many batches."""
        from ..training.loop import evaluate

        return evaluate(self, x, y, batch_size=batch_size, verbose=verbose, sample_weight=sample_weight,
                        steps=steps, return_dict=return_dict, **kwargs)

    def predict(self, x, batch_size=None, verbose=0, steps=None, **kwargs) -> np.ndarray:
        """Model outputs for ``x`` as a NumPy array, computed in inference mode in batches
        (only the first ``steps`` batches when given)."""
        from ..training.loop import predict

        return predict(self, x, batch_size=batch_size, verbose=verbose, steps=steps, **kwargs)

    def predict_on_batch(self, x) -> np.ndarray:
        return self.predict(x, batch_size=len(x))

    def train_on_batch(self, x, y, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on ``(x, y)``. Returns the loss (weighted as in `fit`) when the
        model has no metrics, else ``[loss, *metrics]`` over this batch (a dict with
        ``return_dict``), as Keras does."""
        from ..training.loop import train_on_batch

        return train_on_batch(self, x, y, sample_weight=sample_weight, class_weight=class_weight,
                              return_dict=return_dict)

    def test_on_batch(self, x, y, sample_weight=None, return_dict=False):
        """Loss (and metrics) on one batch in inference mode, as `train_on_batch` returns them."""
        from ..training.loop import test_on_batch

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
        from ..saving.native import save_model

        save_model(self, filepath, include_optimizer=include_optimizer, overwrite=overwrite)

    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs) -> None:
        """Export the model for inference, as Keras 3's ``Model.export``: ``format="onnx"`` (the one
        format rnnkit writes; Keras's default ``"tf_saved_model"`` and its other formats are refused),
        ``input_signature`` (one spec per input; None axes dynamic), ``opset_version`` (default 17).
        See `rnnkit.export.keras_model`."""
        from ..export.keras_model import export_keras_model

        export_keras_model(self, filepath, format, verbose, input_signature, **kwargs)

    def save_weights(self, filepath) -> None:
        from ..saving.native import save_weights

        save_weights(self, filepath)

    def load_weights(self, filepath) -> None:
        from ..saving.native import load_weights

        load_weights(self, filepath)

    @property
    def losses(self) -> list[torch.Tensor]:
        r = self.regularization_loss()
        return [] if r is None else [r]


