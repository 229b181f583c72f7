"""Recurrent layers: SimpleRNN, LSTM, GRU and Bidirectional (Keras's ``RNN(cell)`` is in `cells`).

Structure (as Keras's cell/layer split, PyTorch's shared ``RNNBase``):

* `_Recurrence` — the weights and one step of SimpleRNN/LSTM/GRU (``_SimpleRNNMath``,
  ``_LSTMMath``, ``_GRUMath``), shared by the layers here and the cells in `cells`.
* `RecurrentBase` — running over time: the fused op or a step loop, masks,
  ``go_backwards``, ``return_sequences``/``return_state``, carried states (``stateful``).
* `BaseRNN` — both together: the base of SimpleRNN, LSTM, GRU (and MinGRU/MinLSTM).
* `cells.RNN` — `RecurrentBase` over a cell: a built-in cell brings its `_Recurrence`
  (so ``RNN(LSTMCell(u))`` is ``LSTM(u)``: same parameters, same fused op); any
  other cell is called step by step.

Weights are stored in PyTorch's layout so the fused native ops take them as they
are, and converted to Keras's layout by ``get_weights``/``set_weights``:

=============  ===========================  ============================  =====================
layer          parameter (PyTorch layout)   Keras weight                  gate order (rows)
=============  ===========================  ============================  =====================
LSTM           ``weight_ih (4u, in)``       ``kernel (in, 4u)`` = W.T     i, f, c, o (both)
               ``weight_hh (4u, u)``        ``recurrent_kernel (u, 4u)``
               ``bias_ih (4u,)``            ``bias (4u,)`` (one bias)
GRU            ``weight_ih (3u, in)``       ``kernel (in, 3u)``           PyTorch r, z, n;
               ``weight_hh (3u, u)``        ``recurrent_kernel (u, 3u)``  Keras z, r, h
               ``bias_ih``, ``bias_hh``     ``bias (2, 3u)`` (reset_after) or ``(3u,)``
SimpleRNN      ``weight_ih (u, in)``, ``weight_hh (u, u)``, ``bias_ih (u,)``
=============  ===========================  ============================  =====================

Execution: the fused op (``torch.lstm``/``gru``/``rnn_tanh``/``rnn_relu``) runs
whenever the configuration is one it computes — the default activations
(tanh and sigmoid; relu also for SimpleRNN), GRU with ``reset_after=True``, and
no recurrent dropout while training. Masks and ``go_backwards`` stay on the
fused path (see ``_fused``). Anything else (other activations, GRU with
``reset_after=False``, ``recurrent_dropout`` in training) runs a per-step loop
over the same weights, with the input projection of all steps done at once.
"""
from __future__ import annotations


import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import activations, initializers, regularizers
from . import _args
from ._fused import fused_run
from .base import Layer, as_tensor, format_shape, is_probing

_GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def _swap_rz(w: torch.Tensor) -> torch.Tensor:
    """Reorder GRU gate blocks along axis 0 between PyTorch (r, z, n) and Keras (z, r, h)."""
    r, z, n = w.chunk(3, dim=0)
    return torch.cat([z, r, n], dim=0)


def step_loop(x: torch.Tensor, mask, states: list, units: int, step) -> tuple[torch.Tensor, list]:
    """Runs ``step(t, states) -> (out (batch, units), new states)`` over the time axis of
    ``x (batch, time, ...)``. Where ``mask (batch, time)`` is False a row keeps its previous
    output (zeros before its first step) and its states, as Keras's RNN does.
    Returns ``(outputs (batch, time, units), final states)``."""
    prev_out, outputs = None, []
    for t in range(x.shape[1]):
        out, new_states = step(t, states)
        if mask is not None:
            m = mask[:, t].unsqueeze(-1)
            out = torch.where(m, out, torch.zeros_like(out) if prev_out is None else prev_out)
            new_states = [torch.where(m, n, s) for n, s in zip(new_states, states)]
        outputs.append(out)
        prev_out, states = out, new_states
    if not outputs:
        return x.new_zeros(x.shape[0], 0, units), states
    return torch.stack(outputs, 1), states


