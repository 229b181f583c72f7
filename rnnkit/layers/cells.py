"""RNN cells, as Keras's: one time step of SimpleRNN, LSTM and GRU, a stack of cells, and
the ``RNN(cell)`` layer that runs a cell over time.

A cell computes one step: ``cell(inputs (batch, features), states)`` returns
``(output (batch, units), new_states)``. `rnnkit.layers.RNN` runs a cell over the time
axis. The built-in cells hold the same parameters as the layers (PyTorch's layout, see
`rnnkit.layers.recurrent`; ``get_weights`` gives Keras's ``[kernel, recurrent_kernel,
bias]``), so ``RNN(LSTMCell(u))`` computes exactly what ``LSTM(u)`` does, on the same
fused op.
"""
from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn

from .base import Layer, as_tensor
from .recurrent import RecurrentBase, _GRUMath, _LSTMMath, _Recurrence, _SimpleRNNMath, step_loop
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


# ------------------------------------------------------------ the RNN layer over a cell
def _state_entries(state_size) -> list:
    """A cell's ``state_size`` as Keras's RNN reads it: a list with one entry per state, each
    an int (one tensor) or a list of ints (a nested list of tensors, as `StackedRNNCells` has)."""
    entries = [state_size] if isinstance(state_size, int) else list(state_size)
    for e in entries:
        if not (isinstance(e, int) or (isinstance(e, (list, tuple)) and all(isinstance(n, int) for n in e))):
            raise ValueError(f"RNN: a cell's state_size must be an int or a list of ints, got {state_size!r}")
    return [e if isinstance(e, int) else list(e) for e in entries]


def _template(states):
    """The nesting of a state structure, tensors replaced by None."""
    return [_template(s) for s in states] if isinstance(states, (list, tuple)) else None


def _flatten(states) -> list:
    if isinstance(states, (list, tuple)):
        return [t for s in states for t in _flatten(s)]
    return [states]


def check_cell(owner: str, cell) -> None:
    """Keras's requirements on an RNN cell: a ``call`` (or, for an rnnkit layer, ``forward``) and a ``state_size``."""
    if isinstance(cell, (list, tuple)) or not (callable(getattr(cell, "call", None)) or isinstance(cell, Layer)):
        raise ValueError(f"{owner}: a cell must have a call(inputs, states) method, got {cell!r}")
    if getattr(cell, "state_size", None) is None:
        raise ValueError(f"{owner}: a cell must have a state_size attribute (an int, or a list of ints, one per "
                         f"state), got {type(cell).__name__} without one")
    _state_entries(cell.state_size)


def cell_caller(cell):
    """``fn(inputs, states, training)`` calling ``cell`` one step as Keras does: through the layer
    call where the cell is an rnnkit layer with a ``forward``, else its ``call``; ``training``
    only where that takes it."""
    if isinstance(cell, nn.Module) and type(cell).forward is not nn.Module.forward:
        fn, params = cell, inspect.signature(type(cell).forward).parameters
    else:
        fn, params = cell.call, inspect.signature(cell.call).parameters
    if "training" in params:
        return lambda x, states, training: fn(x, states, training=training)
    return lambda x, states, training: fn(x, states)


def build_cell(cell, step_shape) -> None:
    """Build ``cell`` for one step's inputs ``(batch, features)`` (as Keras's RNN.build)."""
    if isinstance(cell, Layer):
        cell.build_for(step_shape)
    elif callable(getattr(cell, "build", None)) and not getattr(cell, "built", False):
        cell.build(step_shape)
        cell.built = True


def cell_output_size(cell) -> int:
    """Keras's rule: ``output_size`` where the cell has one, else its first state's width."""
    size = getattr(cell, "output_size", None)
    if size is None:
        first = _state_entries(cell.state_size)[0]
        size = first if isinstance(first, int) else first[0]
    return size


