"""RNN cells, as Keras's: one time step of SimpleRNN, LSTM and GRU, and a stack of cells.

A cell computes one step: ``cell(inputs (batch, features), states)`` returns
``(output (batch, units), new_states)``. `rnnkit.layers.RNN` runs a cell over the time
axis. The built-in cells hold the same parameters as the layers (PyTorch's layout, see
`rnnkit.layers.recurrent`; ``get_weights`` gives Keras's ``[kernel, recurrent_kernel,
bias]``), so ``RNN(LSTMCell(u))`` computes exactly what ``LSTM(u)`` does, on the same
fused op.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Layer, as_tensor
from .recurrent import (
    _GRUMath, _LSTMMath, _Recurrence, _SimpleRNNMath, build_cell, cell_caller, cell_output_size, check_cell,
)
from .registry import deserialize_layer, register, serialize_layer


class _Cell(_Recurrence, Layer):
    """What the built-in cells share: Keras's cell arguments, ``build``, one ``call`` step."""

    def __init__(
        self,
        units: int,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._init_recurrence(
            units, activation, recurrent_activation, use_bias, kernel_initializer, recurrent_initializer,
            bias_initializer, kernel_regularizer, recurrent_regularizer, bias_regularizer, dropout, recurrent_dropout,
        )

    @property
    def state_size(self):
        return [self.units, self.units] if self.n_states == 2 else self.units

    @property
    def output_size(self) -> int:
        return self.units

    def build(self, input_shape):
        if len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(
                f"cell {self.name!r} ({type(self).__name__}) takes one step's inputs of shape "
                f"(batch, features), got {tuple(input_shape)}"
            )
        self._build_weights(input_shape[-1])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_initial_state(self, batch_size=None) -> list[torch.Tensor]:
        """Zero states, each ``(batch_size, units)``."""
        device = self.weight_ih.device if self.built else None
        return [torch.zeros(batch_size, self.units, device=device) for _ in range(self.n_states)]

    def forward(self, inputs, states, training=None):
        """One step: ``inputs (batch, features)``, ``states`` a list (or, for one state, a
        tensor) of ``(batch, units)``. Returns ``(output, new_states)``; the new states are a
        list, or a tensor where one came in (Keras's rule; LSTMCell always gives ``[h, c]``)."""
        training = self.training if training is None else training
        as_list = isinstance(states, (list, tuple))
        given = [as_tensor(s, inputs.device).to(inputs.dtype) for s in (states if as_list else [states])]
        if len(given) != self.n_states or any(tuple(s.shape) != (inputs.shape[0], self.units) for s in given):
            raise ValueError(
                f"cell {self.name!r} ({type(self).__name__}) takes {self.n_states} state tensor(s) of shape "
                f"{(inputs.shape[0], self.units)}, got {[tuple(s.shape) for s in given]}"
            )
        if training and self.dropout > 0:
            keep = torch.empty(inputs.shape, device=inputs.device).bernoulli_(1 - self.dropout)
            inputs = inputs * keep / (1 - self.dropout)
        out, new_states = self.step(F.linear(inputs, self.weight_ih, self.bias_ih), given,
                                    self._recurrent_keep(given[0], training))
        if not as_list and self.n_states == 1:
            return out, new_states[0]
        return out, new_states

    def get_config(self):
        cfg = super().get_config()
        cfg.update(self._recurrence_config())
        return cfg


class SimpleRNNCell(_SimpleRNNMath, _Cell):
    """One step of `SimpleRNN`: ``h = activation(x W + h_prev U + b)``, as ``keras.layers.SimpleRNNCell``.

    Args: ``units``, ``activation="tanh"``, ``use_bias=True``,
    ``kernel_initializer="glorot_uniform"``, ``recurrent_initializer="orthogonal"``,
    ``bias_initializer="zeros"``, the three regularizers, ``dropout=0.0`` (on the
    inputs), ``recurrent_dropout=0.0`` (on ``h_prev``), while training.

    ``state_size = output_size = units``. Call: ``cell(x (batch, features), [h])`` ->
    ``(h, [h])``.
    """

    def __init__(self, units, activation="tanh", **kwargs):
        if "recurrent_activation" in kwargs:
            raise TypeError("SimpleRNNCell() has no recurrent_activation (it has one activation)")
        super().__init__(units, activation=activation, **kwargs)

    def get_config(self):
        cfg = super().get_config()
        cfg.pop("recurrent_activation", None)
        return cfg


class LSTMCell(_LSTMMath, _Cell):
    """One step of `LSTM`, as ``keras.layers.LSTMCell``.

    Args: as `SimpleRNNCell`, plus ``recurrent_activation="sigmoid"`` and
    ``unit_forget_bias=True`` (forget-gate bias initialised to 1).

    ``state_size = [units, units]`` (``[h, c]``), ``output_size = units``. Call:
    ``cell(x (batch, features), [h, c])`` -> ``(h, [h, c])``.
    """

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", unit_forget_bias=True, **kwargs):
        super().__init__(units, activation=activation, recurrent_activation=recurrent_activation, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)


class GRUCell(_GRUMath, _Cell):
    """One step of `GRU`, as ``keras.layers.GRUCell``.

    Args: as `LSTMCell` without ``unit_forget_bias``, plus ``reset_after=True``
    (bias ``(2, 3u)``, PyTorch/cuDNN's formulation; False: ``(3u,)``, reset before the
    recurrent product).

    ``state_size = output_size = units``. Call: ``cell(x, [h])`` -> ``(h, [h])``.
    """

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", reset_after=True, **kwargs):
        super().__init__(units, activation=activation, recurrent_activation=recurrent_activation, **kwargs)
        self.reset_after = bool(reset_after)


class StackedRNNCells(Layer):
    """Several cells as one, each feeding its output to the next, as ``keras.layers.StackedRNNCells``.

    Args:
        cells: a list of cells (built-in or your own, see `rnnkit.layers.RNN`).

    ``state_size`` is the list of the cells' ``state_size``; ``output_size`` the last
    cell's. Call: ``cell(x, states)`` with one entry per cell (its state tensor, or list
    of them) -> ``(last output, new states)`` in the same structure.

    Example:
        >>> RNN(StackedRNNCells([LSTMCell(8), GRUCell(4)]))(np.zeros((2, 5, 3), "float32")).shape
        torch.Size([2, 4])
    """

    def __init__(self, cells, **kwargs):
        super().__init__(**kwargs)
        cells = list(cells)
        if not cells:
            raise ValueError("StackedRNNCells: cells must be a non-empty list of RNN cells")
        for cell in cells:
            check_cell("StackedRNNCells", cell)
        self.cells = torch.nn.ModuleList(cells) if all(isinstance(c, torch.nn.Module) for c in cells) else cells
        self._callers = [cell_caller(c) for c in cells]

    @property
    def state_size(self):
        return [c.state_size for c in self.cells]

    @property
    def output_size(self) -> int:
        return cell_output_size(self.cells[-1])

    def build(self, input_shape):
        batch = input_shape[0]
        for cell in self.cells:
            build_cell(cell, input_shape)
            input_shape = (batch, cell_output_size(cell))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_size)

    def get_initial_state(self, batch_size=None) -> list:
        states = []
        for cell in self.cells:
            fn = getattr(cell, "get_initial_state", None)
            if callable(fn):
                states.append(fn(batch_size=batch_size))
            elif isinstance(cell.state_size, int):
                states.append(torch.zeros(batch_size, cell.state_size))
            else:
                states.append([torch.zeros(batch_size, n) for n in cell.state_size])
        return states

    def forward(self, inputs, states, training=None):
        training = self.training if training is None else training
        new_states = []
        for call, cell_states in zip(self._callers, states):
            as_list = isinstance(cell_states, (list, tuple))
            inputs, cell_states = call(inputs, list(cell_states) if as_list else [cell_states], training)
            if not isinstance(cell_states, (list, tuple)):
                cell_states = [cell_states]
            new_states.append(cell_states[0] if len(cell_states) == 1 and not as_list else list(cell_states))
        return inputs, new_states[0] if len(new_states) == 1 else new_states

    def keras_weight_tensors(self):
        return [w for c in self.cells if isinstance(c, Layer) for w in c.keras_weight_tensors()]

    def load_keras_weight_tensors(self, arrays):
        i = 0
        for c in self.cells:
            if isinstance(c, Layer):
                n = len(c.keras_weight_tensors())
                c.load_keras_weight_tensors(arrays[i : i + n])
                i += n

    def regularization_loss(self):
        terms = [t for c in self.cells if isinstance(c, Layer) for t in [c.regularization_loss()] if t is not None]
        return sum(terms) if terms else None

    def get_config(self):
        cfg = super().get_config()
        cfg["cells"] = [serialize_layer(c) for c in self.cells]
        return cfg

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls([deserialize_layer(c) for c in config.pop("cells")], **config)


for _cls in (SimpleRNNCell, LSTMCell, GRUCell, StackedRNNCells):
    register(_cls)