class _Recurrence:
    """The weights and the one-step math of SimpleRNN, LSTM and GRU, shared by the layers
    (`SimpleRNN`, ...) and the cells (`rnnkit.layers.cells.SimpleRNNCell`, ...), so that
    ``RNN(LSTMCell(u))`` holds the same parameters as ``LSTM(u)`` and runs the same fused op.

    A subclass sets ``cell_type`` and, where it differs, the bias shape, the Keras
    layout conversion and ``step``.
    """

    cell_type = "rnn"

    def _init_recurrence(
        self, units, activation, recurrent_activation, use_bias, kernel_initializer, recurrent_initializer,
        bias_initializer, kernel_regularizer, recurrent_regularizer, bias_regularizer, dropout, recurrent_dropout,
    ):
        cls = type(self).__name__
        units = _args.positive_int(cls, "units", units)  # LSTM(2.5) is refused, not truncated
        for arg, v in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0.0 <= float(v) < 1.0:
                raise ValueError(f"{cls}: {arg} must be in [0, 1), got {v!r}")
        self.units = int(units)
        self.activation_name = activations.serialize(activation)
        self.activation = activations.get(activation)
        self.recurrent_activation_name = activations.serialize(recurrent_activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        bias_reg = regularizers.get(bias_regularizer)
        self._regularizers = [
            ("weight_ih", regularizers.get(kernel_regularizer)),
            ("weight_hh", regularizers.get(recurrent_regularizer)),
            ("bias_ih", bias_reg),
            ("bias_hh", bias_reg),
        ]
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)

    # -------------------------------------------------------------- weights
    @property
    def gates(self) -> int:
        return _GATES[self.cell_type]

    @property
    def n_states(self) -> int:
        return 2 if self.cell_type == "lstm" else 1

    @property
    def _has_bias_hh(self) -> bool:
        return False

    def _keras_bias(self, units: int) -> torch.Tensor:
        return self.bias_initializer((self.gates * units,))

    def _build_weights(self, in_dim: int) -> None:
        u, g = self.units, self.gates
        kernel = self.kernel_initializer((in_dim, g * u))
        recurrent = self.recurrent_initializer((u, g * u))
        keras = [kernel, recurrent]
        if self.use_bias:
            keras.append(self._keras_bias(u))
        # Create parameters empty, then fill them through the one Keras->PyTorch conversion.
        self.weight_ih = nn.Parameter(torch.empty(g * u, in_dim))
        self.weight_hh = nn.Parameter(torch.empty(g * u, u))
        self.bias_ih = nn.Parameter(torch.empty(g * u)) if self.use_bias else None
        self.bias_hh = nn.Parameter(torch.empty(g * u)) if self.use_bias and self._has_bias_hh else None
        # The fused ops take a hidden-hidden bias; Keras's LSTM/SimpleRNN have none, so pass zeros.
        self.register_buffer("_zero_bias", torch.zeros(g * u), persistent=False)
        with torch.no_grad():
            self.load_keras_weight_tensors(keras)

    def keras_weight_tensors(self):
        out = [self.weight_ih.t(), self.weight_hh.t()]
        if self.use_bias:
            out.append(self.bias_ih)
        return out

    def load_keras_weight_tensors(self, arrays):
        ws = [torch.as_tensor(a, dtype=torch.float32) for a in arrays]
        self.weight_ih.data.copy_(ws[0].t())
        self.weight_hh.data.copy_(ws[1].t())
        if self.use_bias:
            self.bias_ih.data.copy_(ws[2].reshape(-1))

    def flat_weights(self) -> list[torch.Tensor]:
        """The weight list of one direction in the fused ops' order."""
        if not self.use_bias:
            return [self.weight_ih, self.weight_hh]
        bias_hh = self.bias_hh if self.bias_hh is not None else self._zero_bias
        return [self.weight_ih, self.weight_hh, self.bias_ih, bias_hh]

    # ------------------------------------------------------------ execution
    def fused_mode(self, training: bool) -> str | None:
        """The native op that computes this recurrence exactly, or None (then a step loop runs)."""
        if training and self.recurrent_dropout > 0:
            return None
        act, rec = self.activation_name, self.recurrent_activation_name
        if self.cell_type == "rnn":
            return {"tanh": "rnn_tanh", "relu": "rnn_relu"}.get(act)
        if act == "tanh" and rec == "sigmoid":
            return self.cell_type
        return None

    def _recurrent_keep(self, h: torch.Tensor, training) -> torch.Tensor | None:
        """The recurrent dropout mask for ``h (batch, units)`` (one per sequence), or None."""
        if not (training and self.recurrent_dropout > 0):
            return None
        p = self.recurrent_dropout
        return torch.empty(h.shape, device=h.device).bernoulli_(1 - p) / (1 - p)

    def _loop(self, x, mask, states, training, last_only=False):
        # last_only (only the final step is read) lets a loop skip the other outputs; this one needs them.
        proj = F.linear(x, self.weight_ih, self.bias_ih)  # all steps' input projections at once
        rec_keep = self._recurrent_keep(states[0], training)
        return step_loop(x, mask, states, self.units, lambda t, states: self.step(proj[:, t], states, rec_keep))

    def step(self, proj_t, states, rec_keep):  # pragma: no cover - interface
        """One time step from the input projection ``proj_t (batch, gates*units)``."""
        raise NotImplementedError

    def _recurrence_config(self) -> dict:
        """The cell's part of the config (Keras's ``LSTMCell.get_config`` keys)."""
        cfg = dict(
            units=self.units,
            activation=activations.to_config(self, "activation"),
            use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            recurrent_initializer=initializers.serialize(self.recurrent_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
            kernel_regularizer=regularizers.serialize(self._regularizers[0][1]),
            recurrent_regularizer=regularizers.serialize(self._regularizers[1][1]),
            bias_regularizer=regularizers.serialize(self._regularizers[2][1]),
            dropout=self.dropout,
            recurrent_dropout=self.recurrent_dropout,
        )
        if self.cell_type != "rnn":
            cfg["recurrent_activation"] = activations.to_config(self, "recurrent_activation")
        return cfg


class RecurrentBase(Layer):
    """What every recurrent layer shares (as ``torch.nn.RNNBase``): running over time
    (fused op or step loop), masks, ``go_backwards``, initial and carried (``stateful``) states.

    A subclass provides the recurrence: `_Recurrence` for SimpleRNN/LSTM/GRU, the cell
    for `RNN`, its own scans for MinGRU/MinLSTM.

    Call arguments: ``inputs (batch, time, features)``; ``mask (batch, time)`` bool;
    ``initial_state``: list of ``(batch, units)`` tensors (``[h, c]`` for LSTM,
    ``[h]`` otherwise); ``training``.

    Output: ``(batch, units)``, or ``(batch, time, units)`` with
    ``return_sequences``; with ``return_state``, a list ``[output, *final_states]``.

    Stateful (``stateful=True``): the batch size is fixed when the layer is built
    (``batch_input_shape=``/``batch_size=``, ``Input(batch_shape=...)``, or the first
    array it is called on); each call starts from the previous call's final states
    (detached: no gradient flows between batches) until `reset_state`. An explicit
    ``initial_state`` replaces the carried states for that call, as in Keras.
    """

    supports_masking = True
    states = None  # the carried states of a stateful layer (None: zeros)

    def _init_sequence(self, return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask):
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)  # the loop runs eagerly either way: same numbers
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self._state_batch = None

    @property
    def state_sizes(self) -> list[int]:
        """The width of each state tensor, flat."""
        return [self.units] * self.n_states

    # ------------------------------------------------------------- stateful
    def __call__(self, inputs, *args, **kwargs):
        _build_with_batch(self, inputs)
        return super().__call__(inputs, *args, **kwargs)

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"layer {self.name!r} ({type(self).__name__}) expects inputs of shape "
                f"(batch, time, features), got {format_shape(input_shape)}"
            )
        if input_shape[-1] is None:
            raise ValueError(f"layer {self.name!r} needs a known feature axis, got {format_shape(input_shape)}")
        if self.stateful:
            if input_shape[0] is None:
                raise ValueError(
                    f"layer {self.name!r} ({type(self).__name__}): stateful=True needs a fixed batch size: "
                    f"give Input(batch_shape=(32, ...)) or batch_input_shape=(32, ...) "
                    f"(got input shape {format_shape(input_shape)})"
                )
            self._state_batch = int(input_shape[0])
            self.states = None

    def reset_state(self) -> None:
        """Set a stateful layer's carried states back to zeros (Keras 3's name; a no-op for
        a layer that is not stateful, as in Keras)."""
        self.states = None

    def get_initial_state(self, batch_size: int) -> list[torch.Tensor]:
        """Zero states for a batch of ``batch_size``, each ``(batch_size, width)`` (as Keras)."""
        device = next(iter(self.parameters()), torch.empty(0)).device
        return [torch.zeros(batch_size, n, device=device) for n in self.state_sizes]

    reset_states = reset_state  # Keras 2's name

    def _start_states(self, x, initial_state) -> list[torch.Tensor]:
        """The states a call starts from: ``initial_state``, else the carried ones, else zeros."""
        if self.stateful and not is_probing() and x.shape[0] != self._state_batch:
            raise ValueError(
                f"layer {self.name!r} ({type(self).__name__}) is stateful with batch size "
                f"{self._state_batch}, got a batch of {x.shape[0]} (a stateful layer takes every "
                f"batch at the size it was built with)"
            )
        if initial_state is None and self.stateful and self.states is not None and not is_probing():
            initial_state = self.states
        return self.initial_states(x, initial_state)

    def _keep_states(self, finals) -> None:
        if self.stateful and not is_probing():
            self.states = _detached(finals)

    # ------------------------------------------------------------ execution
    def initial_states(self, x: torch.Tensor, initial_state) -> list[torch.Tensor]:
        batch = x.shape[0]
        sizes = self.state_sizes
        if initial_state is None:
            return [x.new_zeros(batch, n) for n in sizes]
        if isinstance(initial_state, torch.Tensor) and len(sizes) == 1:
            initial_state = [initial_state]
        states = [as_tensor(s, x.device).to(x.dtype) for s in initial_state]
        if len(states) != len(sizes):
            raise ValueError(
                f"layer {self.name!r} ({type(self).__name__}) takes {len(sizes)} initial state "
                f"tensor(s), got {len(states)}"
            )
        for s, n in zip(states, sizes):
            if tuple(s.shape) != (batch, n):
                raise ValueError(
                    f"layer {self.name!r} ({type(self).__name__}): initial state must have shape "
                    f"{(batch, n)}, got {tuple(s.shape)}"
                )
        return states

    def run(self, x, mask, states, training, last_only: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Process ``x (batch, time, features)`` in this layer's direction.

        Returns the outputs ``(batch, time, units)`` in processing order (reversed
        when ``go_backwards``) and the final states. ``last_only`` (no mask): the caller reads
        only the last step, so the outputs may hold that step alone ``(batch, 1, units)``."""
        if training and self.dropout > 0:
            keep = torch.empty(x.shape[0], 1, x.shape[2], device=x.device).bernoulli_(1 - self.dropout)
            x = x * keep / (1 - self.dropout)
        if self.go_backwards:
            x = x.flip(1)
            mask = mask.flip(1) if mask is not None else None
        mode = self.fused_mode(training)
        if mode is not None:
            seq, finals = fused_run(
                mode, x, mask, tuple(s.unsqueeze(0) for s in states), self.flat_weights(), self.use_bias, False
            )
            finals = [s[0] for s in finals]
        else:
            seq, finals = self._loop(x, mask, states, training, last_only)
        if self.zero_output_for_mask and mask is not None:
            seq = seq * mask.unsqueeze(-1)
        return seq, finals

    def forward(self, inputs, mask=None, training=None, initial_state=None):
        training = self.training if training is None else training
        if inputs.dim() != 3:
            raise ValueError(
                f"layer {self.name!r} ({type(self).__name__}) expects inputs of shape "
                f"(batch, time, features), got {tuple(inputs.shape)}"
            )
        states = self._start_states(inputs, initial_state)
        seq, finals = self.run(inputs, mask, states, training,
                               last_only=not self.return_sequences and mask is None)
        self._keep_states(finals)
        return self._outputs(seq, finals, states)

    def _outputs(self, seq, finals, states):
        """The layer's output(s) from `run`'s results and the initial ``states``."""
        out = seq if self.return_sequences else seq[:, -1] if seq.shape[1] else states[0]
        if self.return_state:
            return [out] + list(finals)
        return out

    # ---------------------------------------------------------------- shapes
    def compute_output_shape(self, input_shape):
        out = (input_shape[0], input_shape[1], self.units) if self.return_sequences else (input_shape[0], self.units)
        if self.return_state:
            return [out] + [(input_shape[0], n) for n in self.state_sizes]
        return out

    def compute_mask(self, inputs, mask):
        out = mask if self.return_sequences else None
        if self.return_state:
            return [out] + [None] * len(self.state_sizes)
        return out

    def _sequence_config(self) -> dict:
        return dict(
            return_sequences=self.return_sequences,
            return_state=self.return_state,
            go_backwards=self.go_backwards,
            stateful=self.stateful,
            unroll=self.unroll,
            zero_output_for_mask=self.zero_output_for_mask,
        )


def _detached(states):
    return [_detached(s) for s in states] if isinstance(states, (list, tuple)) else states.detach()


def _build_with_batch(layer, inputs) -> None:
    """Build a stateful layer called on an array with that array's batch size (Layer.__call__
    builds from the shape without its batch axis, which a stateful layer cannot take)."""
    if layer.built or not getattr(layer, "stateful", False) or is_probing():
        return
    if isinstance(inputs, (torch.Tensor, np.ndarray)) and inputs.ndim == 3:
        layer.build_for((int(inputs.shape[0]),) + tuple(inputs.shape[1:]))


class BaseRNN(_Recurrence, RecurrentBase):
    """Base of SimpleRNN, LSTM and GRU (and MinGRU/MinLSTM): a `_Recurrence` run over time by
    `RecurrentBase`. Constructor arguments as ``keras.layers.LSTM``."""

    cell_type = "rnn"

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
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        zero_output_for_mask: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._init_recurrence(
            units, activation, recurrent_activation, use_bias, kernel_initializer, recurrent_initializer,
            bias_initializer, kernel_regularizer, recurrent_regularizer, bias_regularizer, dropout, recurrent_dropout,
        )
        self._init_sequence(return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_weights(input_shape[-1])

    def get_config(self):
        cfg = super().get_config()
        cfg.update(self._recurrence_config())
        cfg.update(self._sequence_config())
        return cfg


def reset_states(model) -> None:
    """Set every stateful recurrent layer in ``model`` (any module) back to zero states
    (``keras.Model.reset_states``)."""
    for m in model.modules():
        if isinstance(m, RecurrentBase) and m.stateful:
            m.reset_state()


class _SimpleRNNMath(_Recurrence):
    """SimpleRNN's step: ``h_t = activation(x_t W + h_{t-1} U + b)``."""

    cell_type = "rnn"

    def step(self, proj_t, states, rec_keep):
        h = states[0]
        hd = h * rec_keep if rec_keep is not None else h
        out = self.activation(proj_t + F.linear(hd, self.weight_hh))
        return out, [out]