class RNN(RecurrentBase):
    """Runs a cell over the time axis, as ``keras.layers.RNN``.

    Args:
        cell: an RNN cell — `SimpleRNNCell`, `LSTMCell`, `GRUCell`, `StackedRNNCells`, a
            list of cells (stacked), or your own: an object with ``state_size`` (int, or a
            list of ints, one per state), optionally ``output_size``, ``build(input_shape)``
            and ``call(inputs, states[, training])`` returning ``(output, new_states)``. It
            receives the states as a tuple (as Keras does; a list inside `StackedRNNCells`),
            also for an int ``state_size``. Make it an rnnkit
            ``Layer`` so its weights are the model's (``get_weights``, training).
        return_sequences: default False; output every step ``(batch, time, output_size)``.
        return_state: default False; also return the final states ``[output, *states]``.
        go_backwards: default False; process the sequence in reverse (outputs in processing order).
        stateful: default False; carry the final states to the next call (see `RecurrentBase`).
        unroll: default False; accepted with Keras's meaning — the steps run eagerly either
            way, with the same numbers.
        zero_output_for_mask: default False; zeros at masked steps instead of the previous output.

    Call arguments: ``inputs (batch, time, features)``, ``mask (batch, time)`` (a masked
    step keeps the states and repeats the previous output), ``initial_state`` (a list as
    the cell's states), ``training`` (passed to cells whose call takes it).

    ``RNN(LSTMCell(u))``, ``RNN(GRUCell(u))`` and ``RNN(SimpleRNNCell(u))`` hold the same
    weights as ``LSTM(u)`` etc. and run the same fused op where that layer would.

    Example:
        >>> RNN(LSTMCell(8), return_sequences=True)(np.zeros((2, 5, 3), "float32")).shape
        torch.Size([2, 5, 8])
    """

    def __init__(
        self,
        cell,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        zero_output_for_mask: bool = False,
        **kwargs,
    ):
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(cell)
        check_cell("RNN", cell)
        super().__init__(**kwargs)
        self.cell = cell
        self._init_sequence(return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask)
        self._entries = _state_entries(cell.state_size)
        self._call_cell = None if isinstance(cell, _Recurrence) else cell_caller(cell)
        self._template = [None if isinstance(e, int) else [None] * len(e) for e in self._entries]

    # What `RecurrentBase.run` and `Bidirectional` read: the built-in cells' own recurrence
    # (so the fused op runs), a generic step loop over any other cell.
    @property
    def units(self) -> int:
        return cell_output_size(self.cell)

    @property
    def state_sizes(self) -> list[int]:
        return [n for e in self._entries for n in ([e] if isinstance(e, int) else e)]

    @property
    def n_states(self) -> int:
        return len(self.state_sizes)

    @property
    def dropout(self) -> float:
        return self.cell.dropout if self._call_cell is None else 0.0

    @property
    def use_bias(self) -> bool:
        return self.cell.use_bias if self._call_cell is None else True

    def fused_mode(self, training):
        return self.cell.fused_mode(training) if self._call_cell is None else None

    def flat_weights(self):
        return self.cell.flat_weights()

    def build(self, input_shape):
        super().build(input_shape)
        build_cell(self.cell, (input_shape[0],) + tuple(input_shape[2:]))

    def _nest(self, flat: list) -> list:
        """Flat state tensors in the structure of this call's initial state (Keras keeps that
        structure: a GRUCell inside StackedRNNCells starts from ``[h]`` and returns ``[h]``)."""
        flat = iter(flat)

        def fill(t):
            return next(flat) if t is None else [fill(e) for e in t]

        return [fill(t) for t in self._template]

    def get_initial_state(self, batch_size: int) -> list:
        """The cell's ``get_initial_state`` where it has one, else zeros shaped by ``state_size`` (as Keras)."""
        fn = getattr(self.cell, "get_initial_state", None)
        if callable(fn):
            states = fn(batch_size=batch_size)
            return list(states) if isinstance(states, (list, tuple)) else [states]
        return [torch.zeros(batch_size, e) if isinstance(e, int) else [torch.zeros(batch_size, n) for n in e]
                for e in self._entries]

    def initial_states(self, x, initial_state):
        if initial_state is None and self._call_cell is not None and callable(getattr(self.cell, "get_initial_state", None)):
            initial_state = self.cell.get_initial_state(batch_size=x.shape[0])
        if initial_state is None:
            self._template = [None if isinstance(e, int) else [None] * len(e) for e in self._entries]
        elif isinstance(initial_state, (list, tuple)):
            self._template = [_template(e) for e in initial_state]
            initial_state = _flatten(initial_state)
        else:
            self._template = [None]
        return super().initial_states(x, initial_state)

    def _keep_states(self, finals):
        super()._keep_states(self._nest(finals) if self.stateful else finals)

    def _loop(self, x, mask, states, training, last_only=False):  # every step's output: last_only unused
        if self._call_cell is None:
            return self.cell._loop(x, mask, states, training)

        def step(t, states):
            # A tuple, as Keras's backends hand the states to the cell (nested entries are lists).
            out, new_states = self._call_cell(x[:, t], tuple(self._nest(states)), training)
            new_states = _flatten(new_states)
            if len(new_states) != len(states):
                raise ValueError(f"layer {self.name!r} (RNN): the cell returned {len(new_states)} state tensor(s), "
                                 f"its state_size {self.cell.state_size!r} says {len(states)}")
            return out, new_states

        return step_loop(x, mask, states, self.units, step)

    def _outputs(self, seq, finals, states):
        out = seq if self.return_sequences else seq[:, -1] if seq.shape[1] else states[0]
        if self.return_state:
            return [out] + self._nest(list(finals))
        return out

    def compute_output_shape(self, input_shape):
        batch = input_shape[0]
        out = (batch, input_shape[1], self.units) if self.return_sequences else (batch, self.units)
        if not self.return_state:
            return out
        return [out] + [(batch, e) if isinstance(e, int) else [(batch, n) for n in e] for e in self._entries]

    def compute_mask(self, inputs, mask):
        out = mask if self.return_sequences else None
        return [out] + [None] * len(self._entries) if self.return_state else out

    def keras_weight_tensors(self):
        cell = self.cell
        if isinstance(cell, Layer):
            return cell.keras_weight_tensors()
        return list(cell.parameters()) if isinstance(cell, nn.Module) else []

    def load_keras_weight_tensors(self, arrays):
        if isinstance(self.cell, Layer):
            self.cell.load_keras_weight_tensors(arrays)
        else:
            super().load_keras_weight_tensors(arrays)

    def regularization_loss(self):
        return self.cell.regularization_loss() if isinstance(self.cell, Layer) else None

    def get_config(self):
        from .registry import serialize_layer

        cfg = super().get_config()
        cfg.update(self._sequence_config())
        cfg["cell"] = serialize_layer(self.cell)
        return cfg

    @classmethod
    def from_config(cls, config):
        from .registry import deserialize_layer

        config = dict(config)
        return cls(deserialize_layer(config.pop("cell")), **config)