class _LSTMMath(_Recurrence):
    """LSTM's step and forget-gate bias (``unit_forget_bias``)."""

    cell_type = "lstm"

    def _keras_bias(self, units):
        bias = self.bias_initializer((4 * units,))
        if self.unit_forget_bias:
            bias[units : 2 * units] = 1.0
        return bias

    def step(self, proj_t, states, rec_keep):
        h, c = states
        hd = h * rec_keep if rec_keep is not None else h
        i, f, g, o = (proj_t + F.linear(hd, self.weight_hh)).chunk(4, dim=1)
        ra = self.recurrent_activation
        c = ra(f) * c + ra(i) * self.activation(g)
        h = ra(o) * self.activation(c)
        return h, [h, c]

    def _recurrence_config(self):
        return {**super()._recurrence_config(), "unit_forget_bias": self.unit_forget_bias}


class _GRUMath(_Recurrence):
    """GRU's step, both bias layouts (``reset_after``) and the gate reordering to Keras's."""

    cell_type = "gru"

    @property
    def _has_bias_hh(self):
        return self.reset_after

    def _keras_bias(self, units):
        shape = (2, 3 * units) if self.reset_after else (3 * units,)
        return self.bias_initializer(shape)

    def fused_mode(self, training):
        return super().fused_mode(training) if self.reset_after else None

    def keras_weight_tensors(self):
        out = [_swap_rz(self.weight_ih).t(), _swap_rz(self.weight_hh).t()]
        if self.use_bias:
            if self.reset_after:
                out.append(torch.stack([_swap_rz(self.bias_ih), _swap_rz(self.bias_hh)]))
            else:
                out.append(_swap_rz(self.bias_ih))
        return out

    def load_keras_weight_tensors(self, arrays):
        ws = [torch.as_tensor(a, dtype=torch.float32) for a in arrays]
        self.weight_ih.data.copy_(_swap_rz(ws[0].t()))
        self.weight_hh.data.copy_(_swap_rz(ws[1].t()))
        if self.use_bias:
            if self.reset_after:
                self.bias_ih.data.copy_(_swap_rz(ws[2][0]))
                self.bias_hh.data.copy_(_swap_rz(ws[2][1]))
            else:
                self.bias_ih.data.copy_(_swap_rz(ws[2]))

    def step(self, proj_t, states, rec_keep):
        h = states[0]
        hd = h * rec_keep if rec_keep is not None else h
        ra, act = self.recurrent_activation, self.activation
        xr, xz, xn = proj_t.chunk(3, dim=1)
        if self.reset_after:
            hr, hz, hn = F.linear(hd, self.weight_hh, self.bias_hh).chunk(3, dim=1)
            r, z = ra(xr + hr), ra(xz + hz)
            n = act(xn + r * hn)
        else:
            w_r, w_z, w_n = self.weight_hh.chunk(3, dim=0)
            r, z = ra(xr + F.linear(hd, w_r)), ra(xz + F.linear(hd, w_z))
            n = act(xn + F.linear(r * hd, w_n))
        h = z * h + (1 - z) * n
        return h, [h]

    def _recurrence_config(self):
        return {**super()._recurrence_config(), "reset_after": self.reset_after}


class SimpleRNN(_SimpleRNNMath, BaseRNN):
    """Fully-connected recurrence ``h_t = activation(x_t W + h_{t-1} U + b)``.

    Args: as ``keras.layers.SimpleRNN`` — ``units``, ``activation="tanh"``,
    ``use_bias=True``, ``dropout``, ``recurrent_dropout``, ``return_sequences``,
    ``return_state``, ``go_backwards``, initializers and regularizers.
    Fused (``torch.rnn_tanh``/``rnn_relu``) for tanh and relu activations.

    Example:
        >>> SimpleRNN(4)(np.zeros((2, 5, 3), "float32")).shape
        torch.Size([2, 4])
    """

    def __init__(self, units, activation="tanh", **kwargs):
        if "recurrent_activation" in kwargs:  # Keras refuses it too: a SimpleRNN has no gates
            raise TypeError("SimpleRNN() takes no recurrent_activation argument (it has no gates)")
        super().__init__(units, activation=activation, **kwargs)


class LSTM(_LSTMMath, BaseRNN):
    """Long short-term memory layer (Hochreiter & Schmidhuber, 1997), as ``keras.layers.LSTM``.

    Per step, with ``z = x_t W + h_{t-1} U + b`` split into gates i, f, c, o::

        c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(c)
        h_t = sigmoid(o) * tanh(c_t)

    Args:
        units: state width ``u``; the layer has ``4u(in + u + 1)`` parameters.
        activation: default ``"tanh"``; recurrent_activation: default ``"sigmoid"``.
        use_bias: default True; unit_forget_bias: initialise the forget-gate bias to 1.
        dropout: input dropout (one mask per sequence); recurrent_dropout: on ``h``
            (forces the step loop while training).
        return_sequences: output every step ``(batch, time, u)`` instead of the last ``(batch, u)``.
        return_state: also return the final ``h`` and ``c``.
        go_backwards: process the sequence in reverse (outputs in processing order).
        zero_output_for_mask: output zeros at masked steps instead of repeating the last output.

    Call arguments: ``inputs (batch, time, features)``, ``mask (batch, time)``,
    ``initial_state=[h0, c0]``, ``training``.

    Example:
        >>> lstm = LSTM(56, return_sequences=True)
        >>> lstm(np.zeros((2, 33, 42), "float32")).shape
        torch.Size([2, 33, 56])
        >>> lstm.count_params()
        22176
    """

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", unit_forget_bias=True, **kwargs):
        super().__init__(units, activation=activation, recurrent_activation=recurrent_activation, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)


class GRU(_GRUMath, BaseRNN):
    """Gated recurrent unit (Cho et al., 2014), as ``keras.layers.GRU``.

    Per step (Keras's formulation, gates z = update, r = reset)::

        z = sigmoid(x W_z + h U_z + b_z),  r = sigmoid(x W_r + h U_r + b_r)
        reset_after=True:  hh = tanh(x W_h + b_h + r * (h U_h + b'_h))
        reset_after=False: hh = tanh(x W_h + b_h + (r * h) U_h)
        h_t = z * h_{t-1} + (1 - z) * hh

    Args: as LSTM, plus ``reset_after=True`` (the default, cuDNN/PyTorch
    compatible, two bias rows: ``3u(in + u + 2)`` parameters); ``False`` has one
    bias (``3u(in + u + 1)``) and runs the step loop.
    """

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", reset_after=True, **kwargs):
        super().__init__(units, activation=activation, recurrent_activation=recurrent_activation, **kwargs)
        self.reset_after = bool(reset_after)


class Bidirectional(Layer):
    """Runs a recurrent layer forwards and a copy of it backwards, and merges the outputs.

    Args:
        layer: an ``LSTM``, ``GRU``, ``SimpleRNN`` (or another rnnkit recurrent layer).
        merge_mode: ``"concat"`` (default, width ``2u``), ``"sum"``, ``"mul"``,
            ``"ave"``, or None (a list ``[forward, backward]``).
        backward_layer: optional explicit backward layer; by default a copy of
            ``layer`` with ``go_backwards`` flipped.

    With ``stateful=True`` on ``layer`` both directions carry their final states to
    the next call (each from its own end of the sequence), until `reset_state`.

    With ``return_sequences`` the backward outputs are re-reversed so step t of
    both halves refers to input step t. With ``return_state`` the result is
    ``[output, *forward_states, *backward_states]``. When both directions can
    use the fused op (and no input dropout is active), one bidirectional native
    call computes both.

    Weights: the forward layer's, then the backward layer's (Keras's order).
    """

    supports_masking = True

    def __init__(self, layer, merge_mode="concat", backward_layer=None, weights=None, **kwargs):
        if not isinstance(layer, Layer) or not hasattr(layer, "return_sequences"):
            raise TypeError(f"Bidirectional wraps a recurrent layer (LSTM, GRU, ...), got {type(layer).__name__}")
        if merge_mode not in ("concat", "sum", "mul", "ave", None):
            raise ValueError(f"Bidirectional: merge_mode must be concat, sum, mul, ave or None, got {merge_mode!r}")
        if "input_shape" not in kwargs and "batch_input_shape" not in kwargs and layer._batch_input_shape:
            kwargs["batch_input_shape"] = layer._batch_input_shape
        super().__init__(**kwargs)
        config = layer.get_config()
        config.pop("batch_input_shape", None)
        layer.name = "forward_" + layer.name
        if backward_layer is None:
            config.update(name="backward_" + config["name"], go_backwards=not layer.go_backwards)
            backward_layer = type(layer).from_config(config)
        if any(getattr(backward_layer, a, False) != getattr(layer, a, False)
               for a in ("return_sequences", "return_state", "stateful")):
            raise ValueError("Bidirectional: forward and backward layers must agree on return_sequences, return_state "
                             "and stateful")
        # As Keras: with return_sequences, both halves output zeros at masked steps
        # (a lone RNN layer repeats its last output there instead).
        layer.zero_output_for_mask = backward_layer.zero_output_for_mask = layer.return_sequences
        self.forward_layer = layer
        self.backward_layer = backward_layer
        self.merge_mode = merge_mode
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self._initial_weights = weights

    @property
    def go_backwards(self):
        return False

    @property
    def stateful(self) -> bool:
        return getattr(self.forward_layer, "stateful", False)

    @property
    def states(self):
        """Both directions' carried states (forward's, then backward's), or None before any."""
        f, b = self.forward_layer.states, self.backward_layer.states
        return tuple(f + b) if f and b else None

    def __call__(self, inputs, *args, **kwargs):
        _build_with_batch(self, inputs)
        return super().__call__(inputs, *args, **kwargs)

    def _keep_states(self, f_states, b_states) -> None:
        if self.stateful:
            self.forward_layer._keep_states(f_states)
            self.backward_layer._keep_states(b_states)

    def reset_state(self) -> None:
        """Set both directions' carried states back to zeros (stateful layers)."""
        if not self.stateful:
            raise AttributeError(f"layer {self.name!r} (Bidirectional): reset_state needs a stateful layer "
                                 f"(stateful=True on the wrapped layer)")
        self.forward_layer.reset_state()
        self.backward_layer.reset_state()

    reset_states = reset_state

    def build(self, input_shape):
        self.forward_layer.build_for(input_shape)
        self.backward_layer.build_for(input_shape)
        if self._initial_weights is not None:
            self.built = True
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def compute_output_shape(self, input_shape):
        f = self.forward_layer.compute_output_shape(input_shape)
        states = []
        if self.return_state:
            f, states = f[0], f[1:] * 2
        if self.merge_mode == "concat":
            out = tuple(f[:-1]) + (f[-1] * 2,)
        elif self.merge_mode is None:
            out = [tuple(f), tuple(f)]
        else:
            out = tuple(f)
        if self.return_state:
            return (out if isinstance(out, list) else [out]) + states
        return out

    def compute_mask(self, inputs, mask):
        out = mask if self.return_sequences else None
        outs = [out, out] if self.merge_mode is None else [out]
        if self.return_state:
            return outs + [None] * (2 * self.forward_layer.n_states)
        return outs if self.merge_mode is None else out

    def _fused_pair(self, training):
        f, b = self.forward_layer, self.backward_layer
        mode = f.fused_mode(training)
        if (
            mode is None
            or b.fused_mode(training) != mode
            or f.go_backwards
            or not b.go_backwards
            or (training and (f.dropout > 0 or b.dropout > 0))
            or f.use_bias != b.use_bias
        ):
            return None
        return mode

    def forward(self, inputs, mask=None, training=None, initial_state=None):
        training = self.training if training is None else training
        f, b = self.forward_layer, self.backward_layer
        if inputs.dim() != 3:
            raise ValueError(
                f"layer {self.name!r} (Bidirectional) expects inputs of shape (batch, time, features), "
                f"got {tuple(inputs.shape)}"
            )
        if initial_state is not None:
            initial_state = list(initial_state)
            n = f.n_states
            if len(initial_state) != 2 * n:
                raise ValueError(
                    f"layer {self.name!r} (Bidirectional) takes {2 * n} initial state tensors "
                    f"(forward then backward), got {len(initial_state)}"
                )
            f_init, b_init = f._start_states(inputs, initial_state[:n]), b._start_states(inputs, initial_state[n:])
        elif self.stateful:
            f_init, b_init = f._start_states(inputs, None), b._start_states(inputs, None)
        else:
            f_init = b_init = None

        mode = self._fused_pair(training)
        if mode is not None:
            if f_init is None:
                # One zeros tensor for both directions: fewer temporaries on a path run every step.
                hx = (inputs.new_zeros(2, inputs.shape[0], f.units),) * f.n_states
            else:
                hx = tuple(torch.stack([fs, bs]) for fs, bs in zip(f_init, b_init))
            seq, finals = fused_run(mode, inputs, mask, hx, f.flat_weights() + b.flat_weights(), f.use_bias, True)
            f_states, b_states = [s[0] for s in finals], [s[1] for s in finals]
            self._keep_states(f_states, b_states)
            u = f.units
            if mask is None and seq.shape[1]:
                # Unmasked, each direction's last output is its final hidden state; taking
                # it from there spares the backward pass a scatter into the whole sequence.
                f_last, b_last = f_states[0], b_states[0]
            else:
                f_last, b_last = seq[:, -1, :u], seq[:, 0, u:]
            if f.zero_output_for_mask and mask is not None:
                seq = seq * mask.unsqueeze(-1)
            if self.return_sequences and self.merge_mode == "concat" and not self.return_state:
                return seq  # already [forward | backward] on the last axis
            f_seq, b_seq = seq[..., :u], seq[..., u:]
        else:
            if f_init is None:
                f_init, b_init = f.initial_states(inputs, None), b.initial_states(inputs, None)
            f_seq, b_seq, f_last, b_last, f_states, b_states = self._each(
                lambda layer, states: layer.run(inputs, mask, states, training), f_init, b_init)
            self._keep_states(f_states, b_states)
        return self._merge(f_seq, b_seq, f_last, b_last, f_states, b_states)

    def reads_table(self, ids, table, training=None) -> bool:
        """Whether both directions can read an embedding table's rows (see `MinGRU.forward_on_table`)."""
        return all(getattr(layer, "reads_table", None) is not None and layer.reads_table(ids, table, training)
                   for layer in (self.forward_layer, self.backward_layer))

    def forward_on_table(self, ids, table, mask=None):
        """``self(table[ids], mask)`` with each direction reading ``table``'s rows (only where `reads_table`)."""
        f, b = self.forward_layer, self.backward_layer
        inits = [[table.new_zeros(ids.shape[0], layer.units)] * layer.n_states for layer in (f, b)]
        return self._merge(*self._each(lambda layer, states: layer.run_on_table(ids, table, mask, states), *inits))

    def _each(self, run, f_init, b_init):
        """Each direction through ``run(layer, states) -> (outputs, final states)``, outputs in time order."""
        f, b = self.forward_layer, self.backward_layer
        f_seq, f_states = run(f, f_init)
        b_seq, b_states = run(b, b_init)
        f_last, b_last = f_seq[:, -1], b_seq[:, -1]
        if f.go_backwards:
            f_seq = f_seq.flip(1)
        if b.go_backwards:
            b_seq = b_seq.flip(1)
        return f_seq, b_seq, f_last, b_last, f_states, b_states

    def _merge(self, f_seq, b_seq, f_last, b_last, f_states, b_states):
        y_f, y_b = (f_seq, b_seq) if self.return_sequences else (f_last, b_last)
        if self.merge_mode == "concat":
            out = torch.cat([y_f, y_b], dim=-1)
        elif self.merge_mode == "sum":
            out = y_f + y_b
        elif self.merge_mode == "mul":
            out = y_f * y_b
        elif self.merge_mode == "ave":
            out = (y_f + y_b) / 2
        else:
            out = [y_f, y_b]
        if self.return_state:
            return (out if isinstance(out, list) else [out]) + f_states + b_states
        return out

    def keras_weight_tensors(self):
        return self.forward_layer.keras_weight_tensors() + self.backward_layer.keras_weight_tensors()

    def load_keras_weight_tensors(self, arrays):
        n = len(self.forward_layer.keras_weight_tensors())
        self.forward_layer.load_keras_weight_tensors(arrays[:n])
        self.backward_layer.load_keras_weight_tensors(arrays[n:])

    def regularization_loss(self):
        terms = [t for t in (self.forward_layer.regularization_loss(), self.backward_layer.regularization_loss()) if t is not None]
        return sum(terms) if terms else None

    def get_config(self):
        from .registry import serialize_layer

        cfg = super().get_config()
        layer_cfg = serialize_layer(self.forward_layer)
        layer_cfg["config"]["name"] = layer_cfg["config"]["name"].removeprefix("forward_")
        cfg.update(layer=layer_cfg, merge_mode=self.merge_mode)
        back = serialize_layer(self.backward_layer)
        back["config"]["name"] = back["config"]["name"].removeprefix("backward_")
        if back["config"] != {**layer_cfg["config"], "go_backwards": not self.forward_layer.go_backwards}:
            cfg["backward_layer"] = serialize_layer(self.backward_layer)
        return cfg

    @classmethod
    def from_config(cls, config):
        from .registry import deserialize_layer

        config = dict(config)
        config["layer"] = deserialize_layer(config["layer"])
        if config.get("backward_layer") is not None:
            config["backward_layer"] = deserialize_layer(config["backward_layer"])
        return cls(**config)
